"""Only the current question carries live buttons: asked again (after a typed answer where a
button was expected, or a tap on an older copy), the copy before it loses its buttons."""

from __future__ import annotations

from bot.app import CoupDePouce
from storage.models import Council
from tests.emulator import BotApiEmulator
from tests.helpers import EN


async def test_a_question_asked_again_takes_the_buttons_off_the_copy_before(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    sam = emulator.resident(4_201, language_code="en")
    sam.send("/start quartier-nord")
    first = await sam.next_message()
    agree = EN._("✅ Yes, I agree")
    assert agree in first.labels()
    yes_data = first.button(agree).callback_data

    sam.send("hello")  # a button was expected
    assert (await sam.next_message()).text == EN._("Please answer with the buttons below.")
    second = await sam.next_message()
    assert agree in second.labels()
    await emulator.wait_until(lambda: first.labels() == [])  # the older copy: no buttons

    # A tap kept from the older copy (a slow phone, a forged one): expired, and the
    # question once more, with the copy before it cleared again.
    sam.tap_data(yes_data or "", first)
    third = await sam.wait_for(lambda m: m is not second and agree in m.labels())
    await emulator.wait_until(lambda: second.labels() == [])
    assert [m for m in sam.inbox if m.labels()] == [third]

    sam.tap(agree, third)
    await sam.wait_for(lambda m: (m.text or "").startswith(EN._("Thank you!")))
    assert [m for m in sam.inbox if agree in m.labels()] == []

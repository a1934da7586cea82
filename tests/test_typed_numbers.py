"""Where a number or a scale is asked, a number typed in range is taken, in any shipped
language's digits; one out of range gets a kind answer and the question again."""

from __future__ import annotations

import re

from bot.app import CoupDePouce
from flows.i18n import typed_number
from storage.models import Council
from tests.emulator import BotApiEmulator
from tests.test_calls import send_cooking_call, start_cooking_call
from tests.test_consultations import (
    ANNA,
    invitation,
    organiser_of,
    question,
    seed,
    send,
    text_of,
)
from tests.test_talents import coordinator_of, seed_directory


def test_digits_of_every_script_are_read() -> None:
    assert [typed_number(text) for text in ("4", " 4 ", "4.", "٤", "۴", "10")] == [
        4,
        4,
        4,
        4,
        4,
        10,
    ]
    assert [typed_number(text) for text in ("four", "4 people", "-4", "4.5", "", "1_000")] == [
        None
    ] * 6


async def test_a_scale_takes_a_typed_number_in_range(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed(bot, emulator, council)
    oumar = await organiser_of(bot, emulator, council)
    await send(oumar)
    anna = emulator.resident(ANNA)
    anna.tap("✏️ Answer", await invitation(anna))
    anna.tap("Un jardin partagé", await question(anna, 1))
    await question(anna, 2)
    before = len(anna.inbox)
    anna.send("7")  # not on the scale
    await anna.wait_for(lambda m: text_of(m) == "Please answer with the buttons below.")
    await emulator.wait_until(lambda: len(anna.inbox) == before + 2)
    assert text_of(anna.inbox[-1]).startswith("2/3 · ")  # asked again
    anna.send("٤")  # four, in Arabic-Indic digits
    third = await question(anna, 3)
    anna.tap("◀ Back", third)
    back = await anna.wait_for(lambda m: "✅" + "4" in m.labels())
    assert "✅" + "3" not in back.labels()


async def test_a_call_takes_a_typed_number_of_people(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed_directory(bot, council)
    emulator.resident(41_001, language_code="en")
    nadia = await coordinator_of(bot, emulator, council, 43_101)
    await start_cooking_call(nadia)
    before = len(nadia.inbox)
    nadia.send("0")
    await emulator.wait_until(lambda: len(nadia.inbox) == before + 2)
    assert [text_of(m) for m in nadia.inbox[-2:]] == [
        "Please tap a number, or type one from 1 to 100.",
        "How many people are needed?",
    ]
    nadia.send("4")
    nadia.tap("In a week", await nadia.wait_for(lambda m: "In a week" in m.labels()))
    preview = await nadia.wait_for(lambda m: text_of(m).startswith("Preview"))
    assert "4 people needed" in text_of(preview)


async def test_a_call_preview_shows_the_times_and_no_seconds(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await seed_directory(bot, council)
    nadia = await coordinator_of(bot, emulator, council, 43_102)
    await send_cooking_call(nadia)
    preview = await nadia.wait_for(lambda m: text_of(m).startswith("Preview"))
    assert "When: Evenings" in text_of(preview)
    [deadline] = [line for line in text_of(preview).splitlines() if line.startswith("Answer by")]
    assert re.fullmatch(r"Answer by .* at \d{1,2}:\d{2}\s?[AP]M", deadline), deadline

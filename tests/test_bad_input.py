"""Wrong taps and odd messages get a kind answer and change nothing."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import CoupDePouce
from flows.engine import Command, Context, Flow, Next
from flows.registry import FLOWS
from storage.models import Conversation, Council, Person
from tests.conftest import StartBot, in_transaction
from tests.emulator import BotApiEmulator, FakeUser
from tests.helpers import AR, EN, FR, count_rows, onboard
from tests.test_talents import coordinator_of


async def conversation_state(app: CoupDePouce, chat_id: int) -> tuple[str | None, int] | None:
    async def run(session: AsyncSession) -> tuple[str | None, int] | None:
        row = await session.scalar(
            select(Conversation).where(Conversation.external_id == str(chat_id))
        )
        return None if row is None else (row.step, row.prompt)

    state: tuple[str | None, int] | None = await in_transaction(app, run)
    return state


async def at_consent(emulator: BotApiEmulator, user_id: int, language: str = "en") -> FakeUser:
    user = emulator.resident(user_id, first_name="Sam", language_code=language)
    user.send("/start quartier-nord")
    await user.next_message()
    return user


async def test_free_text_where_a_button_is_expected(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    sam = await at_consent(emulator, 4001)
    before = await conversation_state(bot, 4001)
    sam.send("yes please")
    assert (await sam.next_message()).text == "Please answer with the buttons below."
    asked_again = await sam.next_message()
    assert asked_again.button("✅ Yes, I agree")
    state = await conversation_state(bot, 4001)
    assert before is not None and state is not None
    assert state[0] == before[0] == "onboarding.consent"
    assert await count_rows(bot, Person) == 0


async def test_a_button_from_an_old_message_has_expired(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    sam = await at_consent(emulator, 4002)
    first_prompt = emulator.messages(4002)[0]
    no_thanks = first_prompt.button("No, thanks").callback_data or ""
    sam.send("hello")  # the bot asks again, with new buttons (the first copy loses its own)
    await sam.next_message()
    await sam.next_message()
    state = await conversation_state(bot, 4002)

    sam.tap_data(no_thanks, first_prompt)  # a tap the phone still had
    note = await sam.next_message()
    assert note.text == "That button belongs to an earlier question. Here is where we are:"
    await sam.next_message()
    assert sam.answered_callbacks[-1].params.get("text") == "This button has expired."
    assert await count_rows(bot, Person) == 0
    after = await conversation_state(bot, 4002)
    assert state is not None and after is not None
    assert after[0] == state[0] == "onboarding.consent"


@pytest.mark.parametrize(
    "forged",
    [
        "c:1:admin",  # a value never offered
        "c:999:yes",  # a prompt that does not exist
        "rsvp:42:yes",  # a prefix nobody issued
        "c:1:" + "y" * 60,  # longer than Telegram allows
        "",
        "c::yes",
        "\u202eevil",
    ],
)
async def test_forged_button_data_changes_nothing(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council, forged: str
) -> None:
    sam = await at_consent(emulator, 4003)
    before = await conversation_state(bot, 4003)
    sam.tap_data(forged)
    await emulator.wait_until_consumed()
    await emulator.wait_until(lambda: sam.answered_callbacks or None, timeout=5)
    toast = sam.answered_callbacks[-1].params.get("text")
    assert toast in {"Sorry, this button does not work.", "This button has expired."}
    assert await count_rows(bot, Person) == 0
    after = await conversation_state(bot, 4003)
    assert after is not None and before is not None and after[0] == before[0]


async def test_a_ten_thousand_character_message(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    sam = emulator.resident(4004, language_code="en")
    await onboard(sam, EN)
    sam.send("a" * 10_000)
    reply = await sam.next_message()
    assert reply.text == "I mostly work with buttons. Send /help to see what I can do."
    stranger = emulator.resident(4005, language_code="fr")
    stranger.send("🙂" * 3000)
    reply = await stranger.next_message()
    assert "/start" in (reply.text or "")
    assert await conversation_state(bot, 4005) is None  # nothing kept about a stranger


@pytest.mark.parametrize("text", ["🙂🙂🙂", "مرحبا، أريد المساعدة", "שלום", "\u200f\u200e", "  "])
async def test_emoji_and_right_to_left_text(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council, text: str
) -> None:
    sam = emulator.resident(4006, language_code="ar")
    await onboard(sam, AR)
    sam.send(text)
    reply = await sam.next_message()
    assert "/help" in (reply.text or "")


async def test_unknown_command(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    sam = emulator.resident(4007, language_code="fr")
    sam.send("/teleport maintenant")
    reply = await sam.next_message()
    assert reply.text == FR._("I don't know this command. Send /help to see what I can do.")


async def test_a_group_chat_gets_brief_answers_to_commands_only(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    group = emulator.group(-1001234, title="Conseil Quartier Nord")
    member = emulator.resident(4008, language_code="en")
    group.send(member, "Hello everyone, see you on Saturday")
    group.send(member, "/help@coupdepouce_test_bot")
    reply = await emulator.wait_until(lambda: group.inbox or None, timeout=5)
    assert reply is not None
    [answer] = group.inbox
    assert answer.text is not None
    assert answer.text.startswith("I work in a private chat")
    assert answer.buttons == []
    group.send(member, "/start@another_bot")
    group.send(member, "/help")
    await emulator.wait_until_consumed()
    await emulator.wait_until(lambda: len(group.inbox) == 2 or None, timeout=5)
    assert len(group.inbox) == 2  # the command for another bot was left alone
    assert await count_rows(bot, Conversation) == 0


async def test_a_sticker_gets_a_kind_answer(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    sam = emulator.resident(4009, language_code="en")
    emulator.push_update(
        {
            "message": {
                "message_id": 5,
                "date": 1_700_000_000,
                "chat": {"id": 4009, "type": "private", "first_name": "Sam"},
                "from": {"id": 4009, "is_bot": False, "first_name": "Sam", "language_code": "en"},
                "sticker": {
                    "file_id": "x",
                    "file_unique_id": "y",
                    "type": "regular",
                    "width": 512,
                    "height": 512,
                    "is_animated": False,
                    "is_video": False,
                },
            }
        }
    )
    reply = await sam.next_message()
    assert reply.text == "I can only read text and button taps. Send /help to see what I can do."


async def explode(ctx: Context) -> Next:
    """A flow step that fails, as a bug would."""
    raise RuntimeError("boom")


BROKEN = Flow(name="broken", commands=[Command("boom", explode, "fail", needs_consent=False)])


async def test_a_failing_flow_apologises_and_logs(
    start_bot: StartBot,
    emulator: BotApiEmulator,
    council: Council,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await start_bot(flows=[*FLOWS, BROKEN])
    sam = emulator.resident(4010, language_code="fr")
    with caplog.at_level(logging.ERROR):
        sam.send("/boom")
        reply = await sam.next_message()
    assert reply.text == FR._(
        "Sorry, something went wrong on our side. Please try again in a moment."
    )
    assert any("a flow failed" in record.getMessage() for record in caplog.records)
    sam.send("/help")  # the bot carries on
    assert "/start" in ((await sam.next_message()).text or "")


async def test_a_person_who_blocked_the_bot_causes_no_error(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council, caplog: pytest.LogCaptureFixture
) -> None:
    sam = emulator.resident(4011, language_code="en")
    emulator.block(sam.id)
    with caplog.at_level(logging.WARNING):
        sam.send("/start quartier-nord")
        await emulator.wait_until_consumed()
        await emulator.wait_until(lambda: emulator.calls_to("sendMessage") or None, timeout=5)
    [refused] = emulator.calls_to("sendMessage")
    assert not refused.ok
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    emulator.unblock(sam.id)
    sam.send("/help")
    assert "/start" in ((await sam.next_message()).text or "")


async def test_a_text_over_a_steps_limit_says_the_limit_and_asks_again(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    nadia = await coordinator_of(bot, emulator, council, 4_101)
    nadia.send("/call")
    title = await nadia.next_message()
    nadia.send("Repas solidaire " * 20)  # 320 characters, for 120
    said = await nadia.next_message()
    assert said.text == "That is 320 characters long, for 120 at most."
    again = await nadia.next_message()
    assert again.text == title.text and again.labels() == ["Cancel"]
    nadia.send("Repas solidaire")  # the question is still open
    assert (await nadia.next_message()).text != said.text

"""Long replies are cut into messages the channel accepts, never dropped: between paragraphs,
lines or words, the buttons on the last part, every part in order, none sent twice when a
later part has to be retried."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import CoupDePouce
from bot.channels.telegram import messages
from bot.channels.text import split, width
from flows.broadcasts.service import to_payload
from flows.engine import END, Attachment, Choice, Command, Context, Flow, Next, Reply
from flows.registry import FLOWS
from storage.models import OutboxMessage, OutboxStatus, Priority
from storage.queries import outbox
from tests.conftest import StartBot, in_transaction, whatsapp_settings
from tests.emulator import BotApiEmulator
from tests.whatsapp_emulator import CloudApiEmulator

TELEGRAM_TEXT_MAX = 4096
WHATSAPP_BODY_MAX = 1024


def roster(size: int = 10_000) -> str:
    """A big meeting roster, about `size` characters, one line per person."""
    lines = ["👥 Assemblée du quartier Nord — qui vient", ""]
    number = 0
    while len("\n".join(lines)) < size:
        number += 1
        lines.append(f"{number:03d}. Habitant·e n°{number} — vient, avec {number % 3} personne(s)")
    return "\n".join(lines)[:size].rsplit("\n", 1)[0]


ROSTER = roster()
ARABIC = " ".join(["مرحبا بكم في اجتماع مجلس الحي يوم السبت"] * 250)
WORD = "a" * 5000
CHOICES = (
    (Choice("✅ Je viens", "ros:1:yes"), Choice("❌ Non", "ros:1:no")),
    (Choice("🤔 Peut-être", "ros:1:maybe"),),
)


# --- the splitter ------------------------------------------------------------------------------


def test_a_roster_is_cut_between_lines_and_nothing_is_lost() -> None:
    parts = split(ROSTER, TELEGRAM_TEXT_MAX)
    assert len(ROSTER) > 9_900 and len(parts) == 3
    assert all(width(part) <= TELEGRAM_TEXT_MAX for part in parts)
    assert "\n".join(parts) == ROSTER  # only the newlines cut on are gone


def test_paragraphs_go_before_lines_and_lines_before_words() -> None:
    paragraph = "\n".join(["word " * 10] * 5)  # 5 lines of 50 characters
    text = f"{paragraph}\n\n{paragraph}"
    assert split(text, 400) == [paragraph, paragraph]
    assert split("one two\nthree four", 12) == ["one two", "three four"]
    assert split("one two three four", 12) == ["one two", "three four"]


def test_an_arabic_text_is_cut_between_words() -> None:
    parts = split(ARABIC, TELEGRAM_TEXT_MAX)
    assert len(parts) == 3
    assert all(width(part) <= TELEGRAM_TEXT_MAX for part in parts)
    assert " ".join(parts) == ARABIC


def test_a_word_longer_than_a_message_is_cut_inside() -> None:
    assert [len(part) for part in split(WORD, TELEGRAM_TEXT_MAX)] == [4096, 904]
    assert "".join(split(WORD, TELEGRAM_TEXT_MAX)) == WORD


def test_length_is_counted_in_utf16_units_as_telegram_does() -> None:
    emoji = "🚲" * 3000  # 6,000 units though 3,000 characters
    parts = split(emoji, TELEGRAM_TEXT_MAX)
    assert [width(part) for part in parts] == [4096, 1904]
    assert "".join(parts) == emoji  # never half of a surrogate pair
    accented = "e\u0301" * 3000  # a letter and its combining accent stay together
    assert all(not part.startswith("\u0301") for part in split(accented, 1001))


# --- Telegram ----------------------------------------------------------------------------------


async def show(ctx: Context, text: str) -> Next:
    ctx.replies.append(Reply(text, CHOICES))
    return END


async def show_roster(ctx: Context) -> Next:
    return await show(ctx, ROSTER)


async def show_arabic(ctx: Context) -> Next:
    return await show(ctx, ARABIC)


async def show_word(ctx: Context) -> Next:
    return await show(ctx, WORD)


LONG = Flow(
    name="long",
    commands=[
        Command("roster", show_roster, "roster", needs_consent=False),
        Command("arabic", show_arabic, "arabic", needs_consent=False),
        Command("word", show_word, "word", needs_consent=False),
    ],
)


@pytest.mark.parametrize(
    ("command", "text", "count", "joiner"),
    [("roster", ROSTER, 3, "\n"), ("arabic", ARABIC, 3, " "), ("word", WORD, 2, "")],
)
async def test_a_long_reply_reaches_telegram_in_parts_with_the_buttons_on_the_last(
    start_bot: StartBot, emulator: BotApiEmulator, command: str, text: str, count: int, joiner: str
) -> None:
    await start_bot(flows=[*FLOWS, LONG])
    sam = emulator.resident(7301, language_code="fr")
    sam.send(f"/{command}")
    await sam.wait_for(lambda _m: len(sam.inbox) >= count)
    await emulator.wait_until_consumed()
    parts = sam.inbox
    assert len(parts) == count
    assert all(width(part.text or "") <= TELEGRAM_TEXT_MAX for part in parts)
    assert [part.labels() for part in parts[:-1]] == [[]] * (count - 1)
    assert parts[-1].labels() == ["✅ Je viens", "❌ Non", "🤔 Peut-être"]
    # Nothing lost: the parts put back with what they were cut on give the reply.
    assert joiner.join(part.text or "" for part in parts) == text
    assert all(call.ok for call in emulator.calls_to("sendMessage"))


async def test_a_queued_long_message_resumes_after_the_parts_already_sent(
    bot: CoupDePouce, emulator: BotApiEmulator
) -> None:
    sam = emulator.resident(7302, language_code="fr")
    # The second part is refused once (Telegram asks to slow down): the retry sends the
    # second and third parts only.
    emulator.fail(
        "sendMessage",
        status=429,
        description="Too Many Requests: retry after 1",
        retry_after=1,
        chat_id=sam.id,
        after=1,
    )

    async def queue(session: AsyncSession) -> int:
        message = await outbox.enqueue_one(
            session,
            channel="telegram",
            chat_id=str(sam.id),
            payload=to_payload(Reply(ROSTER, CHOICES)),
            priority=Priority.REPORT,
        )
        return message.id

    message_id = await in_transaction(bot, queue)
    bot.dispatcher.wake()
    await sam.wait_for(lambda _m: len(sam.inbox) >= 3, timeout=10)

    assert "\n".join(part.text or "" for part in sam.inbox) == ROSTER  # each part once
    assert sam.inbox[-1].labels() == ["✅ Je viens", "❌ Non", "🤔 Peut-être"]
    assert [call.ok for call in emulator.calls_to("sendMessage")] == [True, False, True, True]

    async def state(session: AsyncSession) -> tuple[OutboxStatus, int]:
        found = await session.get_one(OutboxMessage, message_id)
        return found.status, found.parts_sent

    for _ in range(100):  # the dispatcher records what it sent a moment later
        if (await in_transaction(bot, state))[0] is OutboxStatus.SENT:
            break
        await asyncio.sleep(0.05)
    assert await in_transaction(bot, state) == (OutboxStatus.SENT, 1)  # one part skipped


async def test_a_refused_reply_is_logged_as_a_warning_with_the_reason(
    start_bot: StartBot, emulator: BotApiEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    await start_bot(flows=[*FLOWS, LONG])
    sam = emulator.resident(7303, language_code="fr")
    emulator.fail("sendMessage", status=400, description="Bad Request: chat is deactivated")
    with caplog.at_level(logging.WARNING, logger="bot.channels.telegram"):
        sam.send("/word")
        await emulator.wait_until(lambda: emulator.calls_to("sendMessage") or None)
        await emulator.wait_until(
            lambda: [r for r in caplog.records if "not delivered" in r.getMessage()] or None
        )
    (line,) = [r for r in caplog.records if "not delivered" in r.getMessage()]
    assert line.levelno == logging.WARNING
    assert "chat is deactivated" in line.getMessage().lower()


def test_the_emulator_refuses_a_text_over_4096_utf16_units_like_telegram() -> None:
    from tests.emulator import ApiError, _checked_text

    _checked_text({"text": "🚲" * 2048})
    with pytest.raises(ApiError) as refused:
        _checked_text({"text": "🚲" * 2049})  # 2,049 characters, 4,098 units
    assert refused.value.status == 400
    assert "message is too long" in refused.value.description


# --- WhatsApp ----------------------------------------------------------------------------------


async def test_a_long_reply_reaches_whatsapp_in_parts_with_the_buttons_on_the_last(
    start_bot: StartBot, whatsapp: CloudApiEmulator
) -> None:
    app = await start_bot(flows=[*FLOWS, LONG], **whatsapp_settings(whatsapp))
    whatsapp.webhook_url = f"http://127.0.0.1:{app.port}/whatsapp"
    amina = whatsapp.user("33612345678")
    assert await amina.send("/roster") == 200
    await amina.wait_for(lambda m: bool(m.buttons), timeout=10)
    parts = amina.inbox
    assert all(part.accepted for part in parts)
    assert [part.type for part in parts] == ["text"] * (len(parts) - 1) + ["interactive"]
    assert all(width(part.text or "") <= TELEGRAM_TEXT_MAX for part in parts)
    assert width(parts[-1].text or "") <= WHATSAPP_BODY_MAX
    assert parts[-1].buttons == ["✅ Je viens", "❌ Non", "🤔 Peut-être"]
    assert "\n".join(part.text or "" for part in parts) == ROSTER


async def test_a_long_reply_refused_midway_resumes_after_the_parts_already_sent(
    start_bot: StartBot, emulator: BotApiEmulator
) -> None:
    await start_bot(flows=[*FLOWS, LONG])
    sam = emulator.resident(7304, language_code="fr")
    emulator.fail(
        "sendMessage",
        status=429,
        description="Too Many Requests: retry after 1",
        retry_after=1,
        chat_id=sam.id,
        after=1,
    )
    sam.send("/roster")
    await sam.wait_for(lambda _m: len(sam.inbox) >= 3, timeout=10)
    await emulator.wait_until_consumed()
    assert "\n".join(part.text or "" for part in sam.inbox) == ROSTER  # each part once
    assert [call.ok for call in emulator.calls_to("sendMessage")] == [True, False, True, True]


def test_a_file_whose_text_is_too_long_for_a_caption_comes_after_the_text() -> None:
    calendar = Attachment("reunion.ics", b"BEGIN:VCALENDAR", "text/calendar")
    short = Reply("À samedi !", CHOICES, attachment=calendar)
    assert messages(short) == [short]  # the text is the file's caption
    long = Reply(ROSTER, CHOICES, attachment=calendar)
    shown = messages(long)
    assert [m.attachment for m in shown] == [None, None, None, calendar]
    assert [bool(m.choices) for m in shown] == [False, False, True, False]
    assert shown[-1].text == ""
    assert "\n".join(m.text for m in shown[:-1]) == ROSTER
    emoji = Reply("🚲" * 600, attachment=calendar)  # 600 characters, 1,200 units: no caption
    assert [m.attachment for m in messages(emoji)] == [None, calendar]

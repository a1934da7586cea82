"""Tests of the Bot API emulator, driven through the real python-telegram-bot client."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    MessageEntity,
    Update,
)
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TimedOut,
)
from telegram.ext import (
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
)
from telegram.request import HTTPXRequest
from telegram.warnings import PTBDeprecationWarning

from tests.emulator import ApiError, BotApiEmulator, FakeUser, SentMessage, html_to_text

TOKEN = "7000000001:TEST-emulator-token"
SPEC_PATH = Path(__file__).resolve().parents[2] / "shared" / "telegram" / "bot-api-spec.json"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(24)  # the emulator only checks the image signature
AMINA_ID = 111


@pytest.fixture
async def emulator() -> AsyncIterator[BotApiEmulator]:
    """A running emulator; when the spec is available, every test must respect it."""
    spec_path = SPEC_PATH if SPEC_PATH.exists() else None
    async with BotApiEmulator(spec_path=spec_path) as running:
        yield running
        assert running.spec_violations == []


@pytest.fixture
async def client(emulator: BotApiEmulator) -> AsyncIterator[Bot]:
    """A python-telegram-bot client talking to the emulator."""
    # The emulator speaks plain HTTP on 127.0.0.1; skipping the TLS set-up that httpx does for
    # every client (loading the certificate store) saves about 50 ms per test.
    async with Bot(
        TOKEN,
        base_url=f"{emulator.url}/bot",
        base_file_url=f"{emulator.url}/file/bot",
        request=HTTPXRequest(httpx_kwargs={"verify": False}),
        get_updates_request=HTTPXRequest(httpx_kwargs={"verify": False}),
    ) as bot:
        yield bot


@pytest.fixture
def amina(emulator: BotApiEmulator) -> FakeUser:
    return emulator.resident(AMINA_ID, username="amina_b")


def keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("Oui, j'aide", callback_data="help:yes"),
                InlineKeyboardButton("Non", callback_data="help:no"),
            ],
            [InlineKeyboardButton("Site", url="https://example.org/aide")],
        ]
    )


async def raw_call(
    emulator: BotApiEmulator, method: str, params: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    """POST a JSON request the way any HTTP client could, bypassing python-telegram-bot."""
    url = f"{emulator.url}/bot{TOKEN}/{method}"
    async with aiohttp.ClientSession() as session, session.post(url, json=params or {}) as reply:
        return reply.status, await reply.json()


def retry_seconds(error: RetryAfter) -> float:
    """RetryAfter.retry_after in seconds, whichever type this PTB version gives it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = error.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


async def test_get_me_describes_the_bot(emulator: BotApiEmulator, client: Bot) -> None:
    me = await client.get_me()

    assert (me.id, me.username, me.first_name) == (
        7000000001,
        "coupdepouce_test_bot",
        "Coup de pouce",
    )
    assert me.is_bot
    assert emulator.calls_to("getMe")[-1].token == TOKEN


async def test_sent_message_keeps_text_and_inline_keyboard(
    emulator: BotApiEmulator, client: Bot, amina: FakeUser
) -> None:
    sent = await client.send_message(
        amina.id, "Besoin d'un coup de main ?", reply_markup=keyboard()
    )

    assert sent.chat.id == amina.id
    assert sent.from_user is not None
    assert sent.from_user.id == emulator.bot_id
    assert sent.reply_markup == keyboard()
    [message] = amina.inbox
    assert message.message_id == sent.message_id
    assert message.text == "Besoin d'un coup de main ?"
    assert message.labels() == ["Oui, j'aide", "Non", "Site"]
    assert message.button("Oui").callback_data == "help:yes"
    assert message.button("Site").url == "https://example.org/aide"
    with pytest.raises(AssertionError, match="ambiguous"):
        message.button("i")
    with pytest.raises(AssertionError, match="matches no button"):
        message.button("Peut-être")


async def test_parameters_are_decoded_by_type(
    emulator: BotApiEmulator, client: Bot, amina: FakeUser
) -> None:
    await client.send_message(
        amina.id, "42", entities=[MessageEntity(MessageEntity.BOLD, offset=0, length=2)]
    )
    await client.send_message("@amina_b", "true")
    async with aiohttp.ClientSession() as session:
        json_body = {"chat_id": amina.id, "text": "via JSON"}
        async with session.post(f"{emulator.url}/bot{TOKEN}/SENDMESSAGE", json=json_body) as reply:
            assert (await reply.json())["ok"]
        query = {"chat_id": str(amina.id), "text": "7"}
        async with session.get(f"{emulator.url}/bot{TOKEN}/sendmessage", params=query) as reply:
            assert reply.status == 200
        headers = {"Content-Type": "application/json"}
        url = f"{emulator.url}/bot{TOKEN}/sendMessage"
        async with session.post(url, data=b"{oops", headers=headers) as reply:
            assert (reply.status, (await reply.json())["description"]) == (
                400,
                "Bad Request: can't parse JSON object",
            )

    first, second, third, fourth, unreadable = emulator.calls_to("sendMessage")
    assert first.params == {
        "chat_id": amina.id,
        "text": "42",
        "entities": [{"type": "bold", "offset": 0, "length": 2}],
    }
    assert second.params["chat_id"] == "@amina_b"
    assert second.params["text"] == "true"
    assert third.params == json_body
    assert fourth.params == {"chat_id": amina.id, "text": "7"}
    assert (unreadable.params, unreadable.ok) == ({}, False)
    assert [m.text for m in amina.inbox] == ["42", "true", "via JSON", "7"]


async def test_edits_and_deletions_are_applied(client: Bot, amina: FakeUser) -> None:
    sent = await client.send_message(amina.id, "Demande reçue", reply_markup=keyboard())

    edited = await client.edit_message_text(
        "Demande acceptée", amina.id, sent.message_id, reply_markup=keyboard()
    )
    assert not isinstance(edited, bool)
    assert edited.text == "Demande acceptée"
    with pytest.raises(BadRequest, match="not modified"):
        await client.edit_message_text(
            "Demande acceptée", amina.id, sent.message_id, reply_markup=keyboard()
        )
    await client.edit_message_text("Demande close", amina.id, sent.message_id)
    [message] = amina.inbox
    assert (message.text, message.edited, message.buttons) == ("Demande close", 2, [])

    await client.edit_message_reply_markup(amina.id, sent.message_id, reply_markup=keyboard())
    assert message.labels() == ["Oui, j'aide", "Non", "Site"]
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await client.edit_message_text("?", amina.id, sent.message_id + 100)

    assert await client.delete_message(amina.id, sent.message_id)
    assert message.deleted
    with pytest.raises(BadRequest, match="Message to delete not found"):
        await client.delete_message(amina.id, sent.message_id)


async def test_documents_and_photos_keep_their_bytes(
    emulator: BotApiEmulator, client: Bot, amina: FakeUser
) -> None:
    content = b"date;heures\n2024-05-01;3\n"
    sent = await client.send_document(
        amina.id, InputFile(content, filename="bilan.csv"), caption="Votre bilan"
    )
    assert sent.document is not None
    assert sent.document.file_name == "bilan.csv"
    assert sent.caption == "Votre bilan"
    assert emulator.calls_to("sendDocument")[0].files["document"] == ("bilan.csv", content)

    again = await client.send_document(amina.id, sent.document.file_id)
    photo = await client.send_photo(amina.id, PNG, caption="QR code")
    assert photo.photo
    assert photo.photo[-1].file_size == len(PNG)

    document, resent, picture = amina.inbox
    assert document.document == ("bilan.csv", content)
    assert document.caption == "Votre bilan"
    assert again.document is not None
    assert resent.document == ("bilan.csv", content)
    assert picture.photo == PNG
    with pytest.raises(BadRequest, match="Image_process_failed"):
        await client.send_photo(amina.id, b"not an image")
    with pytest.raises(BadRequest, match="caption is too long"):
        await client.send_document(
            amina.id, InputFile(content, filename="a.csv"), caption="x" * 1025
        )


async def test_captions_are_edited_apart_from_texts(client: Bot, amina: FakeUser) -> None:
    document = await client.send_document(
        amina.id, InputFile(b"1;2\n", filename="bilan.csv"), caption="Bilan de mai"
    )
    text = await client.send_message(amina.id, "Bonjour")

    await client.edit_message_caption(amina.id, document.message_id, caption="Bilan de juin")
    assert amina.inbox[0].caption == "Bilan de juin"
    with pytest.raises(BadRequest, match="not modified"):
        await client.edit_message_caption(amina.id, document.message_id, caption="Bilan de juin")
    with pytest.raises(BadRequest, match="There is no text in the message to edit"):
        await client.edit_message_text("Bilan", amina.id, document.message_id)
    with pytest.raises(BadRequest, match="There is no caption in the message to edit"):
        await client.edit_message_caption(amina.id, text.message_id, caption="Bonjour")
    assert [m.edited for m in amina.inbox] == [1, 0]


@pytest.mark.parametrize(
    ("chat_id", "text", "markup", "error"),
    [
        (AMINA_ID, "x" * 4097, None, "Message is too long"),
        (AMINA_ID, "   ", None, "Message text is empty"),
        (
            AMINA_ID,
            "ok",
            [[InlineKeyboardButton("b", callback_data="é" * 33)]],
            "Button_data_invalid",
        ),
        (AMINA_ID, "ok", [[InlineKeyboardButton("b", callback_data="")]], "Button_data_invalid"),
        (
            AMINA_ID,
            "ok",
            [[InlineKeyboardButton("b", callback_data=str(n))] for n in range(101)],
            "Reply markup is too long",
        ),
        (999, "ok", None, "Chat not found"),
        ("@nobody", "ok", None, "Chat not found"),
    ],
)
async def test_invalid_messages_are_rejected_like_telegram(
    client: Bot,
    amina: FakeUser,
    chat_id: int | str,
    text: str,
    markup: list[list[InlineKeyboardButton]] | None,
    error: str,
) -> None:
    reply_markup = InlineKeyboardMarkup(markup) if markup is not None else None

    with pytest.raises(BadRequest, match=error):
        await client.send_message(chat_id, text, reply_markup=reply_markup)
    assert amina.inbox == []


async def test_limits_are_inclusive(client: Bot, amina: FakeUser) -> None:
    data = "é" * 32  # 64 bytes
    buttons = [[InlineKeyboardButton(str(n), callback_data=data)] for n in range(100)]

    await client.send_message(amina.id, "x" * 4096, reply_markup=InlineKeyboardMarkup(buttons))

    [message] = amina.inbox
    assert len(message.labels()) == 100


async def test_html_is_parsed_and_checked(client: Bot, amina: FakeUser) -> None:
    sent = await client.send_message(amina.id, "<b>Bonjour</b> &amp; <i>bienvenue</i>", "HTML")

    assert sent.text == "Bonjour & bienvenue"
    assert amina.inbox[0].plain_text == "Bonjour & bienvenue"
    assert amina.inbox[0].text == "<b>Bonjour</b> &amp; <i>bienvenue</i>"
    for broken in ("<b>Bonjour", "1 < 2", "<br>", "<b>x</i>"):
        with pytest.raises(BadRequest, match="Can't parse entities"):
            await client.send_message(amina.id, broken, "HTML")
    assert len(amina.inbox) == 1


def test_html_errors_use_telegram_wording() -> None:
    cases = {
        "é<x>": 'Unsupported start tag "x" at byte offset 2',
        "<b>a</i>": 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"',
        "<i>a": 'Can\'t find end tag corresponding to start tag "i"',
        "a</b>": "Unexpected end tag at byte offset 1",
    }
    for source, reason in cases.items():
        with pytest.raises(ApiError) as caught:
            html_to_text(source)
        assert str(caught.value) == f"Bad Request: can't parse entities: {reason}"


async def test_injected_errors_surface_as_ptb_exceptions(
    emulator: BotApiEmulator, client: Bot, amina: FakeUser
) -> None:
    emulator.fail(
        "sendMessage", status=429, description="Too Many Requests: retry after 5", retry_after=5
    )
    with warnings.catch_warnings():
        # PTB 22 warns, while building RetryAfter, that retry_after will become a timedelta
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        with pytest.raises(RetryAfter) as flood:
            await client.send_message(amina.id, "un")
    assert retry_seconds(flood.value) == 5
    assert emulator.calls_to("sendMessage")[-1].response == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 5",
        "parameters": {"retry_after": 5},
    }

    other = emulator.resident(222, first_name="Karim")
    emulator.fail("sendmessage", status=400, description="Bad Request: boom", times=2, chat_id=222)
    await client.send_message(amina.id, "pas concerné")
    for _ in range(2):
        with pytest.raises(BadRequest, match="Boom"):
            await client.send_message(other.id, "deux")
    await client.send_message(other.id, "trois")
    assert [m.text for m in other.inbox] == ["trois"]

    emulator.block(amina.id)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await client.send_message(amina.id, "bloqué")
    with pytest.raises(Forbidden):
        await client.send_chat_action(amina.id, "typing")
    emulator.unblock(amina.id)
    await client.send_message(amina.id, "débloqué")
    assert [m.text for m in amina.inbox] == ["pas concerné", "débloqué"]

    group = emulator.group(-100200300)
    emulator.block(group.id)
    with pytest.raises(Forbidden, match="kicked"):
        await client.send_message(group.id, "bonjour")


async def test_rejected_token_and_unknown_method(emulator: BotApiEmulator, client: Bot) -> None:
    emulator.reject_token("42:revoked")
    with pytest.raises(InvalidToken):
        async with Bot("42:revoked", base_url=f"{emulator.url}/bot"):
            pass
    assert emulator.calls_to("getMe")[-1].response == {
        "ok": False,
        "error_code": 401,
        "description": "Unauthorized",
    }

    with pytest.raises(EndPointNotFound):
        await client.do_api_request("sendTelepathy", api_kwargs={"chat_id": AMINA_ID})
    assert emulator.calls[-1].response == {
        "ok": False,
        "error_code": 404,
        "description": "Not Found",
    }
    flagged = ["sendTelepathy: no such method in the Bot API"] if SPEC_PATH.exists() else []
    assert emulator.spec_violations == flagged
    emulator.spec_violations.clear()


async def test_get_updates_long_polls_and_confirms_with_offset(
    emulator: BotApiEmulator, client: Bot, amina: FakeUser
) -> None:
    started = time.monotonic()
    assert await client.get_updates(timeout=dtm.timedelta(seconds=0.3)) == ()
    assert 0.25 <= time.monotonic() - started < 1.0

    started = time.monotonic()
    polling = asyncio.create_task(client.get_updates(timeout=5))
    await asyncio.sleep(0.05)
    first_id = amina.send("bonjour")
    second_id = amina.send("/start")
    updates = await polling
    assert time.monotonic() - started < 0.5

    assert [u.update_id for u in updates] == [first_id, second_id]
    assert second_id == first_id + 1
    assert updates[0].message is not None
    assert updates[0].message.text == "bonjour"
    command = updates[1].message
    assert command is not None
    assert command.entities[0].type == MessageEntity.BOT_COMMAND
    assert emulator.pending_updates == 2  # fetched, not confirmed yet

    again = await client.get_updates(offset=first_id + 1, timeout=0)
    assert [u.update_id for u in again] == [second_id]
    assert emulator.pending_updates == 1
    assert await client.get_updates(offset=second_id + 1, timeout=0) == ()
    assert emulator.pending_updates == 0
    await emulator.wait_until_consumed(timeout=0.1)

    amina.send("encore")
    with pytest.raises(AssertionError, match="1 update"):
        await emulator.wait_until_consumed(timeout=0.05)


async def test_take_update_and_wait_until(emulator: BotApiEmulator, amina: FakeUser) -> None:
    update_id = amina.send("bonjour")

    taken = emulator.take_update(update_id)
    assert taken["update_id"] == update_id
    message = Update.de_json(taken, None).message
    assert message is not None
    assert message.from_user is not None
    assert (message.text, message.from_user.id) == ("bonjour", amina.id)
    assert emulator.pending_updates == 0
    with pytest.raises(AssertionError, match="not pending"):
        emulator.take_update(update_id)

    async def write_later() -> None:
        await asyncio.sleep(0.02)
        amina.send("hop")

    writer = asyncio.create_task(write_later())
    assert await emulator.wait_until(lambda: emulator.pending_updates or None, timeout=1) == 1
    await writer
    with pytest.raises(AssertionError, match="still unmet"):
        await emulator.wait_until(lambda: len(amina.inbox) == 1, timeout=0.05)


async def test_limit_and_allowed_updates(
    emulator: BotApiEmulator, client: Bot, amina: FakeUser
) -> None:
    for word in ("un", "deux", "trois"):
        amina.send(word)
    reaction = {
        "message_reaction": {
            "chat": emulator.chat_json(amina.id),
            "message_id": 1,
            "user": amina.user,
            "date": 0,
            "old_reaction": [],
            "new_reaction": [{"type": "emoji", "emoji": "👍"}],
        }
    }
    emulator.push_update(reaction)

    first_two = await client.get_updates(limit=2)
    assert [u.message.text for u in first_two if u.message] == ["un", "deux"]
    rest = await client.get_updates(offset=first_two[-1].update_id + 1)
    assert [u.message.text for u in rest if u.message] == ["trois"]  # reactions not asked for

    emulator.push_update(reaction)
    asked = await client.get_updates(
        offset=rest[-1].update_id + 1, allowed_updates=["message_reaction"]
    )
    assert [u.message_reaction is not None for u in asked] == [True]


async def test_pushed_updates_make_chats_known(emulator: BotApiEmulator, client: Bot) -> None:
    group_id, karim_id = -1009876543210, 333
    chat = {"id": group_id, "type": "supergroup", "title": "Quartier Nord"}
    karim = {"id": karim_id, "is_bot": False, "first_name": "Karim", "language_code": "ar"}
    message = {"message_id": 57, "from": karim, "chat": chat, "date": 1, "text": "salut"}

    assert emulator.push_update({"update_id": 900000007, "message": message}) == 900000007
    assert emulator.push_update({"message": {**message, "message_id": 58}}) == 900000008
    reply = await client.send_message(group_id, "Bienvenue")
    assert reply.message_id == 59  # the bot's messages continue the chat's sequence
    await client.send_message(karim_id, "Bonjour Karim")

    bot_user = {"id": emulator.bot_id, "is_bot": True, "first_name": emulator.bot_first_name}
    blocked_by_karim = {
        "chat": {"id": karim_id, "type": "private", "first_name": "Karim"},
        "from": karim,
        "date": 2,
        "old_chat_member": {"status": "member", "user": bot_user},
        "new_chat_member": {"status": "kicked", "until_date": 0, "user": bot_user},
    }
    emulator.push_update({"my_chat_member": blocked_by_karim})
    with pytest.raises(Forbidden, match="blocked"):
        await client.send_message(karim_id, "Toujours là ?")


async def test_tap_sends_callback_query_ptb_understands(
    emulator: BotApiEmulator, client: Bot, amina: FakeUser
) -> None:
    sent = await client.send_message(amina.id, "Vous aidez ?", reply_markup=keyboard())

    amina.tap("Oui")
    _, body = await raw_call(emulator, "getUpdates")
    update = Update.de_json(body["result"][0], client)

    query = update.callback_query
    assert query is not None
    assert query.data == "help:yes"
    assert query.from_user.id == amina.id
    assert isinstance(query.message, Message)
    assert query.message.message_id == sent.message_id
    assert query.message.reply_markup == keyboard()

    assert await client.answer_callback_query(query.id, text="Merci !")
    assert [c.params["text"] for c in amina.answered_callbacks] == ["Merci !"]
    with pytest.raises(BadRequest, match="query id is invalid"):
        await client.answer_callback_query("123", text="?")

    amina.tap_data("admin:delete-all")
    forged = await client.get_updates(offset=update.update_id + 1)
    assert forged[0].callback_query is not None
    assert forged[0].callback_query.data == "admin:delete-all"
    with pytest.raises(AssertionError, match="sends no callback query"):
        amina.tap("Site")


async def test_group_commands_carry_bot_command_entities(
    emulator: BotApiEmulator, client: Bot, amina: FakeUser
) -> None:
    group = emulator.group(-1001234567890, title="Conseil de quartier")

    group.send(amina, "/aide@coupdepouce_test_bot maintenant")
    [update] = await client.get_updates()

    message = update.message
    assert message is not None
    assert message.chat.type == "supergroup"
    assert message.chat.title == "Conseil de quartier"
    assert message.from_user is not None
    assert message.from_user.id == amina.id
    assert message.parse_entities([MessageEntity.BOT_COMMAND]).popitem()[1] == (
        "/aide@coupdepouce_test_bot"
    )
    await client.send_message(group.id, "Voici l'aide")
    assert [m.text for m in group.inbox] == ["Voici l'aide"]
    assert amina.inbox == []


async def test_next_message_and_wait_for(client: Bot, amina: FakeUser) -> None:
    await client.send_message(amina.id, "un")
    await client.send_message(amina.id, "deux")

    assert (await amina.next_message()).text == "un"
    assert (await amina.next_message()).text == "deux"
    with pytest.raises(AssertionError, match="'deux'"):
        await amina.next_message(timeout=0.05)

    later = asyncio.create_task(amina.next_message())
    await asyncio.sleep(0)
    sent = await client.send_message(amina.id, "En cours…", reply_markup=keyboard())
    assert (await later).text == "En cours…"

    def finished(message: SentMessage) -> bool:
        return message.text == "Terminé"

    waiting = asyncio.create_task(amina.wait_for(finished))
    await asyncio.sleep(0)
    await client.edit_message_text("Terminé", amina.id, sent.message_id)
    done = await waiting
    assert (done.message_id, done.edited) == (sent.message_id, 1)
    with pytest.raises(AssertionError, match="no message"):
        await amina.wait_for(lambda m: m.text == "jamais", timeout=0.05)


async def test_webhook_blocks_polling(emulator: BotApiEmulator, client: Bot) -> None:
    assert await client.set_webhook(
        "https://example.org/telegram", secret_token="s3cret", allowed_updates=["message"]
    )
    assert (emulator.webhook_url, emulator.webhook_secret) == (
        "https://example.org/telegram",
        "s3cret",
    )
    assert emulator.webhook_allowed_updates == ["message"]
    info = await client.get_webhook_info()
    assert info.url == "https://example.org/telegram"
    with pytest.raises(Conflict, match="webhook is active"):
        await client.get_updates()

    assert await client.delete_webhook()
    assert emulator.webhook_url is None
    assert await client.get_updates() == ()
    with pytest.raises(BadRequest, match="an https url must be provided"):
        await client.set_webhook("http://example.org/telegram")


async def test_second_poller_terminates_the_first(emulator: BotApiEmulator) -> None:
    first = asyncio.create_task(raw_call(emulator, "getUpdates", {"timeout": 5}))
    await asyncio.sleep(0.05)

    assert await raw_call(emulator, "getUpdates", {"timeout": 0}) == (
        200,
        {"ok": True, "result": []},
    )
    status, body = await first
    assert (status, body["error_code"]) == (409, 409)
    assert body["description"].startswith("Conflict: terminated by other getUpdates request")


async def test_slow_answer_still_delivers_the_message(
    emulator: BotApiEmulator, client: Bot, amina: FakeUser
) -> None:
    emulator.response_delay = 0.3

    with pytest.raises(TimedOut):
        await client.send_message(amina.id, "lent", read_timeout=0.05)

    assert [m.text for m in amina.inbox] == ["lent"]


async def test_commands_menu_and_chat_actions(
    emulator: BotApiEmulator, client: Bot, amina: FakeUser
) -> None:
    commands = [
        BotCommand("aide", "Afficher l'aide"),
        BotCommand("demande", "Demander un coup de main"),
    ]
    assert await client.set_my_commands(commands, language_code="fr")

    assert await client.get_my_commands(language_code="fr") == tuple(commands)
    assert await client.get_my_commands() == ()
    assert emulator.my_commands(language_code="fr")[0] == {
        "command": "aide",
        "description": "Afficher l'aide",
    }
    with pytest.raises(BadRequest, match="Bot_command_invalid"):
        await client.set_my_commands([BotCommand("Aide", "Majuscule interdite")])
    assert await client.delete_my_commands(language_code="fr")
    assert await client.get_my_commands(language_code="fr") == ()

    assert await client.set_chat_menu_button()
    assert await client.send_chat_action(amina.id, "typing")
    status, body = await raw_call(
        emulator, "sendChatAction", {"chat_id": amina.id, "action": "dancing"}
    )
    assert (status, body["description"]) == (400, "Bad Request: wrong parameter action in request")
    assert await client.close()
    assert await client.log_out()


async def test_spec_check_reports_bad_calls(
    emulator: BotApiEmulator, client: Bot, amina: FakeUser
) -> None:
    if not SPEC_PATH.exists():
        pytest.skip(f"Bot API spec not available at {SPEC_PATH}")

    await client.send_message(amina.id, "conforme")
    assert emulator.spec_violations == []

    status, _ = await raw_call(emulator, "sendMessage", {"chat_id": amina.id, "txt": "coquille"})

    assert status == 400
    assert emulator.spec_violations == [
        "sendMessage: required field 'text' is missing",
        "sendMessage: unknown field 'txt'",
    ]
    emulator.spec_violations.clear()


async def test_real_application_round_trip(emulator: BotApiEmulator, amina: FakeUser) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text("Bienvenue !", reply_markup=keyboard())

    async def choice(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer()
        await query.edit_message_text(f"Choix : {query.data}")

    application = (
        ApplicationBuilder()
        .token(TOKEN)
        .base_url(f"{emulator.url}/bot")
        .base_file_url(f"{emulator.url}/file/bot")
        .build()
    )
    application.add_handler(CommandHandler("start", start))
    application.add_handler(CallbackQueryHandler(choice))

    async with application:
        await application.start()
        assert application.updater is not None
        await application.updater.start_polling(poll_interval=0)
        try:
            amina.send("/start")
            welcome = await amina.next_message()
            assert welcome.labels() == ["Oui, j'aide", "Non", "Site"]
            amina.tap("Non")
            final = await amina.wait_for(lambda m: m.text == "Choix : help:no")
            await emulator.wait_until_consumed()
        finally:
            await application.updater.stop()
            await application.stop()

    assert final.message_id == welcome.message_id
    assert final.buttons == []
    assert len(amina.answered_callbacks) == 1


class FakeClock:
    """A clock a test steps by hand, to drive the flood limits without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(emulator: BotApiEmulator) -> FakeClock:
    """Replace the emulator's clock: time only passes when the test says so."""
    fake = FakeClock()
    emulator.clock = fake
    return fake


@contextlib.contextmanager
def quiet_retry_after() -> Iterator[None]:
    """Silence PTB 22's warning about RetryAfter.retry_after becoming a timedelta.

    Enter it in the test itself, around any concurrent sends, never inside each task: nested
    catch_warnings blocks that exit out of order would leak their filters.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        yield


async def try_send(client: Bot, chat_id: int, text: str) -> float | None:
    """Send a message: None once delivered, or the retry_after (seconds) of a 429."""
    try:
        await client.send_message(chat_id, text)
    except RetryAfter as flood:
        return retry_seconds(flood)
    return None


def too_many_requests(seconds: int) -> dict[str, Any]:
    return {
        "ok": False,
        "error_code": 429,
        "description": f"Too Many Requests: retry after {seconds}",
        "parameters": {"retry_after": seconds},
    }


async def test_burst_beyond_the_global_limit_is_refused_and_not_delivered(
    emulator: BotApiEmulator, client: Bot, clock: FakeClock
) -> None:
    people = [emulator.resident(1000 + n) for n in range(40)]
    emulator.enforce_limits(
        global_per_second=30, per_chat_per_second=None, per_group_per_minute=None
    )

    with quiet_retry_after():
        outcomes = await asyncio.gather(
            *(try_send(client, person.id, f"Annonce {person.id}") for person in people)
        )

    assert sorted(outcome or 0 for outcome in outcomes) == [0] * 30 + [1] * 10
    assert len(emulator.flood_refusals) == 10
    for refused in emulator.flood_refusals:
        assert refused.response == too_many_requests(1)
        assert refused in emulator.calls
        assert emulator.messages(refused.params["chat_id"]) == []
    delivered = emulator.delivered_texts()
    assert len(delivered) == len(set(delivered)) == 30
    assert {(call.params["chat_id"], call.params["text"]) for call in emulator.received()} == set(
        delivered
    )
    assert emulator.max_rate() == 30

    # Half a second later the bucket holds 15 tokens, but the bot was told to wait 1 s.
    clock.advance(0.5)
    with quiet_retry_after():
        assert await try_send(client, people[0].id, "Encore") == 1
    clock.advance(0.5)
    assert await try_send(client, people[0].id, "Enfin") is None
    assert len(emulator.flood_refusals) == 11


async def test_per_chat_limit_counts_sends_and_edits_only(
    emulator: BotApiEmulator, client: Bot, amina: FakeUser, clock: FakeClock
) -> None:
    karim, leila = emulator.resident(222), emulator.resident(333)
    emulator.enforce_limits(global_per_second=2, per_chat_per_second=1)

    first = await client.send_message(amina.id, "un")
    with quiet_retry_after():
        assert await try_send(client, amina.id, "deux") == 1
        # The refusal took no token from the bot-wide bucket: one is left for Karim.
        assert await try_send(client, karim.id, "bonjour") is None
        assert await try_send(client, leila.id, "bonjour") == 1
        assert await client.send_chat_action(amina.id, "typing")  # not a message
        with pytest.raises(RetryAfter):
            await client.edit_message_text("un !", amina.id, first.message_id)

    clock.advance(1)
    with pytest.raises(BadRequest, match="Message text is empty"):
        await client.send_message(amina.id, "   ")  # takes no token either
    await client.edit_message_text("un !", amina.id, first.message_id)

    assert [m.text for m in amina.inbox] == ["un !"]
    assert leila.inbox == []
    assert [call.method for call in emulator.flood_refusals] == [
        "sendMessage",
        "sendMessage",
        "editMessageText",
    ]
    assert [call.method for call in emulator.received()] == [
        "sendMessage",
        "sendMessage",
        "editMessageText",
    ]


async def test_group_limit_is_per_minute(
    emulator: BotApiEmulator, client: Bot, amina: FakeUser, clock: FakeClock
) -> None:
    group = emulator.group(-100200300)
    emulator.enforce_limits(per_group_per_minute=20)

    assert await try_send(client, group.id, "Réunion jeudi") is None
    with quiet_retry_after():
        assert await try_send(client, group.id, "Rappel") == 3  # 20 a minute: one every 3 s
    assert await try_send(client, amina.id, "Bonjour") is None  # other chats are not held up
    clock.advance(1.5)
    with quiet_retry_after():
        assert await try_send(client, group.id, "Rappel") == 2  # 1.5 s, rounded up
    clock.advance(1.5)
    assert await try_send(client, group.id, "Rappel") is None

    emulator.enforce_limits(per_group_per_minute=20, burst=60)  # a minute's worth at once
    for n in range(20):
        assert await try_send(client, group.id, f"Point {n}") is None
    with quiet_retry_after():
        assert await try_send(client, group.id, "Point 20") == 3
    assert len(group.inbox) == 22


async def test_retry_after_is_honoured_then_accepted(
    emulator: BotApiEmulator, client: Bot, amina: FakeUser
) -> None:
    emulator.enforce_limits()  # Telegram's limits, on the real clock

    await client.send_message(amina.id, "un")
    with quiet_retry_after():
        with pytest.raises(RetryAfter) as flood:
            await client.send_message(amina.id, "deux")
        wait = retry_seconds(flood.value)
        assert wait == 1
        with pytest.raises(RetryAfter):
            await client.send_message(amina.id, "deux")  # too early
    await asyncio.sleep(wait)
    await client.send_message(amina.id, "deux")

    assert [m.text for m in amina.inbox] == ["un", "deux"]
    assert len(emulator.flood_refusals) == 2


async def test_sending_during_the_announced_wait_stays_refused(
    emulator: BotApiEmulator, client: Bot, amina: FakeUser, clock: FakeClock
) -> None:
    emulator.enforce_limits(retry_after=3)

    assert await try_send(client, amina.id, "un") is None
    with quiet_retry_after():
        assert await try_send(client, amina.id, "deux") == 3
        clock.advance(1.5)  # a token is back, but Telegram said 3 s
        assert await try_send(client, amina.id, "deux") == 3
    clock.advance(1.5)
    assert await try_send(client, amina.id, "deux") is None
    assert [m.text for m in amina.inbox] == ["un", "deux"]


async def test_honouring_retry_after_keeps_a_broadcast_within_limits(
    emulator: BotApiEmulator, client: Bot, clock: FakeClock
) -> None:
    people = [emulator.resident(1000 + n) for n in range(60)]
    emulator.enforce_limits(global_per_second=30)
    start = clock.now

    with quiet_retry_after():
        for person in people:
            while (wait := await try_send(client, person.id, "Fête de quartier")) is not None:
                clock.advance(wait)
            clock.advance(0.005)

    assert sorted(emulator.delivered_texts()) == [(p.id, "Fête de quartier") for p in people]
    assert emulator.flood_refusals
    assert emulator.max_rate(1.0) <= 30 + 30  # a full bucket plus a second of refill
    assert clock.now - start >= (60 - 30) / 30  # what the first full bucket did not cover


async def test_max_rate_counts_successful_sends_in_sliding_windows(
    emulator: BotApiEmulator, client: Bot, amina: FakeUser, clock: FakeClock
) -> None:
    karim = emulator.resident(222)
    assert emulator.max_rate() == 0
    start = clock.now
    sent: list[Message] = []
    for offset, person in [(0.0, amina), (0.5, karim), (0.9, karim), (1.0, amina), (1.4, karim)]:
        clock.now = start + offset
        sent.append(await client.send_message(person.id, f"à {offset}"))
        with pytest.raises(BadRequest):
            await client.send_message(person.id, "")  # failed sends do not count
        await client.send_chat_action(person.id, "typing")  # nor other methods
    clock.now = start + 3
    await client.edit_message_text("modifié", amina.id, sent[0].message_id)

    assert [call.at - start for call in emulator.received("sendmessage")] == pytest.approx(
        [0.0, 0.5, 0.9, 1.0, 1.4]
    )
    assert [call.method for call in emulator.received()][-1] == "editMessageText"
    assert emulator.max_rate() == 4  # from 0.5 to 1.4
    assert emulator.max_rate(2.0) == 2.5  # five sends within two seconds
    assert emulator.max_rate(0.25) == 8  # 0.9 and 1.0
    assert emulator.max_rate(chat_id=amina.id) == 1  # 0.0 and 1.0 never share a window
    assert emulator.max_rate(chat_id=karim.id) == 3
    with pytest.raises(ValueError, match="window"):
        emulator.max_rate(0)


async def test_lift_limits(
    emulator: BotApiEmulator, client: Bot, amina: FakeUser, clock: FakeClock
) -> None:
    emulator.enforce_limits()
    assert await try_send(client, amina.id, "un") is None
    with quiet_retry_after():
        assert await try_send(client, amina.id, "deux") == 1

    emulator.lift_limits()
    for n in range(5):
        assert await try_send(client, amina.id, f"sans limite {n}") is None
    assert len(emulator.flood_refusals) == 1

    emulator.enforce_limits()  # afresh: full buckets, no ban
    assert await try_send(client, amina.id, "trois") is None
    with quiet_retry_after():
        assert await try_send(client, amina.id, "quatre") == 1
    assert len(amina.inbox) == 7
    with pytest.raises(ValueError, match="positive"):
        emulator.enforce_limits(global_per_second=0)
    with pytest.raises(ValueError, match="at least 1"):
        emulator.enforce_limits(retry_after=0)


async def test_delivered_texts_lists_each_delivery(
    emulator: BotApiEmulator, client: Bot, amina: FakeUser
) -> None:
    group = emulator.group(-100200300)

    hello = await client.send_message(amina.id, "<b>Bonjour</b>", "HTML")
    await client.send_document(amina.id, InputFile(b"1;2\n", filename="bilan.csv"))
    await client.send_photo(group.id, PNG, caption="Affiche")
    await client.edit_message_text("Bonsoir", amina.id, hello.message_id)
    await client.send_message(amina.id, "<b>Bonjour</b>", "HTML")

    assert emulator.delivered_texts() == [
        (amina.id, "<b>Bonjour</b>"),
        (amina.id, ""),
        (group.id, "Affiche"),
        (amina.id, "<b>Bonjour</b>"),
    ]

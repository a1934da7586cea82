"""Telegram adapter: Update → Inbound, Outcome → Bot API calls. No business rules here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import OrderedDict
from collections.abc import Awaitable, Coroutine, Sequence
from dataclasses import replace
from datetime import timedelta
from functools import partial
from typing import Any

from telegram import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    Update,
)
from telegram.constants import (
    BotCommandLimit,
    ChatMemberStatus,
    ChatType,
    MessageEntityType,
    MessageLimit,
)
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.ext import Application, ApplicationBuilder

from bot.channels import gathering, text
from bot.channels.hints import with_location_hint
from bot.channels.http import AiohttpRequest
from bot.channels.lanes import ChatLanes
from bot.dispatcher import Delivery, DeliveryKind, Envelope, answer
from bot.lease import Lease
from bot.ratelimit import RateLimiter
from flows.engine import CONVERSATION_PREFIX, Engine, Event, Inbound, Outcome, Reply
from flows.i18n import SHIPPED_LOCALES, Translator

log = logging.getLogger(__name__)

# Read RetryAfter.retry_after as a timedelta, the library's behaviour from its next major version.
os.environ.setdefault("PTB_TIMEDELTA", "true")

CHANNEL = "telegram"
BURST = 0.1  # seconds of sending let through at once: pace rather than burst
CONNECTIONS = (
    64  # HTTP connections to the Bot API: the dispatcher's requests in flight, and replies
)
POLL_TIMEOUT = 30  # seconds Telegram holds a getUpdates call open
# Chats whose replies may be in hand at once before reading waits: far above what the rate
# limit sends in a second, low enough to bound memory if the Bot API stalls.
CHATS_IN_HAND = 1000
QUESTIONS_KEPT = 100_000  # chats whose current question is remembered (an id each)
ALLOWED_UPDATES = ["message", "callback_query", "my_chat_member"]


def to_inbound(update: Update, bot_username: str) -> Inbound | None:
    """Turn an update into a channel-neutral event; None for what the bot ignores."""
    user = update.effective_user
    if user is None or user.is_bot:
        return None
    common: dict[str, Any] = {
        "channel": CHANNEL,
        "sender_id": str(user.id),
        "language_code": user.language_code,
        "first_name": (user.first_name or "")[:200],
        "username": user.username,
        "event_id": update.update_id,
    }
    membership = update.my_chat_member
    if membership is not None:
        if membership.chat.type != ChatType.PRIVATE:
            return None
        status = membership.new_chat_member.status
        if status not in (ChatMemberStatus.BANNED, ChatMemberStatus.MEMBER):
            return None
        blocked = status == ChatMemberStatus.BANNED  # "kicked": the person blocked the bot
        return Inbound(chat_id=str(membership.chat.id), blocked=blocked, **common)
    query = update.callback_query
    if query is not None:
        chat = query.message.chat if query.message is not None else None
        return Inbound(
            chat_id=str(chat.id if chat else user.id),
            private=chat is None or chat.type == ChatType.PRIVATE,
            choice=query.data or "",
            **common,
        )
    message = update.message
    if message is None or message.chat is None:
        return None  # edited messages, channel posts, polls, member updates…
    private = message.chat.type == ChatType.PRIVATE
    command = _command(message, bot_username)
    if command is not None:
        name, argument = command
        return Inbound(
            chat_id=str(message.chat.id), private=private, command=name, argument=argument, **common
        )
    if not private:
        return None  # in groups, only commands
    if message.location is not None and message.text is None:
        where = (message.location.latitude, message.location.longitude)
        return Inbound(chat_id=str(message.chat.id), location=where, **common)
    return Inbound(chat_id=str(message.chat.id), text=message.text, **common)


def _command(message: Message, bot_username: str) -> tuple[str, str] | None:
    """The command a message starts with, and what follows it; None if it is not one for us."""
    text = message.text or ""
    entities = message.entities or ()
    if not entities or entities[0].type != MessageEntityType.BOT_COMMAND or entities[0].offset != 0:
        return None
    word = text[1 : entities[0].length]
    name, _, addressee = word.partition("@")
    if addressee and addressee.lower() != bot_username.lower():
        return None  # meant for another bot in the group
    return name.lower(), text[entities[0].length :].strip()


def asks(reply: Reply) -> bool:
    """Whether the reply is a conversation's question (its buttons answer the current step)."""
    return any(
        choice.data.startswith(CONVERSATION_PREFIX + ":") for row in reply.choices for choice in row
    )


def keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    if not reply.choices:
        return None
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(c.label, callback_data=c.data) for c in row]
            for row in reply.choices
        ]
    )


def messages(reply: Reply) -> list[Reply]:
    """The messages that show a reply on Telegram, in order: a text over 4,096 characters
    in several, its buttons on the last; a file with the text as its caption when that fits
    in 1,024 characters, else after the text, alone."""
    attachment = reply.attachment
    if attachment is not None and text.width(reply.text) <= MessageLimit.CAPTION_LENGTH:
        return [reply]
    parts = text.split(reply.text, MessageLimit.MAX_TEXT_LENGTH)
    shown = [
        replace(reply, text=part, choices=(), attachment=None, replace=False) for part in parts
    ]
    shown[-1] = replace(shown[-1], choices=reply.choices)
    if attachment is not None:
        shown.append(replace(reply, text="", choices=(), attachment=attachment, replace=False))
    return shown


class TelegramChannel:
    """Runs flows for Telegram updates, by long polling or from the webhook route;
    sends the dispatcher's messages (it is the dispatcher's Sender for Telegram)."""

    channel = CHANNEL
    edits = True
    receipts = False
    window: timedelta | None = None  # free to write at any time

    def __init__(
        self,
        engine: Engine,
        token: str,
        api_url: str,
        *,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        rate: float = 30.0,
    ) -> None:
        self.engine = engine
        self.limiter = RateLimiter(rate, burst=BURST)
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.application: Application[Any, Any, Any, Any, Any, Any] = (
            ApplicationBuilder()
            .token(token)
            .base_url(f"{api_url}/bot")
            .base_file_url(f"{api_url}/file/bot")
            .updater(None)
            .request(AiohttpRequest(CONNECTIONS))
            .get_updates_request(AiohttpRequest(1, read_timeout=POLL_TIMEOUT + 10))
            .build()
        )
        self._polling: asyncio.Task[None] | None = None
        self._offset = 0
        # Each chat's current question (its message id), the one copy whose buttons live: a
        # question asked again takes them off the copy before it. Forgotten at a restart
        # (an older copy's buttons then answer "expired").
        self._questions: OrderedDict[int, int] = OrderedDict()
        self._replying = ChatLanes("telegram-reply")
        self._webhook_units: gathering.Gathering[Update, None] = gathering.Gathering(
            self._handle, window=gathering.WINDOW, most=gathering.MOST, name="telegram-webhook"
        )

    @property
    def bot_username(self) -> str:
        return self.application.bot.username

    async def start(self, *, receive: bool = True, lease: Lease | None = None) -> None:
        """Greet the Bot API (getMe); to `receive` updates too, publish the command menu,
        then set the webhook, or poll while this process holds `lease` (Telegram lets one
        poll at a time). A process that only sends (the dispatcher's) does nothing more."""
        await self.application.initialize()
        await self.application.start()
        if not receive:
            return
        await self._publish_commands()
        if self.webhook_url:
            await self.application.bot.set_webhook(
                self.webhook_url,
                secret_token=self.webhook_secret,
                allowed_updates=ALLOWED_UPDATES,
            )
            log.info("Telegram webhook set to %s", self.webhook_url)
        else:
            await self.application.bot.delete_webhook()
            if lease is None:
                log.info("polling Telegram as @%s", self.bot_username)
                self._polling = asyncio.create_task(self._poll(), name="telegram-polling")
            else:
                holding = self._poll_holding(lease)
                self._polling = asyncio.create_task(holding, name="telegram-lease")

    async def _poll_holding(self, lease: Lease) -> None:
        """Poll while holding the lease; stand by while another process holds it."""
        try:
            while True:
                await lease.acquire()
                log.info("polling Telegram as @%s", self.bot_username)
                polling = asyncio.create_task(self._poll(), name="telegram-polling")
                lost = asyncio.create_task(lease.lost())
                try:
                    await asyncio.wait([polling, lost], return_when=asyncio.FIRST_COMPLETED)
                finally:  # stopping, or the lease lost: the batch in hand is finished first
                    for task in (polling, lost):
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
                await lease.release()
                if not polling.cancelled():
                    return  # the token was refused: nothing more to do
        finally:
            await lease.release()

    async def stop(self) -> None:
        """Stop reading, let the replies in hand go, then close the connections."""
        if self._polling is not None:
            self._polling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._polling
            self._polling = None
        await self._webhook_units.close()
        await self._replying.drain(timeout=10)
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()

    async def process_json(self, data: dict[str, Any]) -> None:
        """Handle one update posted to the webhook, with those posted at the same time;
        returns once it is kept (raises if its unit could not be: Telegram sends it again)."""
        update = self._decode(data)
        if update is not None:
            await self._webhook_units.submit(update)

    async def _publish_commands(self) -> None:
        """Set the command menu in every shipped language."""
        for locale in (None, *SHIPPED_LOCALES):
            t = Translator(locale or "fr")
            commands = [
                BotCommand(
                    command.name, t._(command.description)[: BotCommandLimit.MAX_DESCRIPTION]
                )
                for command in self.engine.commands.values()
                if command.in_menu and not command.roles
            ]
            await self.application.bot.set_my_commands(
                commands, scope=BotCommandScopeAllPrivateChats(), language_code=locale
            )

    async def _poll(self) -> None:
        """Long polling; an update is confirmed only after it was processed."""
        bot = self.application.bot
        backoff = 1.0
        while True:
            try:
                # Raw updates, parsed one by one below. Bot API method names are
                # case-insensitive; the lower-case name keeps the library from suggesting
                # get_updates(), which fails on the whole batch when one update is unreadable.
                raw = await bot.do_api_request(
                    "getupdates",
                    {
                        "offset": self._offset,
                        "timeout": POLL_TIMEOUT,
                        "allowed_updates": ALLOWED_UPDATES,
                    },
                    read_timeout=POLL_TIMEOUT + 10,
                )
            except RetryAfter as error:
                await asyncio.sleep(_seconds(error.retry_after))
                continue
            except InvalidToken:
                log.critical("Telegram refused the token: check TELEGRAM_BOT_TOKEN")
                return
            except Conflict as error:
                log.warning("another process is polling this bot, or a webhook is set: %s", error)
                await asyncio.sleep(5)
                continue
            except NetworkError as error:
                log.warning("cannot reach the Bot API (%s); retrying in %.0f s", error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60)
                continue
            backoff = 1.0
            batch = [update for update in map(self._decode, raw or ()) if update is not None]
            try:
                await _finished_even_if_cancelled(self._handle(batch))
            except Exception:  # the database is out of reach: the same batch again, later
                log.exception("could not handle a batch of %d updates", len(batch))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60)
                continue
            for data in raw or ():  # confirmed by the next call
                self._offset = max(self._offset, int(data.get("update_id", -1)) + 1)

    def _decode(self, data: Any) -> Update | None:
        """Parse one update; one the library cannot read is skipped rather than stop the bot."""
        try:
            return Update.de_json(data, self.application.bot)
        except Exception as error:  # a malformed or unknown shape from the server
            log.warning("skipped an update that cannot be read (%s): %.300r", error, data)
            return None

    async def _handle(self, updates: Sequence[Update]) -> list[None]:
        """Run the flows for updates that came together, as one unit of work; once it is
        committed, each answer is handed to its chat's lane, and reading goes on meanwhile."""
        handled = [
            (update, inbound)
            for update in updates
            if (inbound := to_inbound(update, self.bot_username)) is not None
        ]
        if handled:
            await self._replying.room(CHATS_IN_HAND)
            outcomes = await self.engine.handle_batch(
                [Event(inbound) for _, inbound in handled], replay=True
            )
            for (update, inbound), outcome in zip(handled, outcomes, strict=True):
                self._replying.after(
                    inbound.chat_id, partial(self._render, update, inbound, outcome)
                )
        return [None] * len(updates)

    async def _render(self, update: Update, inbound: Inbound, outcome: Outcome) -> None:
        query = update.callback_query
        if query is not None:
            await self._quietly(query.answer(text=outcome.toast))
            message = query.message
            if outcome.clear_buttons and isinstance(message, Message) and message.reply_markup:
                await self.limiter.acquire(priority=True)  # an edit counts as a message
                await self._quietly(message.edit_reply_markup(reply_markup=None))
                if self._questions.get(message.chat_id) == message.message_id:
                    del self._questions[message.chat_id]
        if outcome.duplicate:  # handled before: what it answered goes again, as new messages
            await self.send(int(inbound.chat_id), outcome.replies)
            return
        replies = [with_location_hint(reply, outcome.locale) for reply in outcome.replies]
        redrawable = replies and replies[0].replace and query is not None
        if redrawable and await self._redraw(query.message if query else None, replies[0]):
            if query is not None and isinstance(query.message, Message) and asks(replies[0]):
                self._remember_question(query.message.chat_id, query.message.message_id)
            replies = replies[1:]
        await self.send(int(inbound.chat_id), [replace(reply, replace=False) for reply in replies])

    async def _redraw(self, message: object, reply: Reply) -> bool:
        """Edit the tapped message into the new question; False if it cannot be edited."""
        if not isinstance(message, Message) or len(messages(reply)) > 1:
            return False
        await self.limiter.acquire(priority=True)  # an edit counts as a message
        try:
            await message.edit_text(reply.text, reply_markup=keyboard(reply))
        except TelegramError as error:
            log.info("could not redraw a message, sending a new one: %s", error)
            return False
        return True

    async def send(self, chat_id: int, replies: Sequence[Reply]) -> None:
        """Answer someone who is waiting: ahead of broadcasts, a few retries, then give up.
        A retry resumes after the parts of a long reply already sent."""
        for reply in replies:
            shown = messages(reply)
            sent = 0
            if asks(reply):
                await self._retire_question(chat_id)

            async def attempt(shown: list[Reply] = shown) -> Delivery:
                nonlocal sent
                delivery = await self._deliver(str(chat_id), shown, sent, paid=False)
                sent = delivery.parts_sent
                return delivery

            delivery = await answer(self.limiter, attempt)
            if delivery.kind is DeliveryKind.BLOCKED:  # not a fault: the person left
                log.info("a reply to %s was not delivered: %s", chat_id, delivery.error)
                return
            if delivery.kind is not DeliveryKind.SENT:
                log.warning("a reply to %s was not delivered: %s", chat_id, delivery.error)
                return
            if asks(reply) and delivery.message_id is not None:
                self._remember_question(chat_id, int(delivery.message_id))

    def _remember_question(self, chat_id: int, message_id: int) -> None:
        self._questions[chat_id] = message_id
        self._questions.move_to_end(chat_id)
        while len(self._questions) > QUESTIONS_KEPT:
            self._questions.popitem(last=False)

    async def _retire_question(self, chat_id: int) -> None:
        """A new question is asked: the copy before it loses its buttons."""
        message_id = self._questions.pop(chat_id, None)
        if message_id is not None:
            await self.limiter.acquire(priority=True)  # an edit counts as a message
            await self._quietly(
                self.application.bot.edit_message_reply_markup(
                    chat_id, message_id, reply_markup=None
                )
            )

    async def deliver(
        self, chat_id: str, reply: Reply, *, paid: bool = False, envelope: Envelope | None = None
    ) -> Delivery:
        """Send one queued message, resuming after the parts of it already sent; say what
        happened rather than raise."""
        done = envelope.parts_sent if envelope is not None else 0
        return await self._replying.run(
            chat_id, partial(self._deliver, chat_id, messages(reply), done, paid=paid)
        )

    async def _deliver(
        self, chat_id: str, shown: list[Reply], done: int, *, paid: bool
    ) -> Delivery:
        """Send the messages from `done` on, in order; a failure says how many went."""
        message_id: str | None = None
        for index in range(done, len(shown)):
            try:
                message = await self._send_one(int(chat_id), shown[index], paid)
            except RetryAfter as error:
                return Delivery(
                    DeliveryKind.RETRY_AFTER,
                    retry_after=_seconds(error.retry_after),
                    parts_sent=index,
                )
            except Forbidden as error:
                return Delivery(DeliveryKind.BLOCKED, error=error.message, parts_sent=index)
            except BadRequest as error:
                if "chat not found" in error.message.lower():
                    return Delivery(DeliveryKind.BLOCKED, error=error.message, parts_sent=index)
                return Delivery(DeliveryKind.REJECTED, error=error.message, parts_sent=index)
            except TelegramError as error:  # timeouts, network errors, server errors
                return Delivery(DeliveryKind.NETWORK, error=str(error), parts_sent=index)
            message_id = str(message.message_id)
        return Delivery(DeliveryKind.SENT, message_id=message_id, parts_sent=len(shown))

    async def edit(self, chat_id: str, message_id: str, reply: Reply) -> Delivery:
        """Replace a message's text and buttons (a progress report)."""
        try:
            await self.application.bot.edit_message_text(
                reply.text, int(chat_id), int(message_id), reply_markup=keyboard(reply)
            )
        except RetryAfter as error:
            return Delivery(DeliveryKind.RETRY_AFTER, retry_after=_seconds(error.retry_after))
        except Forbidden as error:
            return Delivery(DeliveryKind.BLOCKED, error=error.message)
        except BadRequest as error:
            return Delivery(DeliveryKind.REJECTED, error=error.message)
        except TelegramError as error:
            return Delivery(DeliveryKind.NETWORK, error=str(error))
        return Delivery(DeliveryKind.SENT, message_id=message_id)

    async def _send_one(self, chat_id: int, reply: Reply, paid: bool) -> Message:
        """One message of `messages()`: a text, or a file with its caption (if any)."""
        bot = self.application.bot
        markup = keyboard(reply)
        extra: dict[str, Any] = {"allow_paid_broadcast": True} if paid else {}
        attachment = reply.attachment
        if attachment is None:
            return await bot.send_message(chat_id, reply.text, reply_markup=markup, **extra)
        file = InputFile(attachment.content, filename=attachment.filename)
        caption = reply.text or None
        if attachment.kind == "photo":
            return await bot.send_photo(
                chat_id, file, caption=caption, reply_markup=markup, **extra
            )
        return await bot.send_document(chat_id, file, caption=caption, reply_markup=markup, **extra)

    async def _quietly(self, call: Awaitable[Any]) -> None:
        """Answer a tap or tidy a message: a failure here only loses a nicety."""
        try:
            await call
        except TelegramError as error:
            log.info("Bot API call failed: %s", error)


async def _finished_even_if_cancelled(work: Coroutine[Any, Any, object]) -> None:
    """Run `work` to its end: stopping (a SIGTERM) while it runs waits for it, then stops,
    so a batch in hand is handled and answered rather than dropped half way."""
    current = asyncio.current_task()
    task = asyncio.create_task(work, name=current.get_name() if current else None)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


def _seconds(retry_after: Any) -> float:
    """RetryAfter.retry_after is an int or a timedelta depending on the library's version."""
    total = getattr(retry_after, "total_seconds", None)
    return float(total()) if callable(total) else float(retry_after)

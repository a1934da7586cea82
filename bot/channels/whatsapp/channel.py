"""WhatsApp adapter: Meta's webhook → Inbound, Outcome → Cloud API messages. No business rules.

- The webhook (`/whatsapp`) answers Meta's verification handshake, refuses a body whose
  `X-Hub-Signature-256` is not ours, processes a message id once, and answers 200 as soon as
  the flows have committed: replies go out afterwards, in order within each chat, so a slow
  Graph API never holds Meta's call (Meta retries, then disables, webhooks that fail).
- WhatsApp lets a business write freely only within 24 hours of the person's last message.
  Each identity keeps that time. The dispatcher's messages go out as ordinary messages inside
  the window and as an approved template outside it; the template's button opens the
  conversation, and every message announced that way then follows in full.
- Receipts (sent, delivered, read, failed) come back by webhook: a message refused because
  the window had closed is queued again as a template; an undeliverable one marks the person
  unreachable, as Telegram's 403 does.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from functools import partial
from typing import Final

from aiohttp import web
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels import gathering
from bot.channels.hints import with_location_hint
from bot.channels.lanes import ChatLanes
from bot.channels.whatsapp import payloads, templates
from bot.channels.whatsapp.client import CloudApi, GraphError, NetworkError
from bot.channels.whatsapp.payloads import (
    CHANNEL,
    MORE_PREFIX,
    OPEN_PREFIX,
    Incoming,
    Media,
    Receipt,
    Words,
)
from bot.dispatcher import Delivery, DeliveryKind, Envelope, answer
from bot.ratelimit import RateLimiter
from flows.engine import (
    Attachment,
    Choice,
    Engine,
    Event,
    Inbound,
    Notice,
    NoticeKind,
    Outcome,
    Reply,
)
from flows.i18n import DEFAULT_LOCALE, Translator
from storage.db import session_scope
from storage.models import Identity, OutboxMessage, Person, Priority, WhatsAppMenu, utcnow
from storage.queries import outbox
from storage.queries.outbox import TEMPLATE_REFUSED

log = logging.getLogger(__name__)

WINDOW: Final = timedelta(hours=24)
WINDOW_MARGIN: Final = timedelta(minutes=10)  # a message takes time to go: do not cut it fine
BURST: Final = 0.1  # seconds of sending let through at once: pace rather than burst
SIGNATURE_HEADER: Final = "X-Hub-Signature-256"
MEDIA_KEPT: Final = 20 * 24 * 3600  # Meta keeps an uploaded file 30 days: reuse it for 20
RECENT_KEPT: Final = 20_000  # sent messages whose receipts may come before they are recorded
PAIR_RATE_WAIT: Final = 6.0  # WhatsApp allows about one message every 6 s to one person
RECEIPTS_EVERY: Final = 0.2  # seconds between two writes of delivered/read receipts
RECEIPTS_WAIT: Final = 30.0  # how long a receipt waits for its message to be recorded

# Meta's error codes, and what each means for the message.
RATE_LIMITED: Final = frozenset({4, 80007, 130429, 131048})  # the whole number must slow down
PAIR_RATE_LIMITED: Final = 131056  # too many to this person: wait for them alone
WINDOW_CLOSED: Final = 131047  # more than 24 hours since they wrote: a template is needed
UNREACHABLE: Final = frozenset({131026, 131049, 131050, 131021})  # as Telegram's "blocked"
TEMPLATE_UNAVAILABLE: Final = frozenset({132001, 132015, 132016})  # missing, paused, disabled
RETRYABLE: Final = frozenset({1, 2, 131000, 131016, 133004})  # temporary, on Meta's side
DOCUMENT_TYPES: Final = frozenset(
    {
        "text/plain",
        "application/pdf",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    }
)


def event_id(message_id: str) -> int:
    """Meta's message ids are strings: a 63-bit number from one, for the processed events."""
    return int.from_bytes(hashlib.sha256(message_id.encode()).digest()[:8], "big") >> 1


def signature(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` Meta sends with a body: HMAC-SHA256 with the app secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WhatsAppChannel:
    """Runs flows for WhatsApp messages from the webhook, and is the dispatcher's Sender for
    WhatsApp."""

    channel = CHANNEL
    edits = False  # WhatsApp cannot change a message once sent
    receipts = True
    window: timedelta | None = WINDOW  # outside it, only approved templates

    def __init__(
        self,
        engine: Engine,
        sessions: async_sessionmaker[AsyncSession],
        *,
        api_url: str,
        phone_number_id: str,
        token: str,
        app_secret: str,
        verify_token: str,
        rate: float = 80.0,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self.engine = engine
        self.sessions = sessions
        self.api = CloudApi(api_url, phone_number_id, token)
        self.limiter = RateLimiter(rate, burst=BURST)
        self.on_queued = on_queued  # tell the dispatcher something was queued
        self._app_secret = app_secret.encode()
        self._verify_token = verify_token
        self._sending = ChatLanes("whatsapp-reply")
        self._units: gathering.Gathering[Incoming, None] = gathering.Gathering(
            self._handle_unit, window=gathering.WINDOW, most=gathering.MOST, name="whatsapp-unit"
        )
        self._media: dict[str, tuple[str, float]] = {}  # content hash → media id, uploaded at
        # Message id → outbox row, for receipts that arrive before the send is recorded.
        self._recent: OrderedDict[str, int] = OrderedDict()
        self._receipts: dict[str, str] = {}  # message id → delivered or read, not yet written
        self._early: dict[str, float] = {}  # receipts waiting for their message to be recorded
        self._recording: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.api.start()
        self._recording = asyncio.create_task(self._record_receipts(), name="whatsapp-receipts")
        log.info(
            "WhatsApp: webhook at /whatsapp, sending as number id %s through %s",
            self.api.phone_number_id,
            self.api.api_url,
        )

    async def stop(self) -> None:
        """Let the replies being sent finish, then close the connections."""
        await self._units.close()
        await self._sending.drain(timeout=10)
        if self._recording is not None:
            self._recording.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recording
            self._recording = None
        with contextlib.suppress(Exception):
            await self._write_receipts()
        await self.api.close()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/whatsapp", self.verify)
        app.router.add_post("/whatsapp", self.webhook)

    # --- the webhook ---------------------------------------------------------------------------

    async def verify(self, request: web.Request) -> web.Response:
        """Meta's handshake when the webhook is set: echo the challenge if the token is ours."""
        query = request.query
        given = query.get("hub.verify_token", "")
        if query.get("hub.mode") != "subscribe" or not secrets.compare_digest(
            given.encode(), self._verify_token.encode()
        ):
            return web.Response(status=403, text="wrong verify token")
        return web.Response(text=query.get("hub.challenge", ""))

    async def webhook(self, request: web.Request) -> web.Response:
        """Take one webhook call: refused unless signed with the app secret; 200 otherwise,
        whatever the flows do with it."""
        body = await request.read()
        given = request.headers.get(SIGNATURE_HEADER)
        if given is None:
            return web.Response(status=401, text="missing signature")
        expected = signature(self._app_secret.decode(), body)
        if not hmac.compare_digest(given.encode(), expected.encode()):
            log.warning("refused a WhatsApp webhook call with a wrong signature")
            return web.Response(status=403, text="wrong signature")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return web.Response(status=400, text="not JSON")
        found = payloads.parse(data)
        for receipt in found.receipts:
            if receipt.status != "failed":
                self._note_receipt(receipt)
                continue
            try:
                await self._on_failure(receipt)
            except Exception:
                log.exception("a WhatsApp receipt could not be recorded")
        # Handled with the messages of calls arriving at the same time, as one unit of work;
        # answered once kept (Meta calls again otherwise: a message is never lost).
        kept = await asyncio.gather(
            *(self._units.submit(incoming) for incoming in found.incoming),
            return_exceptions=True,
        )
        failed = [error for error in kept if isinstance(error, BaseException)]
        if failed:
            log.error("WhatsApp messages could not be kept", exc_info=failed[0])
            return web.Response(status=500, text="not kept, send it again")
        return web.Response(text="ok")

    async def _handle_unit(self, messages: Sequence[Incoming]) -> list[None]:
        """Run the flows for messages that came together: those the flows handle as one unit
        of work, a tap they never see (a template's button, "More…") on its own, in the
        order they came; each chat's answers are then handed to its lane."""
        pending: list[tuple[Incoming, Inbound, Opened]] = []
        for incoming in messages:
            tapped = _tapped(incoming)
            if tapped.startswith((OPEN_PREFIX + ":", MORE_PREFIX + ":")):
                await self._flows(pending)
                pending = []
                if tapped.startswith(OPEN_PREFIX + ":"):
                    await self._in_own_transaction(incoming)  # what it announced follows
                else:
                    replies, locale = await self._next_page(incoming.wa_id, tapped)
                    if replies:
                        self._send_in_order(incoming.wa_id, replies, locale)
                continue
            inbound = payloads.to_inbound(incoming, self.engine.command_words)
            if inbound is not None:
                inbound = replace(inbound, event_id=event_id(incoming.id))
                pending.append((incoming, inbound, Opened(incoming)))
        await self._flows(pending)
        return [None] * len(messages)

    async def _flows(self, pending: Sequence[tuple[Incoming, Inbound, Opened]]) -> None:
        if not pending:
            return
        outcomes = await self.engine.handle_batch(
            [Event(inbound, opened.record) for _, inbound, opened in pending]
        )
        for (incoming, _inbound, opened), outcome in zip(pending, outcomes, strict=True):
            if outcome.duplicate:  # Meta called again: it was handled, and answered
                continue
            if opened.held:
                self.on_queued()
            replies = [with_location_hint(reply, outcome.locale) for reply in outcome.replies]
            if outcome.toast and not replies:
                replies = [Reply(outcome.toast)]  # WhatsApp has no notice for a tap: say it
            if replies:
                self._send_in_order(incoming.wa_id, replies, outcome.locale)

    async def _in_own_transaction(self, incoming: Incoming) -> None:
        """A tap the flows never see (a template's button, "More…"): its bookkeeping alone."""
        opened = Opened(incoming)
        async with session_scope(self.sessions) as session:
            await opened.record(session)
            locale = await self._locale_of(session, incoming.wa_id)
        if opened.held:
            self.on_queued()
        elif opened.tapped is not None:
            t = Translator(locale or DEFAULT_LOCALE)
            self._send_in_order(
                incoming.wa_id, [Reply(t._("You are up to date: nothing new is waiting."))], None
            )

    async def _next_page(self, chat_id: str, tapped: str) -> tuple[list[Reply], str | None]:
        """A long list's "More…" row: the next page of the same choices."""
        _prefix, _, rest = tapped.partition(":")
        menu_id, _, page = rest.partition(":")
        async with session_scope(self.sessions) as session:
            menu = await session.get(WhatsAppMenu, int(menu_id)) if menu_id.isdigit() else None
            locale = await self._locale_of(session, chat_id)
        if menu is None or menu.chat_id != chat_id or not page.isdigit():
            t = Translator(locale or DEFAULT_LOCALE)
            return [Reply(t._("This button has expired."))], locale
        reply = _menu_reply(menu)
        self._send_in_order(chat_id, [reply], locale, page=int(page), menu=menu.id)
        return [], locale

    async def _locale_of(self, session: AsyncSession, chat_id: str) -> str | None:
        return await session.scalar(
            select(Person.locale)
            .join(Identity, Identity.person_id == Person.id)
            .where(Identity.channel == CHANNEL, Identity.external_id == chat_id)
        )

    def _note_receipt(self, receipt: Receipt) -> None:
        """Delivered or read: kept a moment and written with the others (two receipts come
        for every message: one transaction each would cost more than sending it)."""
        known = self._receipts.get(receipt.message_id)
        if receipt.status in outbox.RECEIPT_ORDER and outbox.better_receipt(known, receipt.status):
            self._receipts[receipt.message_id] = receipt.status

    async def _record_receipts(self) -> None:
        while True:
            await asyncio.sleep(RECEIPTS_EVERY)
            try:
                await self._write_receipts()
            except Exception:
                log.exception("could not record WhatsApp receipts; will try again")

    async def _write_receipts(self) -> None:
        if not self._receipts:
            return
        receipts, self._receipts = self._receipts, {}
        try:
            async with session_scope(self.sessions) as session:
                early = await outbox.note_receipts(session, receipts)
        except Exception:
            for message_id, status in receipts.items():  # keep the best of old and new
                if outbox.better_receipt(self._receipts.get(message_id), status):
                    self._receipts[message_id] = status
            raise
        # Receipts of messages not yet recorded as sent: tried again for a while.
        now = time.monotonic()
        for message_id in early:
            first = self._early.setdefault(message_id, now)
            if now - first < RECEIPTS_WAIT:
                self._receipts.setdefault(message_id, receipts[message_id])
            else:
                del self._early[message_id]
        for message_id in set(self._early) - early:
            del self._early[message_id]

    async def _on_failure(self, receipt: Receipt) -> None:
        """A message WhatsApp could not deliver: queue it again as a template, or mark its
        person unreachable, or fail it with WhatsApp's reason."""
        async with session_scope(self.sessions) as session:
            message = await outbox.by_provider_id(session, receipt.message_id)
            if message is None and receipt.message_id in self._recent:
                message = await session.get(
                    OutboxMessage, self._recent[receipt.message_id], with_for_update=True
                )
            log.warning("WhatsApp could not deliver %s: %s", receipt.message_id, receipt.reasons)
            if WINDOW_CLOSED in receipt.errors:
                # Our clock said the window was open; WhatsApp's says not: a template it is.
                await session.execute(
                    update(Identity)
                    .where(Identity.channel == CHANNEL, Identity.external_id == receipt.recipient)
                    .values(last_inbound_at=None)
                )
                if message is not None:
                    await outbox.send_again(session, message, utcnow())
                    requeued = True
                else:
                    requeued = False
            elif set(receipt.errors) & UNREACHABLE:
                person_id = await session.scalar(
                    select(Identity.person_id).where(
                        Identity.channel == CHANNEL, Identity.external_id == receipt.recipient
                    )
                )
                if person_id is not None:
                    await outbox.mark_unreachable(
                        session, person_id, message.id if message is not None else None
                    )
                requeued = False
            else:
                if message is not None:
                    reason = ", ".join(receipt.reasons) or "failed"
                    await outbox.mark_failed(session, message.id, f"whatsapp: {reason}")
                requeued = False
        if requeued:
            self.on_queued()

    # --- replies to someone who wrote ----------------------------------------------------------

    def _send_in_order(
        self,
        chat_id: str,
        replies: Sequence[Reply],
        locale: str | None,
        *,
        page: int = 0,
        menu: int | None = None,
    ) -> None:
        """Send after what this chat is already being sent, without holding the webhook."""

        async def send() -> None:
            for reply in replies:
                await self._send_reply(chat_id, reply, locale, page=page, menu=menu)

        self._sending.after(chat_id, send)

    async def _send_reply(
        self, chat_id: str, reply: Reply, locale: str | None, *, page: int, menu: int | None
    ) -> None:
        """Answer someone who is waiting: ahead of broadcasts, a few retries, then give up.
        A retry resumes after the messages of a long reply already sent."""
        sent = 0

        async def attempt() -> Delivery:
            nonlocal sent
            delivery = await self._send_full(
                chat_id, reply, locale, page=page, menu=menu, done=sent
            )
            sent = delivery.parts_sent
            return delivery

        delivery = await answer(self.limiter, attempt)
        if delivery.kind is not DeliveryKind.SENT:
            log.warning("a WhatsApp reply to %s was not delivered: %s", chat_id, delivery.error)

    # --- the dispatcher's side -----------------------------------------------------------------

    async def deliver(
        self, chat_id: str, reply: Reply, *, paid: bool = False, envelope: Envelope | None = None
    ) -> Delivery:
        """Send one queued message, in its place among the chat's replies: in full inside the
        window, as a template outside it."""
        return await self._sending.run(chat_id, partial(self._deliver, chat_id, reply, envelope))

    async def _deliver(self, chat_id: str, reply: Reply, envelope: Envelope | None) -> Delivery:
        if envelope is not None and not _window_open(envelope):
            delivery = await self._send_template(chat_id, reply, envelope)
        else:
            delivery = await self._send_full(
                chat_id,
                reply,
                envelope.locale if envelope else None,
                done=envelope.parts_sent if envelope else 0,
            )
            closed = delivery.kind is DeliveryKind.REJECTED and delivery.error == str(WINDOW_CLOSED)
            if closed and envelope is not None:
                delivery = await self._send_template(chat_id, reply, envelope)
        if envelope is not None and delivery.message_id:
            self._recent[delivery.message_id] = envelope.outbox_id
            while len(self._recent) > RECENT_KEPT:
                self._recent.popitem(last=False)
        return delivery

    async def edit(self, chat_id: str, message_id: str, reply: Reply) -> Delivery:
        """WhatsApp cannot rewrite a message: the new text goes as a new one."""
        return await self._send_full(chat_id, reply, None)

    async def _send_full(
        self,
        chat_id: str,
        reply: Reply,
        locale: str | None,
        *,
        page: int = 0,
        menu: int | None = None,
        done: int = 0,
    ) -> Delivery:
        """The reply as ordinary messages: text (in several when long), buttons or a list,
        and its file; the first `done` of them went at an earlier attempt and are skipped."""
        sent = done
        try:
            media = await self._media_for(reply.attachment) if reply.attachment else None
            if menu is None and payloads.needs_menu(reply):
                menu = await self._keep_menu(chat_id, reply)
            messages = payloads.render(reply, Words.of(locale), media, menu, page)
            last = ""
            for message in messages[done:]:
                last = await self.api.send(chat_id, message)
                sent += 1
        except GraphError as error:
            return replace(_refused(error), parts_sent=sent)
        except NetworkError as error:
            return Delivery(DeliveryKind.NETWORK, error=str(error), parts_sent=sent)
        return Delivery(DeliveryKind.SENT, message_id=last, parts_sent=sent)

    async def _send_template(self, chat_id: str, reply: Reply, envelope: Envelope) -> Delivery:
        """Announce the message with an approved template; its button brings the rest."""
        notice = reply.notice or _any_news(reply, envelope.locale)
        name, template = templates.message(notice, f"{OPEN_PREFIX}:{envelope.outbox_id}")
        try:
            message_id = await self.api.send(chat_id, {"type": "template", "template": template})
        except GraphError as error:
            if error.code in TEMPLATE_UNAVAILABLE:
                language = template["language"]["code"]
                return Delivery(
                    DeliveryKind.REJECTED, error=f"{TEMPLATE_REFUSED}{name} ({language})"
                )
            return _refused(error)
        except NetworkError as error:
            return Delivery(DeliveryKind.NETWORK, error=str(error))
        return Delivery(DeliveryKind.SENT, message_id=message_id, template=name)

    async def _media_for(self, attachment: Attachment) -> Media:
        """Upload a file once and reuse it: a broadcast's calendar file goes up one time."""
        key = hashlib.sha256(attachment.content).hexdigest()
        known = self._media.get(key)
        if known is not None and time.monotonic() - known[1] < MEDIA_KEPT:
            return Media(known[0], attachment)
        media_id = await self.api.upload(
            attachment.filename, attachment.content, _uploadable(attachment.mime_type)
        )
        self._media[key] = (media_id, time.monotonic())
        return Media(media_id, attachment)

    async def _keep_menu(self, chat_id: str, reply: Reply) -> int:
        async with session_scope(self.sessions) as session:
            menu = WhatsAppMenu(
                chat_id=chat_id,
                text=reply.text,
                choices=[[choice.label, choice.data] for choice in payloads.flat(reply)],
            )
            session.add(menu)
            await session.flush()
            return menu.id


class Opened:
    """The person wrote: their window opens, and what was announced to them by template
    follows in full (as replies queued in the outbox)."""

    def __init__(self, incoming: Incoming) -> None:
        self.incoming = incoming
        tapped = _tapped(incoming)
        opens = tapped.removeprefix(OPEN_PREFIX + ":") if tapped.startswith(OPEN_PREFIX) else ""
        self.tapped = int(opens) if opens.isdigit() else None  # the template's message
        self.held = 0

    async def record(self, session: AsyncSession, _outcome: Outcome | None = None) -> None:
        incoming = self.incoming
        await session.execute(
            update(Identity)
            .where(
                Identity.channel == CHANNEL,
                Identity.external_id == incoming.wa_id,
                or_(
                    Identity.last_inbound_at.is_(None),
                    Identity.last_inbound_at < incoming.sent_at,
                ),
            )
            .values(last_inbound_at=incoming.sent_at)
            .execution_options(synchronize_session=False)
        )
        held = await outbox.open_held(
            session, CHANNEL, incoming.wa_id, utcnow(), tapped=self.tapped
        )
        for message in held:
            await outbox.enqueue_one(
                session,
                channel=CHANNEL,
                chat_id=incoming.wa_id,
                payload=message.payload,
                priority=Priority.REPLY,
                person_id=message.person_id,
                council_id=message.council_id,
                key=f"{OPEN_PREFIX}:{message.id}",
            )
        self.held = len(held)


def _tapped(incoming: Incoming) -> str:
    """The id of the button or row a message taps, or the template button's payload."""
    message = incoming.message
    if incoming.type == "button":
        return str((message.get("button") or {}).get("payload") or "")
    if incoming.type == "interactive":
        interactive = message.get("interactive") or {}
        reply = interactive.get("button_reply") or interactive.get("list_reply") or {}
        return str(reply.get("id") or "")
    return ""


def _uploadable(mime_type: str) -> str:
    """A type WhatsApp accepts for a document. It takes no text/calendar, text/csv or JSON:
    those go as text/plain, and their file name (.ics, .csv, .json) tells the phone."""
    if mime_type in DOCUMENT_TYPES or mime_type.startswith(("image/", "audio/", "video/")):
        return mime_type
    return "text/plain"


def _window_open(envelope: Envelope) -> bool:
    last = envelope.last_inbound_at
    return last is not None and utcnow() - last < WINDOW - WINDOW_MARGIN


def _menu_reply(menu: WhatsAppMenu) -> Reply:
    return Reply(menu.text, tuple((Choice(str(label), str(data)),) for label, data in menu.choices))


def _any_news(reply: Reply, locale: str | None) -> Notice:
    """A message with no notice of its own: its first line, as news from the council."""
    first = next((line for line in reply.text.splitlines() if line.strip()), "")
    return Notice(NoticeKind.NEWS, locale or DEFAULT_LOCALE, title=first)


def _refused(error: GraphError) -> Delivery:
    """What Meta's error code means for the message."""
    code = error.code
    if code in RATE_LIMITED:
        return Delivery(DeliveryKind.RETRY_AFTER, retry_after=1.0, everyone=True, error=str(error))
    if code == PAIR_RATE_LIMITED:
        return Delivery(DeliveryKind.RETRY_AFTER, retry_after=PAIR_RATE_WAIT, error=str(error))
    if code == WINDOW_CLOSED:
        return Delivery(DeliveryKind.REJECTED, error=str(WINDOW_CLOSED))
    if code in UNREACHABLE:
        return Delivery(DeliveryKind.BLOCKED, error=str(error))
    if code in RETRYABLE or error.status >= 500 or code in {190, 0}:
        return Delivery(DeliveryKind.NETWORK, error=str(error))
    return Delivery(DeliveryKind.REJECTED, error=str(error))

"""Web chat adapter: the same flows in a browser page, over a WebSocket.

A person is identified by a signed cookie holding a random id; the flows do not
know which channel they talk to.

The conversation is kept (`web_messages`), both ways, in the same transaction as what the
flows do: a reload, a second tab or a new visit starts with its last messages, buttons and
files included, and the questions superseded since show their buttons spent. Every open
page of the person sees what any of them says and is answered.

Messages from the outbox (invitations, calls, reminders, results) are the dispatcher's
delivery: written to the conversation as mail, shown on every open page, and marked delivered
when a page acknowledges them; those not yet shown wait for the next visit.

On PostgreSQL, several processes may hold the pages of one person: what one of them keeps is
shown at once by the others (`bot.channels.relay`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import json
import logging
import math
import re
import secrets
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from http.cookies import SimpleCookie
from importlib import resources
from string import Template
from typing import Any

from aiohttp import WSMsgType, web
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.channels.guard import Guard, WebChatLimits, origin_of
from bot.channels.relay import RESYNC, Relay, Relayed
from bot.channels.webpush import (
    PushOutcome,
    WebPush,
    notification,
    parse_subscription,
    vapid_keys,
)
from bot.dispatcher import Delivery, DeliveryKind, Envelope
from bot.ratelimit import RateLimiter
from flows.engine import Engine, Inbound, Outcome, Reply, apology
from flows.i18n import RTL_LOCALES, Translator, first_language, negotiate
from flows.notices import first_line, headline
from storage.db import session_scope
from storage.models import Council, Identity, Membership, Person, WebMessage
from storage.queries import push as stored_push
from storage.queries import secrets as stored_secrets
from storage.queries import webchat as conversation

log = logging.getLogger(__name__)

CHANNEL = "web"
COOKIE = "cdp_chat"
COOKIE_MAX_AGE = 365 * 24 * 3600
HISTORY = 100  # messages a reload, a second tab or a new visit shows again
KEPT_CHARS = 2000  # of what a person typed
MAX_MESSAGE_BYTES = 64 * 1024  # 10,000 characters in any script reach the flows, which answer
COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,32})(?:@\S+)?(?:\s+(.*))?$", re.DOTALL)
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'unsafe-inline'; "
    "script-src 'unsafe-inline'; connect-src 'self'; worker-src 'self'; manifest-src 'self'"
)
STATIC = resources.files("bot.channels").joinpath("static")
STATIC_FILES = {  # name: (content type, caching)
    "manifest.webmanifest": ("application/manifest+json", "max-age=86400"),
    "sw.js": ("text/javascript", "no-cache"),  # a new worker is picked up at the next visit
    "offline.html": ("text/html", "no-cache"),
    "icon-192.png": ("image/png", "max-age=604800"),
    "icon-512.png": ("image/png", "max-age=604800"),
    "icon-maskable-512.png": ("image/png", "max-age=604800"),
    "badge-96.png": ("image/png", "max-age=604800"),
}
PAGE = Template(
    resources.files("bot.channels").joinpath("webchat.html").read_text(encoding="utf-8")
)


def to_inbound(chat_id: str, payload: Any, language_code: str | None) -> Inbound | None:
    """Turn a message from the page into an event; None if it is not one we understand."""
    if not isinstance(payload, dict):
        return None
    common: dict[str, Any] = {
        "channel": CHANNEL,
        "sender_id": chat_id,
        "chat_id": chat_id,
        "language_code": language_code,
    }
    kind = payload.get("type")
    if kind == "choice" and isinstance(payload.get("data"), str):
        return Inbound(choice=payload["data"], **common)
    if kind == "location":  # the browser's position, shared with a tap
        where = _position(payload.get("latitude"), payload.get("longitude"))
        return None if where is None else Inbound(location=where, **common)
    if kind != "text" or not isinstance(payload.get("text"), str):
        return None
    text: str = payload["text"]
    command = COMMAND.match(text.strip())
    if command is not None:
        return Inbound(command=command[1].lower(), argument=(command[2] or "").strip(), **common)
    return Inbound(text=text, **common)


def _position(latitude: object, longitude: object) -> tuple[float, float] | None:
    """A place on Earth from the page, or None for anything else."""
    if not all(
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        for value in (latitude, longitude)
    ):
        return None
    assert isinstance(latitude, int | float) and isinstance(longitude, int | float)
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        return None
    return float(latitude), float(longitude)


def locale_of(chat_id: str) -> Select[str]:
    """The language of the person behind a web chat, if they joined."""
    return (
        select(Person.locale)
        .join(Identity, Identity.person_id == Person.id)
        .where(Identity.channel == CHANNEL, Identity.external_id == chat_id)
    )


def shown(row: WebMessage, kind: str = "message") -> dict[str, Any]:
    """A kept message as the page shows it: who said it, whether its buttons still answer,
    whether it waits for a page to show it (the mailbox's)."""
    return {
        "type": kind,
        "id": row.id,
        "author": row.author,
        "spent": row.spent,
        "waiting": row.mailed and row.delivered_at is None,
        **row.payload,
    }


def render(outcome: Outcome) -> dict[str, Any]:
    """The JSON the page shows: replies with buttons and files, and a notice for the tap."""
    return {
        "type": "outcome",
        "dir": _direction(outcome.rtl),
        "toast": outcome.toast,
        "clear_buttons": outcome.clear_buttons,
        "given_back": outcome.given_back,
        "replies": [_reply(reply) for reply in outcome.replies],
    }


def _direction(rtl: bool) -> str:
    return "rtl" if rtl else "ltr"


def _reply(reply: Reply) -> dict[str, Any]:
    rendered: dict[str, Any] = {
        "text": reply.text,
        "location": reply.asks_location,  # the page offers the browser's position
        "replace": reply.replace,
        "choices": [[{"label": c.label, "data": c.data} for c in row] for row in reply.choices],
    }
    if reply.attachment is not None:
        rendered["attachment"] = {
            "filename": reply.attachment.filename,
            "mime_type": reply.attachment.mime_type,
            "kind": reply.attachment.kind,
            "base64": base64.b64encode(reply.attachment.content).decode(),
        }
    return rendered


def _label_of(row: WebMessage | None, data: str) -> str | None:
    """The label of the button a person tapped, as the message showed it."""
    if row is None:
        return None
    for choices in row.payload.get("choices", ()):
        for choice in choices:
            if isinstance(choice, dict) and choice.get("data") == data:
                return str(choice.get("label", ""))
    return None


@dataclass
class Keeping:
    """What one event adds to the kept conversation, written in the event's transaction: what
    the person said, the bot's answers, the tapped message redrawn or its buttons gone, and
    the earlier questions that no longer answer. `shown` is then what every open page of the
    person is told; other processes holding some of them are told in the same transaction
    (`relay`), by the ids of what was kept."""

    chat_id: str
    text: str | None = None  # what the person typed
    choice: str | None = None  # or the button they tapped…
    tapped: int | None = None  # …on this message
    shown: dict[str, Any] = field(default_factory=dict)
    relay: Relay | None = None

    async def record(self, session: AsyncSession, outcome: Outcome) -> None:
        await self._keep(session, outcome)
        if self.relay is not None:
            await self.relay.send(session, self.chat_id, "outcome", relayed(self.shown))

    async def _keep(self, session: AsyncSession, outcome: Outcome) -> None:
        shown = render(outcome)
        shown["member"] = outcome.member
        self.shown = shown
        if outcome.erased:
            await conversation.erase(session, self.chat_id)  # nothing of it is kept
            shown["erased"] = True
            return
        tapped = None
        if self.tapped is not None:
            tapped = await conversation.one(session, self.chat_id, self.tapped)
        mine = self.text if self.choice is None else _label_of(tapped, self.choice)
        if outcome.given_back:
            mine = None  # not taken: back in the person's box, and not kept
        if mine and len(mine) > KEPT_CHARS:  # what flows refuse anyway; the history stays light
            mine = mine[: KEPT_CHARS - 1] + "…"
        if mine and outcome.off_the_record:
            shown["mine"] = {"id": None, "text": mine}  # shown on the open pages, not kept
        elif mine:
            row = await conversation.said(
                session,
                self.chat_id,
                conversation.ME,
                {"text": mine, "dir": "auto"},
                delivered=True,
            )
            shown["mine"] = {"id": row.id, "text": mine}
        redrawn = tapped is not None and any(reply.replace for reply in outcome.replies)
        if any(not (reply.replace and redrawn) for reply in outcome.replies):
            shown["spent"] = list(
                await conversation.spend_questions(
                    session, self.chat_id, sparing=tapped.id if redrawn and tapped else None
                )
            )
            if tapped is not None and tapped.payload.get("unkept") and tapped.id in shown["spent"]:
                tapped = None  # an off-the-record question, gone with its ticks
        direction = _direction(outcome.rtl)
        # Kept until the next question only: what the person chose shows on it.
        transient = {"unkept": True} if outcome.off_the_record else {}
        if tapped is not None:
            shown["tapped"] = tapped.id
            if outcome.clear_buttons:
                tapped.payload = {**tapped.payload, "choices": []}
        for reply, rendered in zip(outcome.replies, shown["replies"], strict=True):
            if reply.replace and redrawn and tapped is not None:
                tapped.payload = {"dir": direction, **rendered, **transient}
                tapped.spent = False
                rendered["id"] = tapped.id
            else:
                # A council's message given in the conversation (invitations on joining) keeps
                # its buttons like one from the mailbox.
                row = await conversation.said(
                    session,
                    self.chat_id,
                    conversation.BOT,
                    {"dir": direction, **rendered, **transient},
                    mailed=reply.notice is not None,
                    delivered=True,
                )
                rendered["id"] = row.id


def relayed(shown: dict[str, Any]) -> dict[str, Any]:
    """A turn of the conversation as other processes are told it: ids and flags, no text
    (what was said is read from the kept rows; a toast and what was said off the record are
    for the pages of the process that heard it)."""
    body: dict[str, Any] = {
        "dir": shown.get("dir", "ltr"),
        "clear_buttons": bool(shown.get("clear_buttons")),
        "member": bool(shown.get("member")),
        "mine": (shown.get("mine") or {}).get("id"),
        "replies": [reply.get("id") for reply in shown.get("replies", ())],
    }
    for key in ("erased", "spent", "tapped"):
        if key in shown:
            body[key] = shown[key]
    return body


def told(body: dict[str, Any], rows: dict[int, WebMessage]) -> dict[str, Any]:
    """A turn another process kept (`relayed`), as its pages show it: from the kept rows."""
    message: dict[str, Any] = {
        "type": "outcome",
        "dir": body.get("dir", "ltr"),
        "clear_buttons": bool(body.get("clear_buttons")),
        "member": bool(body.get("member")),
        "replies": [
            {**rows[id_].payload, "id": id_} for id_ in body.get("replies", ()) if id_ in rows
        ],
    }
    for key in ("erased", "spent", "tapped"):
        if key in body:
            message[key] = body[key]
    mine = rows.get(body["mine"]) if isinstance(body.get("mine"), int) else None
    if mine is not None:
        message["mine"] = {"id": mine.id, "text": mine.payload.get("text", "")}
    return message


class WebChatChannel:
    """Serves the chat page and its WebSocket, and delivers the outbox to web chat persons."""

    channel = CHANNEL
    edits = True
    receipts = False
    window: timedelta | None = None  # free to write at any time

    def __init__(
        self,
        engine: Engine,
        sessions: async_sessionmaker[AsyncSession],
        *,
        limits: WebChatLimits | None = None,
        origins: Iterable[str] = (),
        push_subject: str | None = None,
        push_to_loopback: bool = False,
    ) -> None:
        self.engine = engine
        self.sessions = sessions
        self.guard = Guard(limits or WebChatLimits())
        # Sites besides the chat's own that may open its socket and frame its page.
        self.origins = frozenset(origin_of(origin) for origin in origins)
        # Web Push, unless no subject (how push services reach us) was given.
        self.push: WebPush | None = None
        self._push_subject = push_subject
        self._push_to_loopback = push_to_loopback
        self.limiter = RateLimiter(1000.0)  # writing to the mailbox: the database is the limit
        self._key = b""
        self._sockets: defaultdict[str, set[web.WebSocketResponse]] = defaultdict(set)
        # Per open page, the mailbox messages it was given and has not acknowledged yet.
        self._awaited: dict[web.WebSocketResponse, set[int]] = {}
        # Chats anyone may open by name (the demo's coordinator); empty in production.
        self.open_as: dict[str, str] = {}
        bind = sessions.kw.get("bind")
        assert isinstance(bind, AsyncEngine)
        self.relay = Relay(bind, self._relayed, self._resync)

    # --- the dispatcher's side --------------------------------------------------------------

    async def deliver(
        self, chat_id: str, reply: Reply, *, paid: bool = False, envelope: Envelope | None = None
    ) -> Delivery:
        """Put the message in the person's mailbox, show it on their open pages and announce
        it to their browsers. A notification that fails loses nothing: the message waits.

        Unannounced when no page is open (in this process, or on PostgreSQL in any: asked in
        the query that reads the person's language, `Relay.page_open`) and no browser took a
        notification. Other processes are told only when a page is open somewhere."""
        async with session_scope(self.sessions) as session:
            locale, elsewhere = (
                await session.execute(
                    select(locale_of(chat_id).scalar_subquery(), self.relay.page_open(chat_id))
                )
            ).one()
            row = await conversation.said(
                session,
                chat_id,
                conversation.BOT,
                {"dir": _direction(locale in RTL_LOCALES), **_reply(reply)},
                mailed=True,
            )
            message = shown(row)
            if elsewhere:
                await self.relay.send(session, chat_id, "message", {"id": row.id})
        open_pages = bool(self._sockets.get(chat_id)) or bool(elsewhere)
        await self._show(chat_id, message)
        announced = await self._announce(chat_id, reply, row.id, locale or "fr")
        return Delivery(
            DeliveryKind.SENT,
            message_id=str(message["id"]),
            unannounced=not (open_pages or announced),
        )

    async def _announce(self, chat_id: str, reply: Reply, message_id: int, locale: str) -> bool:
        """A notification on every browser of the person that accepted them; whether one took
        it. "New invitation: …", in the person's language; a tap opens the chat at it."""
        if self.push is None:
            return False
        if reply.notice is not None:
            title, line = headline(reply.notice)
            locale = reply.notice.locale
        else:
            title, line = "Coup de pouce", first_line(reply)
        payload = notification(title, line, message_id, locale, locale in RTL_LOCALES)
        results = await self.push.notify_chat(self.sessions, chat_id, payload)
        return any(result.outcome is PushOutcome.SENT for result in results)

    async def edit(self, chat_id: str, message_id: str, reply: Reply) -> Delivery:
        """Rewrite a message (a broadcast's progress report), delivered or not."""
        async with session_scope(self.sessions) as session:
            row = await conversation.one(session, chat_id, int(message_id))
            if row is None:
                return Delivery(DeliveryKind.REJECTED, error="no such web chat message")
            row.payload = {"dir": row.payload.get("dir", "ltr"), **_reply(reply)}
            message = shown(row, "edit")
            await self.relay.send(session, chat_id, "edit", {"id": row.id})
        await self._show(chat_id, message)
        return Delivery(DeliveryKind.SENT, message_id=message_id)

    async def _show(
        self,
        chat_id: str,
        message: dict[str, Any],
        *,
        origin: web.WebSocketResponse | None = None,
    ) -> None:
        """Show a message on every open page of the person (`origin`'s is marked as theirs)."""
        for socket in list(self._sockets.get(chat_id, ())):
            if message.get("waiting"):
                self._awaited.setdefault(socket, set()).add(message["id"])
            try:
                await socket.send_json({**message, "yours": True} if socket is origin else message)
            except (ConnectionError, RuntimeError):
                self._sockets[chat_id].discard(socket)  # it stays in the mailbox

    async def _relayed(self, relayed: Relayed) -> None:
        """Another process kept something for a chat whose pages this one holds: show it."""
        chat_id, body = relayed.chat_id, relayed.body
        if relayed.kind == RESYNC:
            await self._resync([chat_id])
            return
        async with session_scope(self.sessions) as session:
            if relayed.kind in {"message", "edit"} and isinstance(body.get("id"), int):
                row = await conversation.one(session, chat_id, body["id"])
                if row is None:
                    return  # gone since (the person was forgotten)
                message = shown(row, relayed.kind)
            elif relayed.kind == "outcome":
                said = [*body.get("replies", ()), body.get("mine")]
                ids = [id_ for id_ in said if isinstance(id_, int)]
                message = told(body, await conversation.several(session, chat_id, ids))
            else:
                return
        await self._show(chat_id, message)

    async def _resync(self, chat_ids: Iterable[str]) -> None:
        """Send these chats' pages their conversation again: what was kept while this process
        could not hear of it shows (a page shows only the messages it has not)."""
        for chat_id in chat_ids:
            if not self._sockets.get(chat_id):
                continue
            history = await self._history(chat_id)
            waiting = {message["id"] for message in history["messages"] if message["waiting"]}
            for socket in list(self._sockets.get(chat_id, ())):
                self._awaited.setdefault(socket, set()).update(waiting)
                try:
                    await socket.send_json(history)
                except (ConnectionError, RuntimeError):
                    self._sockets[chat_id].discard(socket)

    async def _history(self, chat_id: str) -> dict[str, Any]:
        async with session_scope(self.sessions) as session:
            rows = await conversation.recent(session, chat_id, HISTORY)
            member = await session.scalar(locale_of(chat_id)) is not None
            return {
                "type": "history",
                "messages": [shown(row) for row in rows],
                "member": member,
            }

    async def _acknowledge(
        self, socket: web.WebSocketResponse, chat_id: str, message_id: Any
    ) -> None:
        """A page showed a waiting message; only ids it was given as waiting are taken (so
        acknowledgements cost the database nothing unless they mean something)."""
        awaited = self._awaited.get(socket, set())
        if not isinstance(message_id, int) or message_id not in awaited:
            return
        awaited.discard(message_id)
        async with session_scope(self.sessions) as session:
            await conversation.acknowledge(session, chat_id, message_id)

    # --- the page's side ------------------------------------------------------------------

    async def start(self) -> None:
        async with session_scope(self.sessions) as session:
            self._key = (await stored_secrets.get_or_create(session, "webchat-cookie")).encode()
            keys = await vapid_keys(session)
        if self._push_subject is not None:
            self.push = WebPush(keys, self._push_subject, allow_loopback=self._push_to_loopback)
            await self.push.start()
        await self.relay.start()

    async def stop(self) -> None:
        await self.relay.stop()
        if self.push is not None:
            await self.push.close()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.page)
        app.router.add_get("/chat/ws", self.websocket)
        app.router.add_get("/chat/as/{name}", self.open_chat_as)
        app.router.add_get("/chat/{name}", self.static_file)

    async def static_file(self, request: web.Request) -> web.Response:
        """The installable app's files: manifest, icons, service worker, offline page."""
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            raise web.HTTPNotFound()
        content_type, cache = STATIC_FILES[name]
        response = web.Response(body=STATIC.joinpath(name).read_bytes(), content_type=content_type)
        response.headers["Cache-Control"] = cache
        if name == "sw.js":
            response.headers["Service-Worker-Allowed"] = "/"  # it serves the chat at /
        if name.endswith(".html"):
            response.headers["Content-Security-Policy"] = PAGE_POLICY
        return response

    def sign(self, chat_id: str) -> str:
        signature = hmac.new(self._key, chat_id.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{chat_id}.{signature}"

    def verify(self, cookie: str | None) -> str | None:
        """The chat id in a cookie we signed; None for a missing or forged one."""
        if not cookie or "." not in cookie:
            return None
        chat_id, _, _signature = cookie.rpartition(".")
        return chat_id if hmac.compare_digest(self.sign(chat_id), cookie) else None

    async def _visitor(self, chat_id: str | None, slug: str | None) -> tuple[str | None, str]:
        """The person's language if they joined, and the council the page is for: theirs
        (the one joined last), else the one a poster's link names."""
        async with session_scope(self.sessions) as session:
            locale = None if chat_id is None else await session.scalar(locale_of(chat_id))
            council = None
            if chat_id is not None:
                council = await session.scalar(
                    select(Council.name)
                    .join(Membership, Membership.council_id == Council.id)
                    .join(Identity, Identity.person_id == Membership.person_id)
                    .where(Identity.channel == CHANNEL, Identity.external_id == chat_id)
                    .order_by(Membership.joined_at.desc())
                    .limit(1)
                )
            if council is None and slug:
                council = await session.scalar(select(Council.name).where(Council.slug == slug))
            return locale, council or ""

    async def page(self, request: web.Request) -> web.Response:
        """The chat page, in the person's language (the browser's until they chose); sets the
        identity cookie on first visit."""
        chat_id = self.verify(request.cookies.get(COOKIE))
        locale, council = await self._visitor(chat_id, request.query.get("start"))
        t = Translator(locale or negotiate(_browser_language(request)))
        if chat_id is None and not await self.guard.new_chat(request.remote or ""):
            log.info("web chat: too many new chats from %s", request.remote)
            return _refusal(
                t,
                t._(
                    "Many conversations were started from your connection in the last hour. "
                    "Please come back in an hour, or ask your council for a hand."
                ),
            )
        body = PAGE.substitute(
            lang=t.locale,
            dir="rtl" if t.rtl else "ltr",
            title=html.escape(council or t._("Coup de pouce — chat")),
            council=html.escape(council or "Coup de pouce"),
            log_label=html.escape(t._("Conversation")),
            input_label=html.escape(t._("Your message")),
            send=html.escape(t._("Send")),
            disconnected=_script_string(t._("Connection lost. Reconnecting…")),
            spent=_script_string(t._("This question was answered, or asked again since.")),
            share_position=_script_string(t._("📍 Share my position")),
            push_key=_script_string(self.push.public_key if self.push else ""),
            notify_label=html.escape(t._("Notifications")),
            notify_question=html.escape(
                t._("Be told when your council writes to you, even with this page closed?")
            ),
            notify_yes=html.escape(t._("Yes, notify me")),
            notify_no=html.escape(t._("Not now")),
        )
        response = web.Response(text=body, content_type="text/html")
        framers = " ".join(sorted(self.origins))
        response.headers["Content-Security-Policy"] = (
            f"{PAGE_POLICY}; frame-ancestors 'self' {framers}".strip()
        )
        if chat_id is None:
            self._set_cookie(response, request, secrets.token_urlsafe(16))
        return response

    async def open_chat_as(self, request: web.Request) -> web.Response:
        """Take on a named chat (the demo's coordinator): its cookie, then the chat page."""
        chat_id = self.open_as.get(request.match_info["name"])
        if chat_id is None:
            raise web.HTTPNotFound()
        response = web.HTTPFound("/")
        self._set_cookie(response, request, chat_id)
        raise response

    def _set_cookie(self, response: web.StreamResponse, request: web.Request, chat_id: str) -> None:
        """Over HTTPS the cookie also works when the chat is embedded in a council's site
        (SameSite=None, partitioned by the embedding site); over plain HTTP, first-party only."""
        if not request.secure:
            response.set_cookie(
                COOKIE, self.sign(chat_id), max_age=COOKIE_MAX_AGE, httponly=True, samesite="Lax"
            )
            return
        # Python's cookies learn "Partitioned" only in 3.14: the attribute is added by hand.
        cookie = SimpleCookie()
        cookie[COOKIE] = self.sign(chat_id)
        morsel = cookie[COOKIE]
        morsel.update({"max-age": str(COOKIE_MAX_AGE), "path": "/", "samesite": "None"})
        morsel["httponly"] = morsel["secure"] = True
        response.headers.add("Set-Cookie", morsel.OutputString() + "; Partitioned")

    def _allowed(self, request: web.Request) -> bool:
        """A browser says which site opens the socket: the chat's own page, or a site that
        embeds it. (Other programs send no Origin; they cannot borrow a resident's cookie.)"""
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        origin = origin_of(origin)
        return origin == f"{request.scheme}://{request.host}".lower() or origin in self.origins

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        if not self._allowed(request):
            log.info("web chat: socket refused to origin %s", request.headers.get("Origin"))
            return web.Response(status=403, text="this site may not open the chat")
        address = request.remote or ""
        if not await self.guard.open_socket(address):
            log.info("web chat: too many sockets from %s", address)
            return web.Response(status=429, text="too many open chats from this address")
        try:
            return await self._socket(request)
        finally:
            self.guard.close_socket(address)

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        chat_id = self.verify(request.cookies.get(COOKIE))
        socket = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_MESSAGE_BYTES)
        await socket.prepare(request)
        if chat_id is None:
            await socket.close(code=4401, message=b"no chat cookie: reload the page")
            return socket
        language = _browser_language(request)
        self._sockets[chat_id].add(socket)
        try:
            await self.relay.hold(chat_id)  # before the history: nothing kept after it is missed
            history = await self._history(chat_id)
            self._awaited[socket] = {m["id"] for m in history["messages"] if m["waiting"]}
            await socket.send_json(history)
            await self._converse(socket, chat_id, language, request.remote or "")
        except ConnectionError as error:  # the page went while being written to
            log.info("web chat: a page went away mid-write (%s)", error.__class__.__name__)
        finally:
            self._sockets[chat_id].discard(socket)
            self._awaited.pop(socket, None)
            if not self._sockets[chat_id]:
                del self._sockets[chat_id]
            await self.relay.release(chat_id)
        return socket

    async def _converse(
        self, socket: web.WebSocketResponse, chat_id: str, language: str | None, address: str
    ) -> None:
        key = str(id(socket))
        slow_down = Throttled()
        async for message in socket:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                payload = json.loads(message.data)
            except ValueError:
                payload = None
            if isinstance(payload, dict) and payload.get("type") == "ack":
                await self._acknowledge(socket, chat_id, payload.get("id"))
                continue
            if not await self.guard.message(key, address):
                if slow_down.flooding():
                    log.info("web chat: closing a page that keeps writing too fast (%s)", address)
                    await socket.close(code=4429, message=b"too many messages")
                    break
                await socket.send_json(await slow_down.refusal(self, chat_id, language))
                await asyncio.sleep(0)  # a refusal costs little, but others come first
                continue
            slow_down.heard()
            if isinstance(payload, dict) and payload.get("type") in {"subscribe", "unsubscribe"}:
                await socket.send_json(await self._subscription(chat_id, payload))
                continue
            inbound = to_inbound(chat_id, payload, language)
            if inbound is None:
                await socket.send_json({"type": "error", "error": "unreadable message"})
                continue
            assert isinstance(payload, dict)
            tapped = payload.get("message")
            keeping = Keeping(
                chat_id,
                text=inbound.text if inbound.choice is None else None,
                choice=inbound.choice,
                tapped=tapped if isinstance(tapped, int) and not isinstance(tapped, bool) else None,
                relay=self.relay,
            )
            if inbound.command is not None:
                keeping.text = payload.get("text")
            if payload.get("quiet") is True:  # the page's own /start, not typed
                keeping.text = None
            try:
                await self.engine.handle(inbound, along=keeping.record)
            except Exception:
                log.exception("a flow failed in the web chat")
                keeping.tapped = None  # its buttons stay: the tap can be tried again
                await self._keep_apart(keeping, Outcome(replies=[apology(inbound)]))
            await self._show(chat_id, keeping.shown, origin=socket)

    async def _subscription(self, chat_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        """A browser of the person accepts notifications (or stops): its push subscription."""
        if payload["type"] == "unsubscribe":
            endpoint = payload.get("endpoint")
            if isinstance(endpoint, str):
                async with session_scope(self.sessions) as session:
                    await stored_push.unsubscribe(session, endpoint, chat_id)
            return {"type": "unsubscribed"}
        subscription = parse_subscription(
            payload.get("subscription"), allow_loopback=self._push_to_loopback
        )
        if self.push is None or subscription is None:
            return {"type": "error", "error": "subscription refused"}
        async with session_scope(self.sessions) as session:
            await stored_push.subscribe(
                session, chat_id, subscription.endpoint, subscription.p256dh, subscription.auth
            )
        return {"type": "subscribed"}

    async def _keep_apart(self, keeping: Keeping, outcome: Outcome) -> None:
        """Keep what was said and the apology when the flow's own transaction failed."""
        try:
            async with session_scope(self.sessions) as session:
                await keeping.record(session, outcome)
        except Exception:
            log.exception("the web chat could not keep a message")
            keeping.shown = render(outcome)


class Throttled:
    """Answers to messages past a socket's limits: each is refused (the page gives the text
    back to its box), and the reason is said at most once a second, in the person's language.
    A flood costs a JSON parse and a window check per message, no flow and no database, and
    ends with the socket closed."""

    FLOOD = 20  # refusals in a row: no person writes like that; the socket is closed

    def __init__(self) -> None:
        self._said_at = 0.0
        self._text: str | None = None
        self._in_a_row = 0

    def heard(self) -> None:
        self._in_a_row = 0

    def flooding(self) -> bool:
        self._in_a_row += 1
        return self._in_a_row > self.FLOOD

    async def refusal(
        self, channel: WebChatChannel, chat_id: str, language: str | None
    ) -> dict[str, Any]:
        refused: dict[str, Any] = {"type": "outcome", "refused": True, "yours": True, "replies": []}
        now = time.monotonic()
        if now - self._said_at >= 1.0:
            self._said_at = now
            if self._text is None:
                async with session_scope(channel.sessions) as session:
                    locale = await session.scalar(locale_of(chat_id))
                t = Translator(locale or negotiate(language))
                self._text = t._("You are writing very fast. Wait a moment, then send it again.")
            refused["toast"] = self._text
        return refused


def _refusal(t: Translator, text: str) -> web.Response:
    """A short page saying why the chat cannot open now."""
    body = (
        f'<!doctype html><html lang="{t.locale}" dir="{"rtl" if t.rtl else "ltr"}">'
        '<meta charset="utf-8"><meta name="viewport" content="width=device-width">'
        f"<title>Coup de pouce</title><p>{html.escape(text)}</p></html>"
    )
    response = web.Response(status=429, text=body, content_type="text/html")
    response.headers["Retry-After"] = "3600"
    return response


def _script_string(text: str) -> str:
    """A string as a JavaScript literal inside the page's <script>."""
    return json.dumps(text).replace("</", "<\\/")


def _browser_language(request: web.Request) -> str | None:
    return first_language(request.headers.get("Accept-Language"))

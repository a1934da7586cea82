"""Web chat adapter: the same flows in a browser page, over a WebSocket.

A person is identified by a signed cookie holding a random id; the flows do not
know which channel they talk to.

Replies to what the person does go straight back over the socket. Messages from the
outbox (invitations, calls, reminders, results) are written to the person's mailbox
(`web_messages`), pushed to every open page of theirs, and marked delivered when a page
acknowledges them; those not acknowledged are sent again at the next connection.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import logging
import re
import secrets
from collections import defaultdict
from datetime import timedelta
from importlib import resources
from string import Template
from typing import Any

from aiohttp import WSMsgType, web
from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.dispatcher import Delivery, DeliveryKind, Envelope
from bot.ratelimit import RateLimiter
from flows.engine import Engine, Inbound, Outcome, Reply, apology
from flows.i18n import RTL_LOCALES, Translator, first_language, negotiate
from storage.db import session_scope
from storage.models import Identity, Person, WebMessage, utcnow
from storage.queries import secrets as stored_secrets

log = logging.getLogger(__name__)

CHANNEL = "web"
COOKIE = "cdp_chat"
COOKIE_MAX_AGE = 365 * 24 * 3600
MAX_MESSAGE_BYTES = 64 * 1024  # 10,000 characters in any script reach the flows, which answer
COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,32})(?:@\S+)?(?:\s+(.*))?$", re.DOTALL)
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
    if kind != "text" or not isinstance(payload.get("text"), str):
        return None
    text: str = payload["text"]
    command = COMMAND.match(text.strip())
    if command is not None:
        return Inbound(command=command[1].lower(), argument=(command[2] or "").strip(), **common)
    return Inbound(text=text, **common)


def locale_of(chat_id: str) -> Select[str]:
    """The language of the person behind a web chat, if they joined."""
    return (
        select(Person.locale)
        .join(Identity, Identity.person_id == Person.id)
        .where(Identity.channel == CHANNEL, Identity.external_id == chat_id)
    )


def _mailed(row: WebMessage) -> dict[str, Any]:
    return {"type": "message", "id": row.id, **row.payload}


def render(outcome: Outcome) -> dict[str, Any]:
    """The JSON the page shows: replies with buttons and files, and a notice for the tap."""
    return {
        "type": "outcome",
        "dir": "rtl" if outcome.rtl else "ltr",
        "toast": outcome.toast,
        "clear_buttons": outcome.clear_buttons,
        "replies": [_reply(reply) for reply in outcome.replies],
    }


def _reply(reply: Reply) -> dict[str, Any]:
    rendered: dict[str, Any] = {
        "text": reply.text,
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


class WebChatChannel:
    """Serves the chat page and its WebSocket, and delivers the outbox to web chat persons."""

    channel = CHANNEL
    edits = True
    receipts = False
    window: timedelta | None = None  # free to write at any time

    def __init__(self, engine: Engine, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.engine = engine
        self.sessions = sessions
        self.limiter = RateLimiter(1000.0)  # writing to the mailbox: the database is the limit
        self._key = b""
        self._sockets: defaultdict[str, set[web.WebSocketResponse]] = defaultdict(set)
        # Chats anyone may open by name (the demo's coordinator); empty in production.
        self.open_as: dict[str, str] = {}

    # --- the dispatcher's side --------------------------------------------------------------

    async def deliver(
        self, chat_id: str, reply: Reply, *, paid: bool = False, envelope: Envelope | None = None
    ) -> Delivery:
        """Put the message in the person's mailbox, then show it on their open pages."""
        async with session_scope(self.sessions) as session:
            locale = await session.scalar(locale_of(chat_id))
            row = WebMessage(
                chat_id=chat_id,
                payload={"dir": "rtl" if locale in RTL_LOCALES else "ltr", **_reply(reply)},
            )
            session.add(row)
            await session.flush()
            message = _mailed(row)
        await self._push(chat_id, message)
        return Delivery(DeliveryKind.SENT, message_id=str(message["id"]))

    async def edit(self, chat_id: str, message_id: str, reply: Reply) -> Delivery:
        """Rewrite a message (a broadcast's progress report), delivered or not."""
        async with session_scope(self.sessions) as session:
            row = await session.get(WebMessage, int(message_id))
            if row is None or row.chat_id != chat_id:
                return Delivery(DeliveryKind.REJECTED, error="no such web chat message")
            row.payload = {"dir": row.payload.get("dir", "ltr"), **_reply(reply)}
            message = _mailed(row)
        await self._push(chat_id, {**message, "type": "edit"})
        return Delivery(DeliveryKind.SENT, message_id=message_id)

    async def _push(self, chat_id: str, message: dict[str, Any]) -> None:
        for socket in list(self._sockets.get(chat_id, ())):
            try:
                await socket.send_json(message)
            except (ConnectionError, RuntimeError):
                self._sockets[chat_id].discard(socket)  # it stays in the mailbox

    async def _waiting(self, chat_id: str) -> list[dict[str, Any]]:
        async with session_scope(self.sessions) as session:
            rows = await session.scalars(
                select(WebMessage)
                .where(WebMessage.chat_id == chat_id, WebMessage.delivered_at.is_(None))
                .order_by(WebMessage.id)
            )
            return [_mailed(row) for row in rows]

    async def _acknowledge(self, chat_id: str, message_id: Any) -> None:
        if not isinstance(message_id, int) or isinstance(message_id, bool):
            return
        async with session_scope(self.sessions) as session:
            await session.execute(
                update(WebMessage)
                .where(
                    WebMessage.id == message_id,
                    WebMessage.chat_id == chat_id,
                    WebMessage.delivered_at.is_(None),
                )
                .values(delivered_at=utcnow())
            )

    # --- the page's side ------------------------------------------------------------------

    async def start(self) -> None:
        async with session_scope(self.sessions) as session:
            self._key = (await stored_secrets.get_or_create(session, "webchat-cookie")).encode()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.page)
        app.router.add_get("/chat/ws", self.websocket)
        app.router.add_get("/chat/as/{name}", self.open_chat_as)

    def sign(self, chat_id: str) -> str:
        signature = hmac.new(self._key, chat_id.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{chat_id}.{signature}"

    def verify(self, cookie: str | None) -> str | None:
        """The chat id in a cookie we signed; None for a missing or forged one."""
        if not cookie or "." not in cookie:
            return None
        chat_id, _, _signature = cookie.rpartition(".")
        return chat_id if hmac.compare_digest(self.sign(chat_id), cookie) else None

    async def _locale_of(self, chat_id: str | None) -> str | None:
        if chat_id is None:
            return None
        async with session_scope(self.sessions) as session:
            return await session.scalar(locale_of(chat_id))

    async def page(self, request: web.Request) -> web.Response:
        """The chat page, in the person's language (the browser's until they chose); sets the
        identity cookie on first visit."""
        chat_id = self.verify(request.cookies.get(COOKIE))
        locale = await self._locale_of(chat_id) or negotiate(_browser_language(request))
        t = Translator(locale)
        body = PAGE.substitute(
            lang=locale,
            dir="rtl" if t.rtl else "ltr",
            title=html.escape(t._("Coup de pouce — chat")),
            log_label=html.escape(t._("Conversation")),
            input_label=html.escape(t._("Your message")),
            send=html.escape(t._("Send")),
            disconnected=json.dumps(t._("Connection lost. Reconnecting…")).replace("</", "<\\/"),
        )
        response = web.Response(text=body, content_type="text/html")
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data: blob:; style-src 'unsafe-inline'; "
            "script-src 'unsafe-inline'; connect-src 'self'"
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
        response.set_cookie(
            COOKIE,
            self.sign(chat_id),
            max_age=COOKIE_MAX_AGE,
            httponly=True,
            samesite="None" if request.secure else "Lax",
            secure=request.secure,
            partitioned=request.secure or None,
        )

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        chat_id = self.verify(request.cookies.get(COOKIE))
        socket = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_MESSAGE_BYTES)
        await socket.prepare(request)
        if chat_id is None:
            await socket.close(code=4401, message=b"no chat cookie: reload the page")
            return socket
        language = _browser_language(request)
        self._sockets[chat_id].add(socket)
        try:
            for waiting in await self._waiting(chat_id):
                await socket.send_json(waiting)
            await self._converse(socket, chat_id, language)
        finally:
            self._sockets[chat_id].discard(socket)
            if not self._sockets[chat_id]:
                del self._sockets[chat_id]
        return socket

    async def _converse(
        self, socket: web.WebSocketResponse, chat_id: str, language: str | None
    ) -> None:
        async for message in socket:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                payload = json.loads(message.data)
            except ValueError:
                payload = None
            if isinstance(payload, dict) and payload.get("type") == "ack":
                await self._acknowledge(chat_id, payload.get("id"))
                continue
            inbound = to_inbound(chat_id, payload, language)
            if inbound is None:
                await socket.send_json({"type": "error", "error": "unreadable message"})
                continue
            try:
                outcome = await self.engine.handle(inbound)
            except Exception:
                log.exception("a flow failed in the web chat")
                outcome = Outcome(replies=[apology(inbound)])
            await socket.send_json(render(outcome))


def _browser_language(request: web.Request) -> str | None:
    return first_language(request.headers.get("Accept-Language"))

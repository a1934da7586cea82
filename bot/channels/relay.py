"""Between the processes of one PostgreSQL database: what one process stores for a web chat
reaches at once the pages that another process holds, and any process can tell whether a
person has a page open anywhere.

Several `web` processes behind a load balancer each hold some of the chat's sockets, and the
dispatcher may run apart from all of them. A process that keeps a message for a chat (the
dispatcher's delivery, a progress report rewritten, a turn of the conversation from another
tab) says so with `NOTIFY` in the transaction that keeps it: PostgreSQL hands the notice to
every listening process when, and only if, the transaction commits. The notice is small and
holds nothing a person wrote: the process's token, the chat id, what happened and the ids of
the rows (`Relay.send`). A process that holds pages of the chat reads the rows and shows
them; the others drop the notice unread, and the process that sent it, which showed the
message on its own pages already, ignores its own.

Whether a page is open anywhere: each process holding pages of a chat holds a shared
advisory lock on the chat's key, on its listening connection. A delivery asks within the
query it makes anyway (the person's language) for the same lock, exclusive, for its
transaction (`Relay.page_open`): refused, a page is open somewhere (the delivery is not
"unannounced", `Delivery.unannounced`, and it sends its notice); taken, no page is open, no
notice is sent (a broadcast mostly reaches people whose page is closed, and NOTIFY makes
commits wait for one another: 32 deliveries at once went 0.81 times as fast with it), and a
page that opens meanwhile waits for the delivery's commit before reading its history, which
then holds the message. This costs no table, no migration and no heartbeat: one statement
when a process opens the first page of a chat and one when it closes the last, nothing more
per delivery; a process that dies lets its locks go with its connection. Its limits,
accepted: the key is 32 bits of a hash of the chat id (a chat whose key is shared with an open
one counts as open: with 10,000 pages open, one chat in about 430,000); of two deliveries to
one chat in the same instant, the second counts the first as a page; and while a process's
connection is down its pages count as closed (their messages still reach them, below).
A turn of the conversation always sends its notice: its own process holds the lock, and
another may hold it too.

The listening connection is opened with the first page a process holds (a dispatcher or a
scheduler, which hold none, open nothing), checked every `probe_every` seconds, and opened
again when it drops: the loss is logged once, attempts back off, and once listening again the
locks are taken again and every page held is sent its conversation anew (`resync`): what was
kept meanwhile shows, and what it already shows is not shown twice (the page skips the
messages it has). The page's own history on reconnecting covers a process that restarted;
this covers a connection that dropped while the pages stayed. (An edit made meanwhile shows at
the next edit or the next visit: a page keeps the messages it has as they are.)

SQLite is one process: no notices, no locks, no connection, nothing spent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import Boolean, ColumnElement, false, func, not_, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

log = logging.getLogger(__name__)

CHANNEL = "webchat"
# The class of the presence locks (the first half of a two-part advisory lock key): "wcpr".
PRESENCE = 0x77637072
MAX_PAYLOAD = 7900  # bytes; PostgreSQL refuses a notice of 8000
RESYNC = "history"  # a notice too long to send: the pages of the chat are sent their history
# Errors of a connection that is going or gone: it is opened again.
LOST = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


@dataclass(frozen=True)
class Relayed:
    """A notice from another process: `kind` happened in `chat_id`'s conversation."""

    chat_id: str
    kind: str
    body: dict[str, Any]


OnRelayed = Callable[[Relayed], Awaitable[None]]
OnResync = Callable[[Iterable[str]], Awaitable[None]]


def key_of(chat_id: str) -> int:
    """The second half of a chat's presence lock key: a signed 32-bit hash of its id."""
    digest = hashlib.blake2b(chat_id.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


class Relay:
    """Notices between the processes of one PostgreSQL database, for the web chat: `send` in a
    transaction, `hold`/`release` a chat while this process has pages of it (notices for it
    are then handed to `on_relayed`), `page_open` in a query. `start`/`stop` with the
    channel."""

    def __init__(
        self,
        engine: AsyncEngine,
        on_relayed: OnRelayed,
        on_resync: OnResync,
        *,
        retry: float = 0.5,
        retry_max: float = 30.0,
        probe_every: float = 30.0,
        first_wait: float = 2.0,
    ) -> None:
        self.enabled = engine.dialect.name == "postgresql"
        self.origin = secrets.token_hex(6)  # this process, in its notices
        self._engine = engine
        self._on_relayed = on_relayed
        self._on_resync = on_resync
        self.retry, self.retry_max = retry, retry_max
        self.probe_every = probe_every
        self._first_wait = first_wait  # the first page waits this long for the listening
        self._running = False
        self._pages: dict[str, int] = {}  # chat id: pages of it this process holds
        self._locked: set[str] = set()  # chats whose presence lock the connection holds
        self._connection: asyncpg.Connection | None = None
        self._using = asyncio.Lock()  # one statement at a time on the connection
        self._ready = asyncio.Event()  # listening, locks taken
        self._listened = False  # once at least
        self._behind = False  # pages held while not listening: resync them once listening
        self._queue: asyncio.Queue[Relayed] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.reconnections = 0

    # --- the sending side: any process ----------------------------------------------------

    async def send(
        self, session: AsyncSession, chat_id: str, kind: str, body: dict[str, Any]
    ) -> None:
        """Tell the other processes, at commit, that `kind` happened in the chat. `body` is ids
        and flags only; one too long for a notice becomes a request to resync the chat."""
        if not self.enabled:
            return
        payload = _payload(self.origin, chat_id, kind, body)
        if len(payload.encode()) > MAX_PAYLOAD:
            payload = _payload(self.origin, chat_id, RESYNC, {})
        await session.execute(select(func.pg_notify(CHANNEL, payload)))

    def page_open(self, chat_id: str) -> ColumnElement[bool]:
        """Whether any process holds a page of the chat, as a column of a query (false on
        SQLite: one process, whose own sockets say it). When none does, the transaction holds
        the chat's lock until it ends: a page opening meanwhile reads its history after the
        commit. Ask it first in the transaction, which is then short."""
        if not self.enabled:
            return false()
        taken = func.pg_try_advisory_xact_lock(PRESENCE, key_of(chat_id), type_=Boolean)
        return not_(taken)

    # --- the pages' side: processes holding sockets ---------------------------------------

    async def hold(self, chat_id: str) -> None:
        """A page of the chat opened in this process: its notices are wanted, and its presence
        shown. The process's first page opens the connection and waits (a moment) for it, so
        that nothing kept after the page read its history is missed."""
        if not self.enabled or not self._running:
            return
        self._pages[chat_id] = self._pages.get(chat_id, 0) + 1
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._listen(), name="webchat relay"),
                asyncio.create_task(self._hand_over(), name="webchat relay notices"),
            ]
        if not self._ready.is_set() and not self._listened:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), self._first_wait)
        if not self._ready.is_set():
            self._behind = True  # its history again once listening
        await self._lock(chat_id)

    async def release(self, chat_id: str) -> None:
        """A page of the chat closed in this process."""
        count = self._pages.get(chat_id, 0) - 1
        if count > 0:
            self._pages[chat_id] = count
            return
        self._pages.pop(chat_id, None)
        await self._lock(chat_id)

    @property
    def backend_pid(self) -> int | None:
        """The server process of the listening connection, if it is open."""
        connection = self._connection
        return None if connection is None or connection.is_closed() else connection.get_server_pid()

    @property
    def listening(self) -> bool:
        return self._ready.is_set()

    async def start(self) -> None:
        """Ready to listen: the connection opens with the first page held."""
        self._running = True

    async def stop(self) -> None:
        self._running = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._close()
        self._pages.clear()

    async def _lock(self, chat_id: str) -> None:
        """Make the connection's presence lock for the chat match whether pages of it are
        held (holds and releases may interleave; the lock follows the last word)."""
        async with self._using:
            connection = self._connection
            if connection is None or not self._ready.is_set():
                return  # taken again when listening again
            wanted = chat_id in self._pages
            if wanted == (chat_id in self._locked):
                return
            function = "pg_advisory_lock_shared" if wanted else "pg_advisory_unlock_shared"
            try:
                await connection.execute(
                    f"SELECT {function}($1, $2)", PRESENCE, key_of(chat_id), timeout=10
                )
            except LOST:
                return  # the connection is going: the locks go with it
            if wanted:
                self._locked.add(chat_id)
            else:
                self._locked.discard(chat_id)

    async def _listen(self) -> None:
        """Listen, and listen again after each loss, backing off while the database is away."""
        delay = self.retry
        lost = False  # logged once per loss
        while True:
            try:
                connection, gone = await self._connect()
            except Exception as error:  # whatever it is, the listening must go on
                if not lost:
                    log.warning("web chat relay: cannot listen to the database (%r)", error)
                    lost = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)
                continue
            if lost:
                log.info("web chat relay: listening again")
                self.reconnections += 1
            lost, delay = False, self.retry
            if self._behind:
                self._behind = False
                try:
                    await self._on_resync(list(self._pages))
                except Exception:
                    log.exception("web chat relay: the pages could not be sent their history")
            await self._watch(connection, gone)
            log.warning("web chat relay: the database connection was lost; reconnecting")
            lost = self._behind = True
            await self._close()

    async def _connect(self) -> tuple[asyncpg.Connection, asyncio.Event]:
        """Open the connection, listen, take the presence locks of the pages held."""
        _args, kwargs = self._engine.dialect.create_connect_args(self._engine.url)
        for option in ("prepared_statement_cache_size", "prepared_statement_name_func"):
            kwargs.pop(option, None)
        gone = asyncio.Event()
        connection: asyncpg.Connection = await asyncpg.connect(**kwargs)
        try:
            connection.add_termination_listener(lambda _connection: gone.set())
            async with self._using:
                await connection.add_listener(CHANNEL, self._heard)
                chats = list(self._pages)
                await connection.execute(
                    "SELECT pg_advisory_lock_shared($1, key) FROM unnest($2::int[]) AS key",
                    PRESENCE,
                    [key_of(chat_id) for chat_id in chats],
                )
                self._locked = set(chats)
                self._connection = connection
                self._ready.set()
                self._listened = True
        except BaseException:
            connection.terminate()
            raise
        return connection, gone

    async def _watch(self, connection: asyncpg.Connection, gone: asyncio.Event) -> None:
        """Until the connection is lost; a silent one is found by a probe now and then."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gone.wait(), self.probe_every)
                return
            try:
                async with self._using:
                    await connection.fetchval("SELECT 1", timeout=10)
            except LOST:
                return

    async def _close(self) -> None:
        self._ready.clear()
        self._locked = set()
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            try:
                await connection.close(timeout=2)
            except LOST:
                connection.terminate()

    def _heard(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        """A notice: kept for the pages only if this process holds some of the chat's, and
        another process sent it."""
        try:
            notice = json.loads(payload)
        except ValueError:
            return
        if not isinstance(notice, dict) or notice.get("o") == self.origin:
            return
        chat_id, kind, body = notice.get("c"), notice.get("k"), notice.get("b")
        if not isinstance(chat_id, str) or chat_id not in self._pages:
            return  # no page of it here: nothing to do
        if not isinstance(kind, str) or not isinstance(body, dict):
            return
        self._queue.put_nowait(Relayed(chat_id, kind, body))

    async def _hand_over(self) -> None:
        """The notices to the pages, one at a time, in the order they came."""
        while True:
            relayed = await self._queue.get()
            try:
                await self._on_relayed(relayed)
            except Exception:
                log.exception("web chat relay: a notice could not be shown")


def _payload(origin: str, chat_id: str, kind: str, body: dict[str, Any]) -> str:
    return json.dumps({"o": origin, "c": chat_id, "k": kind, "b": body}, separators=(",", ":"))

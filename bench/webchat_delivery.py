"""Web chat delivery: how fast does a broadcast reach residents who use the web chat?

1. Mailbox: a broadcast to N web chat residents (default 5,000), none with the page open,
   through the real application (CoupDePouce without Telegram, so the dispatcher has the web
   chat as its only sender). Timed from the broadcast's start (start_broadcast to the
   council's members, as a flow queues it) until every message is in the mailbox: N
   `web_messages` rows, and the N outbox rows recorded as sent. Messages/s.
   Baseline in the same run: the same N rows written into `web_messages` one transaction per
   row through the application's session factory, without the dispatcher, by as many writers
   as the dispatcher has requests in flight (and by one writer). Ratio dispatcher / baseline.
2. Open pages: M residents (default 200) with the chat page open (a cookie from GET /, then
   the WebSocket /chat/ws), and a broadcast to them. Time from the broadcast's start until
   every page has received its message, and until every acknowledgement is recorded;
   latency of each message from the commit of start_broadcast (when the messages become
   due) to its page receiving it, p50/p95/max. Compared with how long the mailbox broadcast
   of (1) took to write its first M messages.

The dispatcher is configured so that its limits do not apply: each resident gets one message
(the pause between two messages into one chat never comes into play) and DISPATCH_RATE is
10,000/s. The web chat channel keeps its own limiter (WebChatChannel.limiter), as in production.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import make_url

from bench.common import (
    LOCALES,
    Stopwatch,
    broadcast_to_members,
    percentile,
    quiet_logging,
    sent_count,
    status_counts,
)
from bot.app import CoupDePouce
from bot.channels.webchat import CHANNEL, COOKIE
from bot.settings import load_settings
from storage import db
from storage.models import (
    Identity,
    Membership,
    OutboxMessage,
    OutboxStatus,
    Person,
    PersonStatus,
    WebMessage,
    utcnow,
)
from storage.queries import councils

DISPATCH_RATE = 10_000.0
BATCH = 5_000  # residents per INSERT
POLL = 0.2  # seconds between two looks at the database while waiting
DEADLINE_SLACK = 120.0  # seconds beyond a slow 50 messages/s before giving up


# --- the database --------------------------------------------------------------------------


@asynccontextmanager
async def database(url: str | None) -> AsyncIterator[str]:
    """A migrated, empty database: the given one, or a fresh SQLite file removed afterwards."""
    if url is not None:
        await asyncio.to_thread(db.upgrade, url)
        await require_empty(url)
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="cdp-bench-") as folder:
        url = f"sqlite+aiosqlite:///{folder}/bench.db"
        await asyncio.to_thread(db.upgrade, url)
        yield url


async def require_empty(url: str) -> None:
    engine = db.create_engine(url)
    try:
        async with db.session_scope(db.session_factory(engine)) as session:
            people = await session.scalar(select(func.count()).select_from(Person))
    finally:
        await engine.dispose()
    if people:
        raise SystemExit(f"the database holds {people} people already: give an empty one")


def label(url: str) -> str:
    return "SQLite" if make_url(url).get_backend_name() == "sqlite" else "PostgreSQL"


async def add_council(app: CoupDePouce, slug: str, name: str) -> int:
    """A council with quiet hours off, so that nothing waits for the morning."""
    async with db.session_scope(app.sessions) as session:
        council = await councils.add(session, slug, name, "Europe/Paris", "fr")
        council.quiet_start = council.quiet_end = None
        await session.flush()
        council_id: int = council.id
    return council_id


async def add_web_residents(app: CoupDePouce, council_id: int, chat_ids: Sequence[str]) -> None:
    """Members of the council who consented in the web chat (as bot/demo.py's `person`), in
    plain INSERTs; the chat ids are their cookies' ids."""
    now = utcnow()
    for start in range(0, len(chat_ids), BATCH):
        batch = chat_ids[start : start + BATCH]
        people = [
            {
                "first_name": f"Habitante {start + index}",
                "locale": LOCALES[(start + index) % len(LOCALES)],
                "status": PersonStatus.ACTIVE,
                "consent_version": "bench",
                "consented_at": now,
                "created_at": now,
            }
            for index in range(len(batch))
        ]
        async with app.database.begin() as connection:
            result = await connection.execute(
                insert(Person).returning(Person.id, sort_by_parameter_order=True), people
            )
            ids = [row[0] for row in result]
            await connection.execute(
                insert(Identity),
                [
                    {
                        "person_id": person_id,
                        "channel": CHANNEL,
                        "external_id": chat_id,
                        "created_at": now,
                    }
                    for person_id, chat_id in zip(ids, batch, strict=True)
                ],
            )
            await connection.execute(
                insert(Membership),
                [
                    {"person_id": person_id, "council_id": council_id, "joined_at": now}
                    for person_id in ids
                ],
            )
    if app.database.dialect.name == "postgresql":
        # Statistics, as autovacuum would have gathered them in a database in service.
        async with app.database.connect() as connection:
            await connection.execute(text("ANALYZE"))


async def mailbox_times(app: CoupDePouce, chat_ids: Sequence[str]) -> list[datetime]:
    """When each mailbox row of these chats was written, in order."""
    async with db.session_scope(app.sessions) as session:
        times = await session.scalars(
            select(WebMessage.created_at)
            .where(WebMessage.chat_id.in_(chat_ids))
            .order_by(WebMessage.created_at)
        )
        return list(times)


async def mailbox_count(app: CoupDePouce) -> int:
    async with db.session_scope(app.sessions) as session:
        return int(await session.scalar(select(func.count()).select_from(WebMessage)) or 0)


async def last_sent_at(app: CoupDePouce, broadcast_id: int) -> datetime | None:
    async with db.session_scope(app.sessions) as session:
        return await session.scalar(
            select(func.max(OutboxMessage.sent_at)).where(
                OutboxMessage.broadcast_id == broadcast_id,
                OutboxMessage.status == OutboxStatus.SENT,
            )
        )


async def acknowledged(app: CoupDePouce, chat_ids: Sequence[str]) -> tuple[int, datetime | None]:
    """How many of these chats' mailbox rows a page acknowledged, and when the last was."""
    async with db.session_scope(app.sessions) as session:
        row = (
            await session.execute(
                select(func.count(), func.max(WebMessage.delivered_at)).where(
                    WebMessage.chat_id.in_(chat_ids), WebMessage.delivered_at.is_not(None)
                )
            )
        ).one()
    return int(row[0]), row[1]


def seconds_between(start: datetime, end: datetime | None) -> float:
    return (end - start).total_seconds() if end is not None else float("nan")


def per_second(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("nan")


# --- the application -----------------------------------------------------------------------


async def start_app(url: str) -> CoupDePouce:
    """The real application, without Telegram: the web chat is the dispatcher's only sender."""
    settings = load_settings(
        database_url=url,
        http_host="127.0.0.1",
        http_port=0,
        dispatch_rate=DISPATCH_RATE,
        dispatch_report_seconds=1.0,
    )
    app = CoupDePouce(settings, telegram=False)
    await app.start()
    return app


# --- 1. into the mailbox -------------------------------------------------------------------


@dataclass(frozen=True)
class Mailbox:
    audience: int
    enqueue: float  # start_broadcast + commit, seconds
    in_mailbox: float  # broadcast start to the last mailbox row, seconds
    recorded: float  # broadcast start to the last outbox row recorded as sent, seconds
    first_row: float  # broadcast start to the first mailbox row, seconds
    first_m: float  # broadcast start to the M-th mailbox row, seconds
    mailbox_rows: int
    statuses: dict[str, int]
    cpu: float  # this process's CPU seconds over `done`
    done: float  # broadcast start until every message was seen in the mailbox and sent

    @property
    def rate(self) -> float:
        return per_second(self.mailbox_rows, max(self.in_mailbox, self.recorded))


async def broadcast_to_mailboxes(
    app: CoupDePouce, council_id: int, chat_ids: Sequence[str], connected: int
) -> Mailbox:
    count = len(chat_ids)
    watch = Stopwatch()
    started_at = utcnow()
    broadcast_id = await broadcast_to_members(app, council_id)
    enqueue = watch.wall
    deadline = time.monotonic() + count / 50 + DEADLINE_SLACK
    while time.monotonic() < deadline:
        if await sent_count(app, broadcast_id) >= count and await mailbox_count(app) >= count:
            break
        await asyncio.sleep(POLL)
    done, cpu = watch.wall, watch.cpu
    times = await mailbox_times(app, chat_ids)
    nth = times[min(connected, len(times)) - 1] if times else None
    return Mailbox(
        audience=count,
        enqueue=enqueue,
        in_mailbox=seconds_between(started_at, times[-1] if times else None),
        recorded=seconds_between(started_at, await last_sent_at(app, broadcast_id)),
        first_row=seconds_between(started_at, times[0] if times else None),
        first_m=seconds_between(started_at, nth),
        mailbox_rows=len(times),
        statuses=await status_counts(app, broadcast_id),
        cpu=cpu,
        done=done,
    )


@dataclass(frozen=True)
class Writes:
    writers: int
    rows: int
    seconds: float
    cpu: float

    @property
    def rate(self) -> float:
        return per_second(self.rows, self.seconds)


async def bare_writes(
    app: CoupDePouce, rows: Sequence[tuple[str, dict[str, Any]]], writers: int
) -> Writes:
    """The mailbox rows alone: one transaction per row, as WebChatChannel.deliver writes it
    (add, flush for the id, commit), `writers` at a time, without the dispatcher."""
    queue = iter(rows)

    async def writer() -> None:
        for chat_id, payload in queue:
            async with db.session_scope(app.sessions) as session:
                session.add(WebMessage(chat_id=chat_id, payload=payload))
                await session.flush()

    watch = Stopwatch()
    await asyncio.gather(*(writer() for _ in range(writers)))
    return Writes(writers, len(rows), watch.wall, watch.cpu)


async def mailbox_rows(
    app: CoupDePouce, chat_ids: Sequence[str]
) -> list[tuple[str, dict[str, Any]]]:
    """The (chat id, payload) of the rows the dispatcher wrote, to write them again."""
    async with db.session_scope(app.sessions) as session:
        rows = await session.execute(
            select(WebMessage.chat_id, WebMessage.payload)
            .where(WebMessage.chat_id.in_(chat_ids))
            .order_by(WebMessage.id)
        )
        return [(chat_id, payload) for chat_id, payload in rows]


# --- 2. to open pages ----------------------------------------------------------------------


class Page:
    """A browser tab on the chat page: its cookie, its WebSocket, when its message came."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.client = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Accept-Language": "fr"}
        )
        self.chat_id = ""
        self.socket: aiohttp.ClientWebSocketResponse | None = None
        self.received: float | None = None  # time.monotonic()
        self.message_id: int | None = None

    async def open(self) -> str:
        """Load the page, which sets the signed cookie `chatid.signature`; return the id."""
        async with self.client.get(f"{self.base}/") as response:
            response.raise_for_status()
            await response.read()
            cookie = response.cookies[COOKIE].value
        self.chat_id = cookie.rpartition(".")[0]
        return self.chat_id

    async def connect(self) -> None:
        """Open the WebSocket, and wait for the server to give the kept conversation: it then
        holds the socket."""
        self.socket = await self.client.ws_connect(f"{self.base}/chat/ws")
        answer = await self.socket.receive_json(timeout=30)
        if answer.get("type") != "history":
            raise RuntimeError(f"unexpected first message on the chat socket: {answer}")

    async def wait_for_message(self, seconds: float) -> None:
        """Receive the broadcast's message and acknowledge it, as the page's script does."""
        assert self.socket is not None
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = await self.socket.receive(timeout=left)
            except TimeoutError:
                return
            if message.type != aiohttp.WSMsgType.TEXT:
                if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    return
                continue
            received = time.monotonic()
            payload = json.loads(message.data)
            if payload.get("type") == "message":
                self.received = received
                self.message_id = int(payload["id"])
                await self.socket.send_json({"type": "ack", "id": self.message_id})
                return

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()
        await self.client.close()


@dataclass(frozen=True)
class Pages:
    audience: int
    enqueue: float
    received: list[float]  # broadcast start to each page's receiving, seconds
    latencies: list[float]  # start_broadcast's commit to each page's receiving, seconds
    all_received: float  # broadcast start to the last page receiving, seconds
    acknowledged: int
    all_acknowledged: float  # broadcast start to the last acknowledgement recorded, seconds
    recorded: float  # broadcast start to the last outbox row recorded as sent, seconds
    statuses: dict[str, int]


async def broadcast_to_pages(
    app: CoupDePouce, council_id: int, pages: Sequence[Page], chat_ids: Sequence[str]
) -> Pages:
    count = len(pages)
    timeout = count / 50 + DEADLINE_SLACK
    waiting = [asyncio.create_task(page.wait_for_message(timeout)) for page in pages]
    await asyncio.sleep(0)  # every page is now waiting on its socket
    started = time.monotonic()
    started_at = utcnow()
    broadcast_id = await broadcast_to_members(app, council_id)
    committed = time.monotonic()
    await asyncio.gather(*waiting)
    deadline = time.monotonic() + DEADLINE_SLACK
    acks, last_ack = 0, None
    while time.monotonic() < deadline:
        acks, last_ack = await acknowledged(app, chat_ids)
        if acks >= count and await sent_count(app, broadcast_id) >= count:
            break
        await asyncio.sleep(POLL)
    received = [page.received for page in pages if page.received is not None]
    return Pages(
        audience=count,
        enqueue=committed - started,
        received=[at - started for at in received],
        latencies=[at - committed for at in received],
        all_received=max(received) - started if received else float("nan"),
        acknowledged=acks,
        all_acknowledged=seconds_between(started_at, last_ack),
        recorded=seconds_between(started_at, await last_sent_at(app, broadcast_id)),
        statuses=await status_counts(app, broadcast_id),
    )


async def open_pages(app: CoupDePouce, council_id: int, count: int) -> tuple[list[Page], list[str]]:
    """`count` pages with their cookies; their chat ids made web chat residents of the council
    directly in the database (as if each had consented); then their WebSockets opened."""
    base = f"http://127.0.0.1:{app.port}"
    pages = [Page(base) for _ in range(count)]
    chat_ids = list(await asyncio.gather(*(page.open() for page in pages)))
    if len(set(chat_ids)) != count or any(not chat_id for chat_id in chat_ids):
        raise RuntimeError("the pages did not get one cookie each")
    await add_web_residents(app, council_id, chat_ids)
    for start in range(0, count, 50):  # not all at once: a burst of handshakes is not measured
        await asyncio.gather(*(page.connect() for page in pages[start : start + 50]))
    return pages, chat_ids


# --- the run -------------------------------------------------------------------------------


def ratio(mine: float, theirs: float) -> str:
    return f"{mine / theirs:.2f}" if theirs > 0 else "n/a"


async def run(url: str | None, residents: int, connected: int) -> None:
    async with database(url) as live_url:
        name = label(live_url)
        app = await start_app(live_url)
        try:
            watch = Stopwatch()
            mailbox_council = await add_council(app, "quartier-nord", "Conseil citoyen Nord")
            offline = [secrets.token_urlsafe(16) for _ in range(residents)]
            await add_web_residents(app, mailbox_council, offline)
            print(f"[{name}] setup: {residents:,} web chat residents ({watch.wall:.1f} s)")
            mailbox = await broadcast_to_mailboxes(app, mailbox_council, offline, connected)
            rows = await mailbox_rows(app, offline)
            together = await bare_writes(app, rows, app.dispatcher.limits.concurrency)
            alone = await bare_writes(app, rows, 1)
            # The pages open now: an idle page would have to answer the server's heartbeat.
            watch = Stopwatch()
            pages_council = await add_council(app, "quartier-sud", "Conseil citoyen Sud")
            pages, online = await open_pages(app, pages_council, connected)
            print(
                f"[{name}] setup: {connected:,} web chat residents with the page open "
                f"({watch.wall:.1f} s)"
            )
            try:
                opened = await broadcast_to_pages(app, pages_council, pages, online)
            finally:
                await asyncio.gather(*(page.close() for page in pages))
            limiter = app.webchat.limiter.rate
        finally:
            await app.stop()
    report_mailbox(name, mailbox, together, alone, limiter)
    report_pages(name, opened, mailbox)


def report_mailbox(
    name: str, mailbox: Mailbox, together: Writes, alone: Writes, limiter: float
) -> None:
    count = mailbox.audience
    print(
        f"[{name}] 1. broadcast to {count:,} web chat residents, no page open "
        f"(dispatcher: DISPATCH_RATE={DISPATCH_RATE:,.0f}/s, web chat limiter {limiter:,.0f}/s)"
    )
    print(f"[{name}]   enqueue (start_broadcast + commit): {mailbox.enqueue:.2f} s")
    print(
        f"[{name}]   first mailbox row {mailbox.first_row:.2f} s after the start, last "
        f"{mailbox.in_mailbox:.2f} s; last outbox row recorded as sent {mailbox.recorded:.2f} s"
    )
    print(
        f"[{name}]   every message in the mailbox and recorded: "
        f"{max(mailbox.in_mailbox, mailbox.recorded):.2f} s = {mailbox.rate:,.0f} messages/s "
        f"({mailbox.rate / limiter:.0%} of the web chat limiter)"
    )
    print(
        f"[{name}]   this process's CPU meanwhile: {mailbox.cpu:.2f} s over {mailbox.done:.2f} s "
        f"({mailbox.cpu / mailbox.done if mailbox.done else 0:.0%} of one core); "
        f"{mailbox.cpu / count * 1000:.2f} ms per message"
    )
    print(f"[{name}]   mailbox rows: {mailbox.mailbox_rows:,}, outbox: {mailbox.statuses}")
    for writes in (together, alone):
        who = "writers" if writes.writers > 1 else "writer"
        print(
            f"[{name}]   baseline: the same {writes.rows:,} mailbox rows, one transaction each, "
            f"{writes.writers} {who}: {writes.seconds:.2f} s = {writes.rate:,.0f} rows/s "
            f"(CPU {writes.cpu / writes.rows * 1000:.2f} ms per row)"
        )
    print(
        f"[{name}]   ratio dispatcher / bare writes: {ratio(mailbox.rate, together.rate)} "
        f"({together.writers} writers), {ratio(mailbox.rate, alone.rate)} (1 writer)"
    )


def report_pages(name: str, pages: Pages, mailbox: Mailbox) -> None:
    count = pages.audience
    got = len(pages.received)
    print(f"[{name}] 2. broadcast to {count:,} web chat residents with the page open")
    print(f"[{name}]   enqueue (start_broadcast + commit): {pages.enqueue:.3f} s")
    print(
        f"[{name}]   received by {got:,} of {count:,} pages, the last {pages.all_received:.2f} s "
        f"after the start = {per_second(got, pages.all_received):,.0f} messages/s"
    )
    if pages.latencies:
        print(
            f"[{name}]   latency from the commit to the page: "
            f"p50 {percentile(pages.latencies, 0.5) * 1000:.0f} ms, "
            f"p95 {percentile(pages.latencies, 0.95) * 1000:.0f} ms, "
            f"max {max(pages.latencies) * 1000:.0f} ms"
        )
    print(
        f"[{name}]   acknowledged: {pages.acknowledged:,} of {count:,}, the last recorded "
        f"{pages.all_acknowledged:.2f} s after the start; last outbox row recorded as sent "
        f"{pages.recorded:.2f} s; outbox: {pages.statuses}"
    )
    print(
        f"[{name}]   the mailbox broadcast (1) wrote its first {count:,} rows in "
        f"{mailbox.first_m:.2f} s: open pages / mailbox only = "
        f"{ratio(pages.all_received, mailbox.first_m)} (time to the last of {count:,})"
    )


def arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--residents", type=int, default=5_000, help="audience of (1)")
    parser.add_argument("--connected", type=int, default=200, help="pages open in (2)")
    parser.add_argument(
        "--database-url",
        default=None,
        help="an empty database to run on (migrated here), e.g. "
        "postgresql+asyncpg://USER:PASS@HOST/DB; default: a fresh SQLite file",
    )
    parsed = parser.parse_args(argv)
    if parsed.residents < 1 or parsed.connected < 1:
        parser.error("--residents and --connected take a positive number")
    return parsed


async def main() -> int:
    quiet_logging()
    parsed = arguments()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load} at the start")
    await run(parsed.database_url, parsed.residents, parsed.connected)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

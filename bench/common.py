"""What the benchmarks share: scratch databases, residents in bulk, the real application,
a broadcast to a council's members, and counting what the emulator received."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import logging
import math
import os
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import CoupDePouce
from bot.settings import load_settings
from flows.broadcasts.service import members, start_broadcast
from flows.engine import Reply
from flows.i18n import Translator
from flows.registry import FLOWS
from storage import db
from storage.models import (
    Broadcast,
    Council,
    Identity,
    Membership,
    OutboxMessage,
    OutboxStatus,
    Person,
    PersonStatus,
    utcnow,
)
from storage.queries import councils

TOKEN = "123456:TEST"
BROADCAST_TEXT = "Réunion publique samedi à 14 h, salle des fêtes. (bench)"
LOCALES = ("fr", "en", "ar")
NOISY_LOGGERS = (
    "bot",
    "flows",
    "storage",
    "tests",
    "telegram",
    "httpx",
    "httpcore",
    "aiohttp",
    "aiosqlite",
    "asyncio",
    "sqlalchemy",
    "alembic",
    "apscheduler",
)


def quiet_logging() -> None:
    """Only errors from the libraries and the application: the figures are the output."""
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


# --- databases -----------------------------------------------------------------------------


def postgres_url() -> str | None:
    return os.environ.get("BENCH_POSTGRES_URL") or None


def database_kinds(argv: Sequence[str] | None = None, description: str = "") -> list[str]:
    """Which databases to run on: SQLite by default, PostgreSQL instead when BENCH_POSTGRES_URL
    is set (each run stays short); `--db sqlite|postgresql|both` chooses explicitly."""
    parser = argparse.ArgumentParser(description=description)
    default = "postgresql" if postgres_url() else "sqlite"
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default=default)
    chosen: str = parser.parse_args(argv).db
    if chosen in ("postgresql", "both") and postgres_url() is None:
        parser.error("set BENCH_POSTGRES_URL=postgresql+asyncpg://USER:PASS@HOST/DB first")
    return ["sqlite", "postgresql"] if chosen == "both" else [chosen]


def _pg_dsn(url: str, database: str | None = None) -> str:
    sa_url = make_url(url)
    if database is not None:
        sa_url = sa_url.set(database=database)
    return sa_url.set(drivername="postgresql").render_as_string(hide_password=False)


@asynccontextmanager
async def scratch_database(kind: str) -> AsyncIterator[str]:
    """A migrated, empty database for one run; removed afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="cdp-bench-") as folder:
            url = f"sqlite+aiosqlite:///{folder}/bench.db"
            await asyncio.to_thread(db.upgrade, url)
            yield url
        return
    base = postgres_url()
    if base is None:
        raise RuntimeError("BENCH_POSTGRES_URL is not set")
    name = f"cdp_bench_{os.getpid()}_{secrets.token_hex(3)}"
    connection = await asyncpg.connect(_pg_dsn(base))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        await asyncio.to_thread(db.upgrade, url)
        yield url
    finally:
        connection = await asyncpg.connect(_pg_dsn(base))
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


def label(kind: str) -> str:
    return "SQLite" if kind == "sqlite" else "PostgreSQL"


# --- data ----------------------------------------------------------------------------------


async def add_council(url: str, slug: str = "quartier-nord") -> int:
    """A council with quiet hours off, so that nothing waits for the morning."""
    engine = db.create_engine(url)
    try:
        async with db.session_scope(db.session_factory(engine)) as session:
            council = await councils.add(
                session, slug, "Conseil citoyen Quartier Nord", "Europe/Paris", "fr"
            )
            council.quiet_start = council.quiet_end = None
            await session.flush()
            council_id: int = council.id
    finally:
        await engine.dispose()
    return council_id


async def add_residents(
    url: str, council_id: int, telegram_ids: Sequence[int], batch: int = 10_000
) -> None:
    """Residents who consented and joined the council, in plain INSERTs (fast for 100k)."""
    await add_people(url, council_id, "telegram", [str(i) for i in telegram_ids], batch=batch)


async def add_people(
    url: str,
    council_id: int,
    channel: str,
    external_ids: Sequence[str],
    wrote_at: Sequence[datetime | None] | None = None,
    batch: int = 10_000,
) -> None:
    """Residents reached on `channel` (their preferred identity), who consented and joined
    the council, each last writing there at `wrote_at[i]` if given; plain INSERTs."""
    engine = db.create_engine(url)
    try:
        for start in range(0, len(external_ids), batch):
            wrote = wrote_at[start : start + batch] if wrote_at is not None else None
            await _add_batch(
                engine, council_id, channel, external_ids[start : start + batch], wrote, start
            )
        if engine.dialect.name == "postgresql":
            # Statistics, as autovacuum would have gathered them in a database in service:
            # without them the planner picks poor plans for freshly bulk-loaded tables.
            async with engine.connect() as connection:
                await connection.execute(text("ANALYZE"))
    finally:
        await engine.dispose()


async def _add_batch(
    engine: AsyncEngine,
    council_id: int,
    channel: str,
    external_ids: Sequence[str],
    wrote_at: Sequence[datetime | None] | None,
    offset: int,
) -> None:
    now = utcnow()
    people = [
        {
            "first_name": f"Habitant {external_id}",
            "locale": LOCALES[(offset + index) % len(LOCALES)],
            "status": PersonStatus.ACTIVE,
            "consent_version": "bench",
            "consented_at": now,
            "created_at": now,
        }
        for index, external_id in enumerate(external_ids)
    ]
    wrote = list(wrote_at) if wrote_at is not None else [None] * len(external_ids)
    async with engine.begin() as connection:
        result = await connection.execute(
            insert(Person).returning(Person.id, sort_by_parameter_order=True), people
        )
        ids = [row[0] for row in result]
        await connection.execute(
            insert(Identity),
            [
                {
                    "person_id": person_id,
                    "channel": channel,
                    "external_id": external_id,
                    "preferred": True,
                    "last_inbound_at": last,
                    "created_at": now,
                }
                for person_id, external_id, last in zip(ids, external_ids, wrote, strict=True)
            ],
        )
        await connection.execute(
            insert(Membership),
            [
                {"person_id": person_id, "council_id": council_id, "joined_at": now}
                for person_id in ids
            ],
        )


def bench_reply(_t: Translator) -> Reply:
    """The same text in every language, so the emulator's deliveries are easy to count."""
    return Reply(BROADCAST_TEXT)


# --- the application -----------------------------------------------------------------------


async def start_app(
    url: str,
    api_url: str,
    *,
    rate: float,
    chat_interval: float = 1.0,
    report_seconds: float = 1.0,
    **limits: Any,
) -> CoupDePouce:
    """The real application, started like tests/conftest.py does."""
    settings = load_settings(
        database_url=url,
        telegram_bot_token=TOKEN,
        telegram_api_url=api_url,
        http_host="127.0.0.1",
        http_port=0,
        dispatch_rate=rate,
        dispatch_chat_interval=chat_interval,
        dispatch_report_seconds=report_seconds,
    )
    app = CoupDePouce(settings, flows=FLOWS)
    if limits:
        app.dispatcher.limits = dataclasses.replace(app.dispatcher.limits, **limits)
    await app.start()
    return app


async def broadcast_to_members(app: CoupDePouce, council_id: int) -> int:
    """Start a broadcast to the council's members as a flow would; return its id."""
    async with db.session_scope(app.sessions) as session:
        council = await session.get_one(Council, council_id)
        broadcast = await start_broadcast(
            session,
            council=council,
            kind="bench",
            audience=members(council),
            render=bench_reply,
        )
        broadcast_id: int = broadcast.id
    app.dispatcher.wake()
    return broadcast_id


async def sent_count(app: CoupDePouce, broadcast_id: int) -> int:
    """Messages of the broadcast recorded as sent."""
    async with db.session_scope(app.sessions) as session:
        value = await session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(
                OutboxMessage.broadcast_id == broadcast_id,
                OutboxMessage.status == OutboxStatus.SENT,
            )
        )
    return int(value or 0)


async def broadcast_row(app: CoupDePouce, broadcast_id: int) -> Broadcast:
    async with db.session_scope(app.sessions) as session:
        return await session.get_one(Broadcast, broadcast_id)


# --- counting ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tally:
    """What an audience received of one text."""

    audience: int
    delivered: int  # messages with the text received by audience chats
    lost: int  # audience chats that never received it
    duplicated: int  # audience chats that received it more than once
    strays: int  # messages with the text received by chats outside the audience


def tally(deliveries: Iterable[tuple[int, str]], audience: Iterable[int], text: str) -> Tally:
    wanted = set(audience)
    per_chat = Counter(chat for chat, shown in deliveries if shown == text)
    return Tally(
        audience=len(wanted),
        delivered=sum(count for chat, count in per_chat.items() if chat in wanted),
        lost=sum(1 for chat in wanted if per_chat[chat] == 0),
        duplicated=sum(1 for chat in wanted if per_chat[chat] > 1),
        strays=sum(count for chat, count in per_chat.items() if chat not in wanted),
    )


def rate_between(times: Sequence[float]) -> float:
    """Deliveries per second, from the first to the last receive time."""
    if len(times) < 2:
        return 0.0
    span = max(times) - min(times)
    return len(times) / span if span > 0 else float("inf")


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """Most receive times in any half-open window of `window` seconds."""
    ordered = sorted(times)
    most = end = 0
    for start, opened in enumerate(ordered):
        while end < len(ordered) and ordered[end] - opened < window:
            end += 1
        most = max(most, end - start)
    return most


def pauses(times: Sequence[float], longer_than: float = 0.1) -> tuple[int, float]:
    """How many gaps between consecutive receive times exceed `longer_than`, and their sum."""
    ordered = sorted(times)
    gaps = [later - earlier for earlier, later in itertools.pairwise(ordered)]
    long = [gap for gap in gaps if gap > longer_than]
    return len(long), sum(long)


async def status_counts(app: CoupDePouce, broadcast_id: int) -> dict[str, int]:
    """The broadcast's outbox messages by status."""
    async with db.session_scope(app.sessions) as session:
        rows = await session.execute(
            select(OutboxMessage.status, func.count())
            .where(OutboxMessage.broadcast_id == broadcast_id)
            .group_by(OutboxMessage.status)
        )
        return {str(OutboxStatus(status).value): int(count) for status, count in rows}


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


class Stopwatch:
    """Wall and CPU time of this process since it was made."""

    def __init__(self) -> None:
        self.wall0 = time.monotonic()
        self.cpu0 = time.process_time()

    @property
    def wall(self) -> float:
        return time.monotonic() - self.wall0

    @property
    def cpu(self) -> float:
        return time.process_time() - self.cpu0

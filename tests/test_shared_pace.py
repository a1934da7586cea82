"""The channel's pace shared through PostgreSQL: moments never closer than the rate allows,
whichever process takes them, a few statements for many messages, and sending that goes on
when the database is out of reach."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.pace import SharedPace
from bot.ratelimit import WINDOW, RateLimiter
from storage import db
from tests.conftest import requires_postgres

pytestmark = requires_postgres
RATE = 30.0
CLOCKS_APART = 0.01  # PostgreSQL's clock read against this process's, on one machine


@pytest.fixture
async def engines(database_url: str) -> AsyncIterator[list[AsyncEngine]]:
    """Two processes' engines on one database."""
    engines = [db.create_engine(database_url) for _ in range(2)]
    yield engines
    for engine in engines:
        await engine.dispose()


async def moments(pace: SharedPace, count: int) -> list[float]:
    """`count` messages wanting a moment at once: when each may go, on this process's clock."""

    async def one() -> float:
        wait = await pace.take()
        return time.monotonic() + wait

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def test_two_processes_taking_at_once_never_go_closer_than_the_rate(
    engines: list[AsyncEngine],
) -> None:
    paces = [SharedPace(engine, "telegram", RATE) for engine in engines]
    try:
        started = time.monotonic()
        taken = sorted(
            moment
            for batch in await asyncio.gather(*(moments(pace, 45) for pace in paces))
            for moment in batch
        )
        # 90 moments, one interval apart: three seconds' worth, whoever took them.
        assert taken[-1] - started == pytest.approx(89 * WINDOW / RATE, abs=0.1)
        gaps = [later - earlier for earlier, later in itertools.pairwise(taken)]
        assert min(gaps) >= WINDOW / RATE - CLOCKS_APART
        # Any thirty of them span more than a second: the messenger never counts 31.
        assert all(
            later - earlier >= 1.0 for earlier, later in zip(taken, taken[30:], strict=False)
        )
        # Many messages at once ask the database a few times, not once each.
        for pace in paces:
            assert pace.statements <= 5
    finally:
        for pace in paces:
            await pace.close()


async def test_one_message_alone_takes_its_moment_at_once_and_the_next_waits_its_turn(
    engines: list[AsyncEngine],
) -> None:
    pace = SharedPace(engines[0], "whatsapp", RATE)
    try:
        assert await pace.take() == 0.0
        second = await pace.take()
        assert 0 < second <= WINDOW / RATE
        assert pace.statements == 2
        await asyncio.sleep(0.2)
        assert await pace.take() == 0.0  # a quiet channel lets the next go now
    finally:
        await pace.close()


async def test_a_retry_after_holds_every_process(engines: list[AsyncEngine]) -> None:
    held, other = (SharedPace(engine, "telegram", RATE) for engine in engines)
    try:
        await held.hold(1.5)
        assert 1.4 <= await other.take() <= 1.5 + WINDOW / RATE
    finally:
        await held.close()
        await other.close()


async def test_a_lost_connection_spaces_this_process_alone_and_the_next_take_reconnects(
    engines: list[AsyncEngine], caplog: pytest.LogCaptureFixture
) -> None:
    pace = SharedPace(engines[0], "telegram", RATE)
    try:
        await pace.take()
        async with engines[1].connect() as connection:
            ended = await connection.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        assert ended >= 1
        assert await pace.take() == WINDOW / RATE  # sending goes on, at this process's pace
        assert "shared pace of telegram out of reach" in caplog.text
        await asyncio.sleep(0.1)
        assert await pace.take() == 0.0  # shared again, on a new connection
        async with engines[1].connect() as connection:
            assert await connection.scalar(
                text("SELECT next_at > clock_timestamp() FROM channel_paces")
            )
    finally:
        await pace.close()


async def test_the_limiter_waits_for_the_shared_moment(engines: list[AsyncEngine]) -> None:
    # Two processes' limiters, each letting 30 a second go on its own: together, still 30.
    limiters = [RateLimiter(RATE) for _ in engines]
    for limiter, engine in zip(limiters, engines, strict=True):
        limiter.shared = SharedPace(engine, "telegram", RATE)
    sent: list[float] = []

    async def send(limiter: RateLimiter) -> None:
        await limiter.acquire()
        sent.append(time.monotonic())

    try:
        await asyncio.gather(*(send(limiter) for limiter in limiters for _ in range(40)))
        sent.sort()
        assert all(later - earlier >= 1.0 for earlier, later in zip(sent, sent[30:], strict=False))
        assert sent[-1] - sent[0] >= 79 * WINDOW / RATE - CLOCKS_APART
    finally:
        for limiter in limiters:
            assert limiter.shared is not None
            await limiter.shared.close()

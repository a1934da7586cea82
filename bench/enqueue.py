"""Figure 3: what does queueing a broadcast to 100,000 people cost?

start_broadcast (the real API: one INSERT ... SELECT per language) against, as the baseline
in the same run, a naive enqueue: load the audience's person ids and identities into Python
and insert the outbox rows with executemany, 1,000 at a time. Each is timed with the commit
included.

Each measurement runs in a fresh child process, so one run's freed memory cannot hide the
next one's: time and RSS growth (peak resident set, VmHWM reset through
/proc/self/clear_refs, minus the resident set before) in one process, the tracemalloc peak in
another (tracemalloc slows Python down, so it is not timed). Audiences of 10,000 and 100,000
show how memory scales: flat for a streaming enqueue, proportional for the naive one.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.common import (
    add_council,
    add_residents,
    bench_reply,
    database_kinds,
    label,
    quiet_logging,
    scratch_database,
)
from flows.broadcasts.quiet import next_allowed
from flows.broadcasts.service import members, start_broadcast, to_payload
from flows.i18n import DEFAULT_LOCALE, SHIPPED_LOCALES, Translator
from storage import db
from storage.models import (
    Broadcast,
    BroadcastStatus,
    Council,
    Identity,
    Membership,
    OutboxMessage,
    OutboxStatus,
    Person,
    PersonStatus,
    Priority,
    utcnow,
)

SIZES = (10_000, 100_000)
BATCH = 1_000
FIRST_ID = 10_000_001
MiB = 1024 * 1024


@dataclass(frozen=True)
class Measurement:
    queued: int
    seconds: float | None  # None when traced (not timed)
    rss_growth: int | None  # bytes; None when traced or unmeasurable
    traced_peak: int | None  # bytes; None when not traced


# --- the two ways --------------------------------------------------------------------------


async def real(sessions: async_sessionmaker[AsyncSession], council_id: int) -> int:
    async with db.session_scope(sessions) as session:
        council = await session.get_one(Council, council_id)
        broadcast = await start_broadcast(
            session, council=council, kind="bench", audience=members(council), render=bench_reply
        )
        queued = broadcast.audience_size
    return queued


async def naive(sessions: async_sessionmaker[AsyncSession], council_id: int) -> int:
    async with db.session_scope(sessions) as session:
        council = await session.get_one(Council, council_id)
        now = utcnow()
        broadcast = Broadcast(
            council_id=council.id,
            kind="bench",
            status=BroadcastStatus.PENDING,
            urgent=False,
            not_before=next_allowed(council, now),
            audience_size=0,
            sent=0,
            failed=0,
            unreachable=0,
            cancelled=0,
        )
        session.add(broadcast)
        await session.flush()
        payloads = {
            locale: to_payload(bench_reply(Translator(locale))) for locale in SHIPPED_LOCALES
        }
        audience = (
            await session.execute(
                select(Person.id, Person.locale, Identity.channel, Identity.external_id)
                .join(Membership, Membership.person_id == Person.id)
                .join(Identity, Identity.person_id == Person.id)
                .where(Membership.council_id == council.id, Person.status == PersonStatus.ACTIVE)
                .order_by(Person.id, Identity.id)
            )
        ).all()
        rows = []
        seen: set[int] = set()
        for person_id, locale, channel, external_id in audience:
            if person_id in seen:  # one address per person: the oldest identity
                continue
            seen.add(person_id)
            rows.append(
                {
                    "broadcast_id": broadcast.id,
                    "council_id": council.id,
                    "person_id": person_id,
                    "channel": channel,
                    "chat_id": external_id,
                    "payload": payloads.get(locale, payloads[DEFAULT_LOCALE]),
                    "priority": Priority.BROADCAST,
                    "status": OutboxStatus.PENDING,
                    "attempts": 0,
                    "next_attempt_at": broadcast.not_before,
                    "idempotency_key": f"b{broadcast.id}:p{person_id}",
                    "created_at": now,
                }
            )
        for start in range(0, len(rows), BATCH):
            await session.execute(insert(OutboxMessage), rows[start : start + BATCH])
        broadcast.audience_size = len(rows)
        queued = len(rows)
    return queued


# --- one measurement, in a child process ---------------------------------------------------


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> bool:
    """Make VmHWM start again from the current resident set (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def measure(url: str, council_id: int, way: str, traced: bool) -> Measurement:
    quiet_logging()
    return asyncio.run(_measure(url, council_id, way, traced))


async def _measure(url: str, council_id: int, way: str, traced: bool) -> Measurement:
    engine = db.create_engine(url)
    sessions = db.session_factory(engine)
    enqueue = real if way == "real" else naive
    try:
        async with db.session_scope(sessions) as session:  # connect, warm the caches
            await session.get_one(Council, council_id)
            await session.scalar(select(func.count()).select_from(OutboxMessage))
        gc.collect()
        if traced:
            tracemalloc.start()
            queued = await enqueue(sessions, council_id)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            return Measurement(queued, None, None, peak)
        reset = _reset_peak_rss()
        before = _status_kib("VmRSS")
        started = time.perf_counter()
        queued = await enqueue(sessions, council_id)
        seconds = time.perf_counter() - started
        growth = (_status_kib("VmHWM") - before) * 1024 if reset else None
        return Measurement(queued, seconds, growth, None)
    finally:
        await engine.dispose()


async def in_child(url: str, council_id: int, way: str, traced: bool) -> Measurement:
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return await loop.run_in_executor(pool, measure, url, council_id, way, traced)


async def empty_outbox(url: str) -> None:
    engine = db.create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(delete(OutboxMessage))
            await connection.execute(delete(Broadcast))
    finally:
        await engine.dispose()


# --- the figure ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    timed: Measurement
    traced: Measurement


async def both_measurements(url: str, council_id: int, way: str) -> Result:
    timed = await in_child(url, council_id, way, traced=False)
    await empty_outbox(url)
    traced = await in_child(url, council_id, way, traced=True)
    await empty_outbox(url)
    return Result(timed, traced)


def mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / MiB:.1f} MiB"


def ratio(mine: float | None, theirs: float | None) -> str:
    if mine is None or theirs is None or theirs <= 0:
        return "n/a"
    return f"{mine / theirs:.3f}"


async def run(kind: str) -> None:
    name = label(kind)
    async with scratch_database(kind) as url:
        started = time.monotonic()
        councils: dict[int, int] = {}
        first = FIRST_ID
        for size in SIZES:
            councils[size] = await add_council(url, slug=f"conseil-{size}")
            await add_residents(url, councils[size], list(range(first, first + size)))
            first += size
        print(
            f"[{name}] setup: {sum(SIZES):,} residents in {len(SIZES)} councils "
            f"({time.monotonic() - started:.1f} s)"
        )
        results: dict[tuple[int, str], Result] = {}
        for size in SIZES:
            for way in ("real", "naive"):
                results[size, way] = await both_measurements(url, councils[size], way)
    for size in SIZES:
        good, bad = results[size, "real"], results[size, "naive"]
        for what, result in (
            ("start_broadcast (INSERT ... SELECT)", good),
            (f"naive (load, executemany by {BATCH:,})", bad),
        ):
            seconds = result.timed.seconds or 0.0
            print(
                f"[{name}] {size:>7,} people, {what}: {seconds:.2f} s "
                f"({result.timed.queued / seconds if seconds else 0:,.0f} rows/s, commit "
                f"included), tracemalloc peak {mib(result.traced.traced_peak)}, "
                f"RSS growth {mib(result.timed.rss_growth)}, queued {result.timed.queued:,}"
            )
        print(
            f"[{name}] {size:>7,} people, ratio start_broadcast/naive: "
            f"time {ratio(good.timed.seconds, bad.timed.seconds)}, "
            f"tracemalloc peak {ratio(good.traced.traced_peak, bad.traced.traced_peak)}, "
            f"RSS growth {ratio(good.timed.rss_growth, bad.timed.rss_growth)}"
        )
    small, large = SIZES
    for way, what in (("real", "start_broadcast"), ("naive", "naive")):
        grows = ratio(
            results[large, way].traced.traced_peak, results[small, way].traced.traced_peak
        )
        print(
            f"[{name}] {what}: tracemalloc peak at {large:,} / at {small:,} people = {grows} "
            f"(audience x{large // small})"
        )
    wrong = [
        (size, way)
        for (size, way), result in results.items()
        if result.timed.queued != size or result.traced.queued != size
    ]
    print(f"[{name}] every run queued one message per person: {wrong or 'yes'}")


async def main() -> int:
    quiet_logging()
    for kind in database_kinds(description=__doc__ or ""):
        await run(kind)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

"""Figure 4: the talent directory at 100,000 residents: searches and calls for talents.

One council with a 30-skill catalogue (the 15 shipped skills, seeded by flows.councils.create,
and 15 of its own added with storage.queries.talents.add_skill), and a second council with
10,000 residents of its own as noise. Every resident of the large council is in the
directory with 1 to 4 random skills, random free times and one of 5 neighbourhoods (fixed
seed, plain INSERTs, then ANALYZE).

1. Directory search: storage.queries.talents.search (the count and one page of 10) for 200
   random criteria mixes, each call in its own transaction as the bot makes it; median, p95
   and max. Baseline in the same run, interleaved with the searches: a primary-key lookup of a
   random talent profile, in its own transaction too.
2. Call matching: flows.calls.service.send (count the audience, record the call, queue the
   invitations) for a call with 2 skills and one time slot, and for a call with no skill
   (every member), timed from the call to the commit. Baseline: SELECT count(*) of the same
   audience.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, event, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bench.common import (
    add_residents,
    database_kinds,
    label,
    percentile,
    quiet_logging,
    scratch_database,
)
from flows import councils as council_flows
from flows.broadcasts.service import ReportTo, audience_size
from flows.calls.service import WHEN, NewCall, Sent, audience, send
from storage import db
from storage.models import (
    Broadcast,
    Call,
    Council,
    Membership,
    OutboxMessage,
    ProfileSkill,
    TalentProfile,
    utcnow,
)
from storage.queries import talents
from storage.queries.talents import COUNT_CAP, Criteria

SEED = 20240611
RESIDENTS = 100_000
NOISE_RESIDENTS = 10_000
FIRST_TELEGRAM_ID = 20_000_001
NEIGHBOURHOODS = ("Centre", "La Gare", "Les Tilleuls", "Le Moulin", "Les Hauts")
OWN_SKILLS = tuple(
    (f"own_{n:02d}", category)
    for n, category in enumerate(
        ("home", "care", "words", "digital", "arts", "outdoors", "transport", "other") * 2, 1
    )
)[:15]
FREE = {"weekdays": 0.5, "evenings": 0.4, "weekends": 0.6}  # share of residents free then
SEARCHES = 200
PAGE_SIZE = 10
PAGES = (0, 5)
WARMUP = 20
SEND_RUNS = 5
BATCH = 10_000
TARGET_SEARCH_P95_MS = 20.0
TARGET_SEND_S = 1.0
REPORT_TO = ReportTo(channel="telegram", chat_id="999999999", locale="fr")


@dataclass(frozen=True)
class Profile:
    """What was inserted for one resident: kept to check the counts the bot finds."""

    id: int
    person_id: int
    free: frozenset[str]
    neighbourhood: str
    skill_ids: frozenset[int]


@dataclass
class Directory:
    council_id: int
    noise_council_id: int
    skill_ids: list[int]
    profiles: list[Profile]
    profile_skills: int
    seconds: float


# --- setup ---------------------------------------------------------------------------------


async def new_council(
    sessions: async_sessionmaker[AsyncSession], slug: str, own_skills: bool
) -> tuple[int, list[int]]:
    """A council made as the CLI does (shipped catalogue), quiet hours off; its skill ids."""
    async with db.session_scope(sessions) as session:
        council = await council_flows.create(
            session, slug, f"Conseil citoyen {slug}", neighbourhoods=list(NEIGHBOURHOODS)
        )
        council.quiet_start = council.quiet_end = None
        if own_skills:
            for key, category in OWN_SKILLS:
                await talents.add_skill(
                    session, council, key, category, {"fr": f"Savoir {key}", "en": f"Skill {key}"}
                )
        skill_ids = [skill.id for skill in await talents.skills(session, council.id)]
        council_id: int = council.id
    return council_id, skill_ids


async def member_ids(sessions: async_sessionmaker[AsyncSession], council_id: int) -> list[int]:
    async with db.session_scope(sessions) as session:
        rows = await session.scalars(
            select(Membership.person_id)
            .where(Membership.council_id == council_id)
            .order_by(Membership.person_id)
        )
        return list(rows)


async def add_profiles(
    engine: AsyncEngine,
    council_id: int,
    person_ids: Sequence[int],
    skill_ids: Sequence[int],
    rng: random.Random,
) -> list[Profile]:
    """talent_profiles and profile_skills with executemany, BATCH people per transaction."""
    profiles: list[Profile] = []
    now = utcnow()
    for start in range(0, len(person_ids), BATCH):
        chunk = person_ids[start : start + BATCH]
        drawn = [
            (
                frozenset(key for key, share in FREE.items() if rng.random() < share),
                rng.choice(NEIGHBOURHOODS),
                frozenset(rng.sample(skill_ids, rng.randint(1, 4))),
            )
            for _ in chunk
        ]
        async with engine.begin() as connection:
            result = await connection.execute(
                insert(TalentProfile).returning(TalentProfile.id, sort_by_parameter_order=True),
                [
                    {
                        "council_id": council_id,
                        "person_id": person_id,
                        "weekdays": "weekdays" in free,
                        "evenings": "evenings" in free,
                        "weekends": "weekends" in free,
                        "neighbourhood": place,
                        "contact_ok": True,
                        "created_at": now,
                        "confirmed_at": now,
                    }
                    for person_id, (free, place, _) in zip(chunk, drawn, strict=True)
                ],
            )
            ids = [row[0] for row in result]
            await connection.execute(
                insert(ProfileSkill),
                [
                    {"profile_id": profile_id, "skill_id": skill_id}
                    for profile_id, (_, _, skills) in zip(ids, drawn, strict=True)
                    for skill_id in sorted(skills)
                ],
            )
        profiles.extend(
            Profile(profile_id, person_id, free, place, skills)
            for profile_id, person_id, (free, place, skills) in zip(ids, chunk, drawn, strict=True)
        )
    return profiles


async def analyze(engine: AsyncEngine) -> None:
    """Planner statistics, as a database in service would have them (autovacuum on PostgreSQL;
    on SQLite, sqlite_stat1 lets the planner choose between the indexes)."""
    async with engine.begin() as connection:
        await connection.execute(text("ANALYZE"))


async def build_directory(url: str) -> Directory:
    started = time.monotonic()
    rng = random.Random(SEED)
    engine = db.create_engine(url)
    sessions = db.session_factory(engine)
    try:
        council_id, skill_ids = await new_council(sessions, "quartier-nord", own_skills=True)
        noise_id, noise_skills = await new_council(sessions, "quartier-sud", own_skills=False)
        first = FIRST_TELEGRAM_ID
        await add_residents(url, council_id, list(range(first, first + RESIDENTS)))
        first += RESIDENTS
        await add_residents(url, noise_id, list(range(first, first + NOISE_RESIDENTS)))
        profiles = await add_profiles(
            engine, council_id, await member_ids(sessions, council_id), skill_ids, rng
        )
        noise = await add_profiles(
            engine, noise_id, await member_ids(sessions, noise_id), noise_skills, rng
        )
        await analyze(engine)
    finally:
        await engine.dispose()
    links = sum(len(p.skill_ids) for p in profiles) + sum(len(p.skill_ids) for p in noise)
    return Directory(council_id, noise_id, skill_ids, profiles, links, time.monotonic() - started)


# --- 1. directory search -------------------------------------------------------------------

MIXES = (
    "skill only",
    "skill + one time",
    "skill + time + neighbourhood",
    "any skill + neighbourhood",
)


def criteria_for(
    mix: str, council_id: int, skill_ids: Sequence[int], rng: random.Random
) -> Criteria:
    skill = None if mix == "any skill + neighbourhood" else rng.choice(skill_ids)
    slot = rng.choice(WHEN) if "time" in mix else None
    place = rng.choice(NEIGHBOURHOODS) if "neighbourhood" in mix else None
    return Criteria(
        council_id=council_id,
        skill_id=skill,
        weekdays=slot == "weekdays",
        evenings=slot == "evenings",
        weekends=slot == "weekends",
        neighbourhood=place,
    )


def expected_total(criteria: Criteria, profiles: Sequence[Profile]) -> int:
    wanted = {key for key in WHEN if getattr(criteria, key)}
    return sum(
        1
        for p in profiles
        if (criteria.skill_id is None or criteria.skill_id in p.skill_ids)
        and wanted <= p.free
        and (criteria.neighbourhood is None or criteria.neighbourhood == p.neighbourhood)
    )


@dataclass(frozen=True)
class Search:
    mix: str
    page: int
    criteria: Criteria
    ms: float
    total: int
    shown: int
    matching: int  # profiles that match, from what was inserted (search may cap its count)


class StatementClock:
    """Time of each statement the engine runs (cursor execute, rows fetched by the driver),
    to show where a search spends its time; reset before each call."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.timings: list[tuple[str, float]] = []
        event.listen(engine.sync_engine, "before_cursor_execute", self._before)
        event.listen(engine.sync_engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, _cursor: Any, _statement: str, *_args: Any) -> None:
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def _after(self, conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        started = conn.info["bench_started"].pop()
        self.timings.append((statement, (time.perf_counter() - started) * 1000))

    def take(self) -> list[tuple[str, float]]:
        """The statements since the last call, without SQLite's BEGIN IMMEDIATE."""
        taken = [t for t in self.timings if not t[0].lstrip().upper().startswith("BEGIN")]
        self.timings = []
        return taken


def statement_kind(statement: str) -> str:
    flat = " ".join(statement.split())
    if flat.startswith("SELECT count(*)"):
        return "count"
    if "ORDER BY talent_profiles.id" in flat:
        return "page"
    if flat.startswith("SELECT profile_skills.profile_id"):
        return "skills of the page"
    return "other"


async def timed_ms(
    sessions: async_sessionmaker[AsyncSession], work: Callable[[AsyncSession], Awaitable[object]]
) -> tuple[float, object]:
    """Milliseconds of one transaction, from its start to its commit."""
    started = time.perf_counter()
    async with db.session_scope(sessions) as session:
        result = await work(session)
    return (time.perf_counter() - started) * 1000, result


def stats(values: Sequence[float]) -> str:
    return (
        f"median {statistics.median(values):.2f} ms, p95 {percentile(values, 0.95):.2f} ms, "
        f"max {max(values):.2f} ms"
    )


async def search_figure(name: str, url: str, directory: Directory) -> None:
    rng = random.Random(SEED + 1)
    plan = [(mix, page) for mix in MIXES for page in PAGES] * (SEARCHES // len(MIXES) // len(PAGES))
    rng.shuffle(plan)
    profile_ids = [p.id for p in directory.profiles]
    engine = db.create_engine(url)
    sessions = db.session_factory(engine)
    clock = StatementClock(engine)
    searches: list[Search] = []
    baseline: list[float] = []
    statements: dict[str, list[float]] = {}
    try:
        for index in range(WARMUP + len(plan)):
            mix, page = plan[index % len(plan)]
            criteria = criteria_for(mix, directory.council_id, directory.skill_ids, rng)
            wanted = rng.choice(profile_ids)

            async def one_search(
                session: AsyncSession, criteria: Criteria = criteria, page: int = page
            ) -> object:
                return await talents.search(session, criteria, page * PAGE_SIZE, PAGE_SIZE)

            async def lookup(session: AsyncSession, wanted: int = wanted) -> object:
                return await session.scalar(select(TalentProfile).where(TalentProfile.id == wanted))

            clock.take()
            ms, found = await timed_ms(sessions, one_search)
            inside = clock.take()
            base_ms, row = await timed_ms(sessions, lookup)
            if index < WARMUP:
                continue
            assert isinstance(found, tuple) and row is not None
            total, shown = found
            matching = expected_total(criteria, directory.profiles)
            searches.append(Search(mix, page, criteria, ms, total, len(shown), matching))
            baseline.append(base_ms)
            for statement, statement_ms in inside:
                statements.setdefault(statement_kind(statement), []).append(statement_ms)
    finally:
        await engine.dispose()

    # search() counts up to COUNT_CAP + 1 ("more than 200"): compare within that cap.
    wrong = [s for s in searches if s.total != min(s.matching, COUNT_CAP + 1)]
    all_ms = [s.ms for s in searches]
    p95 = percentile(all_ms, 0.95)
    print(
        f"[{name}] search, {len(searches)} calls (count + page of {PAGE_SIZE}, own transaction): "
        f"{stats(all_ms)}; target p95 < {TARGET_SEARCH_P95_MS:.0f} ms: "
        f"{'yes' if p95 < TARGET_SEARCH_P95_MS else 'NO'}"
    )
    for mix in MIXES:
        chosen = [s for s in searches if s.mix == mix]
        counts = [s.matching for s in chosen]
        print(
            f"[{name}]   {mix:<28} ({len(chosen)}): {stats([s.ms for s in chosen])}; "
            f"matching profiles {min(counts):,}-{max(counts):,}"
        )
    for page in PAGES:
        paged = [s.ms for s in searches if s.page == page]
        print(f"[{name}]   page {page} ({len(paged)}): {stats(paged)}")
    for kind, timings in statements.items():
        print(f"[{name}]   statement: {kind} ({len(timings)}): {stats(timings)}")
    print(f"[{name}] baseline, primary-key lookup ({len(baseline)}): {stats(baseline)}")
    print(
        f"[{name}] ratio search p95 / baseline p95: {p95 / percentile(baseline, 0.95):.1f}; "
        f"totals as inserted: {'yes' if not wrong else f'NO ({len(wrong)} differ)'}"
    )


# --- 2. call matching ----------------------------------------------------------------------


@dataclass(frozen=True)
class Sending:
    seconds: float
    matched: int
    queued: int


async def one_send(
    sessions: async_sessionmaker[AsyncSession], council_id: int, new: NewCall
) -> Sending:
    async with db.session_scope(sessions) as session:
        council = await session.get_one(Council, council_id)
        started = time.perf_counter()
        outcome, call = await send(session, council, new, None, REPORT_TO)
    seconds = time.perf_counter() - started  # the commit included
    assert outcome is Sent.SENT and call is not None and call.broadcast_id is not None
    async with db.session_scope(sessions) as session:
        broadcast = await session.get_one(Broadcast, call.broadcast_id)
        queued = await session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.broadcast_id == broadcast.id)
        )
    return Sending(seconds, broadcast.audience_size, int(queued or 0))


async def one_count(
    sessions: async_sessionmaker[AsyncSession], council_id: int, new: NewCall
) -> tuple[float, int]:
    async with db.session_scope(sessions) as session:
        council = await session.get_one(Council, council_id)
        started = time.perf_counter()
        count = await audience_size(session, audience(council, new.skill_ids, new.when))
    return time.perf_counter() - started, count


async def empty_outbox(engine: AsyncEngine) -> None:
    """Back to an empty outbox, its dead rows reclaimed (as autovacuum would), so one run
    does not pay for the previous one's leftovers."""
    async with engine.begin() as connection:
        await connection.execute(delete(OutboxMessage))
        await connection.execute(delete(Call))
        await connection.execute(delete(Broadcast))
    if engine.dialect.name == "postgresql":
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("VACUUM ANALYZE outbox"))


def seconds_list(values: Sequence[float]) -> str:
    return ", ".join(f"{value:.3f}" for value in values)


async def send_figure(name: str, url: str, directory: Directory) -> None:
    rng = random.Random(SEED + 2)
    two = sorted(rng.sample(directory.skill_ids, 2))
    slot = rng.choice(WHEN)
    deadline = utcnow() + timedelta(days=7)
    calls = (
        (
            f"2 skills + {slot}",
            NewCall("Fête de quartier", "Il nous faut des bras.", two, [slot], 5, deadline),
            sum(1 for p in directory.profiles if p.skill_ids & set(two) and slot in p.free),
        ),
        (
            "no skill (every member)",
            NewCall("Nettoyage du parc", "Tout le monde est bienvenu.", [], [], 20, deadline),
            RESIDENTS,
        ),
    )
    engine = db.create_engine(url)
    sessions = db.session_factory(engine)
    try:
        async with db.session_scope(sessions) as session:  # connect, warm the caches
            await session.get_one(Council, directory.council_id)
        for what, new, expected in calls:
            sendings: list[Sending] = []
            counts: list[float] = []
            for _ in range(SEND_RUNS):
                seconds, counted = await one_count(sessions, directory.council_id, new)
                counts.append(seconds)
                sendings.append(await one_send(sessions, directory.council_id, new))
                await empty_outbox(engine)  # each run starts from an empty outbox
            times = [s.seconds for s in sendings]
            best = statistics.median(times)
            print(
                f"[{name}] send, {what}: median {best:.3f} s over {SEND_RUNS} runs "
                f"({seconds_list(times)}; call to commit), matched {sendings[0].matched:,} "
                f"(expected {expected:,}), queued {sendings[0].queued:,}; "
                f"target < {TARGET_SEND_S:.0f} s: {'yes' if best < TARGET_SEND_S else 'NO'}"
            )
            if any(s.matched != expected or s.queued != expected for s in sendings):
                print(f"[{name}]   MISMATCH: {sendings}")
            print(
                f"[{name}] baseline, SELECT count(*) of the same audience: median "
                f"{statistics.median(counts) * 1000:.1f} ms ({counted:,} people); "
                f"send / count = {best / statistics.median(counts):.1f}"
            )
    finally:
        await engine.dispose()


# --- the figures ---------------------------------------------------------------------------


async def run(kind: str) -> None:
    name = label(kind)
    async with scratch_database(kind) as url:
        directory = await build_directory(url)
        print(
            f"[{name}] setup: {RESIDENTS:,} residents in the directory "
            f"({len(directory.skill_ids)} skills) + {NOISE_RESIDENTS:,} in another council, "
            f"{directory.profile_skills:,} profile skills, ANALYZE ({directory.seconds:.1f} s)"
        )
        started = time.monotonic()
        await search_figure(name, url, directory)
        await send_figure(name, url, directory)
        print(f"[{name}] measured in {time.monotonic() - started:.1f} s")


async def main() -> int:
    quiet_logging()
    for kind in database_kinds(description=__doc__ or ""):
        await run(kind)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

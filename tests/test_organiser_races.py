"""An organiser's change and the scheduler at the same moment, each in its own transaction:
whichever comes second sees what the first did. A consultation closed now as its deadline
passes is closed and announced once; a meeting cancelled or moved as its reminder falls due
gets no reminder after the notice, and a move plans the new reminders once.

Both run for real, side by side, with their own sessions. The first holds its transaction
open until the second has begun (on PostgreSQL; SQLite lets nobody begin a write meanwhile,
so the second starts when the first commits) and a moment more, so the second reads while
the first's work is not committed yet and must wait for its lock to see it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from flows.broadcasts.service import ReportTo
from flows.consultations import jobs as consultation_jobs
from flows.consultations import service as consultations
from flows.meetings import service as meetings
from flows.meetings.jobs import MEETING_REMINDERS
from storage import db
from storage.models import (
    Broadcast,
    BroadcastStatus,
    Consultation,
    ConsultationStatus,
    Council,
    Meeting,
    MeetingReminder,
    MeetingStatus,
    OutboxMessage,
    OutboxStatus,
    Participant,
    QuestionKind,
    ReminderStatus,
    Rsvp,
    utcnow,
)
from tests.factories import add_residents

RESIDENTS = (71_001, 71_002, 71_003)
ORGANISER = ReportTo("telegram", "72001", "en")
# Who goes first; the second starts while the first's transaction is still open.
ORDERS = pytest.mark.parametrize("scheduler_first", [True, False], ids=["scheduler", "organiser"])

Work = Callable[[AsyncSession], Awaitable[Any]]


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = db.create_engine(database_url)
    yield db.session_factory(engine)
    await engine.dispose()


async def in_transaction(sessions: async_sessionmaker[AsyncSession], work: Work) -> Any:
    async with db.session_scope(sessions) as session:
        return await work(session)


async def side_by_side(
    sessions: async_sessionmaker[AsyncSession], first: Work, second: Work
) -> list[Any]:
    """Run `first`, then `second` while `first`'s transaction is still open; both results
    (or what they raised)."""
    first_done, second_began = asyncio.Event(), asyncio.Event()
    sqlite = sessions.kw["bind"].dialect.name == "sqlite"

    async def run_first() -> Any:
        async with db.session_scope(sessions) as session:
            result = await first(session)
            first_done.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(second_began.wait(), 0.2 if sqlite else 10)
            await asyncio.sleep(0.3)  # the second reads, then waits for a lock it needs
        return result

    async def run_second() -> Any:
        await first_done.wait()
        async with db.session_scope(sessions) as session:
            await session.execute(select(1))  # the transaction begins
            second_began.set()
            return await second(session)

    return list(await asyncio.gather(run_first(), run_second(), return_exceptions=True))


def no_failure(outcomes: list[Any]) -> None:
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert failures == [], failures


async def count(session: AsyncSession, query: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)


# --- a consultation closed now as its deadline passes --------------------------------------


async def consultation_with_answers(sessions: async_sessionmaker[AsyncSession]) -> int:
    """An open anonymous consultation, answered by every resident, closing in an hour."""

    async def seed(session: AsyncSession) -> int:
        council = await session.scalar(select(Council))
        assert council is not None
        people = await add_residents(session, council, list(RESIDENTS), ["en"])
        now = utcnow()
        question = consultations.NewQuestion(QuestionKind.SINGLE, "A bench?", ["Yes", "No"])
        consultation = await consultations.create(
            session,
            council,
            consultations.NewConsultation(
                "The square", [question], opens_at=now, closes_at=now + timedelta(hours=1)
            ),
            None,
            ORGANISER,
            now=now,
        )
        (asked,) = await consultations.questions_of(session, consultation.id)
        for person in people:
            ballot = await consultations.ballot_for(session, consultation, person)
            await consultations.record(session, person, ballot, asked, [0])
        return consultation.id

    return int(await in_transaction(sessions, seed))


def close_now_as_the_organiser(consultation_id: int, now: datetime) -> Work:
    """What the organiser's "Yes, close it" does: the consultation as the card showed it,
    then the closing."""

    async def close(session: AsyncSession) -> consultation_jobs.Closing:
        await session.get_one(Consultation, consultation_id)  # still open, on PostgreSQL
        return await consultation_jobs.close_now(session, consultation_id, now)

    return close


@ORDERS
async def test_closing_now_as_the_deadline_passes_closes_and_announces_once(
    council: Council, sessions: async_sessionmaker[AsyncSession], scheduler_first: bool
) -> None:
    consultation_id = await consultation_with_answers(sessions)
    deadline = utcnow() + timedelta(hours=1, minutes=1)

    async def tick(session: AsyncSession) -> int:
        return await consultation_jobs.CLOSE_CONSULTATIONS.run(session, deadline)

    organiser = close_now_as_the_organiser(consultation_id, deadline)
    first, second = (tick, organiser) if scheduler_first else (organiser, tick)
    outcomes = await side_by_side(sessions, first, second)
    no_failure(outcomes)
    ticked, closed = outcomes if scheduler_first else outcomes[::-1]
    # One of them closed it; the other found it closed and did nothing.
    assert (ticked, closed) in (
        (1, consultation_jobs.Closing.NOT_OPEN),
        (0, consultation_jobs.Closing.CLOSED),
    )

    async def look(session: AsyncSession) -> tuple[Consultation, int, int, list[int], int]:
        consultation = await session.get_one(Consultation, consultation_id)
        participants = await count(
            session, select(Participant).where(Participant.consultation_id == consultation_id)
        )
        results_broadcasts = await count(
            session,
            select(Broadcast).where(
                Broadcast.kind == "consultation-results",
                Broadcast.subject == f"consultation:{consultation_id}",
            ),
        )
        told = await session.scalars(
            select(func.count())
            .select_from(OutboxMessage)
            .join(Broadcast, Broadcast.id == OutboxMessage.broadcast_id)
            .where(Broadcast.kind == "consultation-results")
            .group_by(OutboxMessage.person_id)
        )
        to_organiser = await count(
            session,
            select(OutboxMessage).where(
                OutboxMessage.chat_id == ORGANISER.chat_id,
                OutboxMessage.idempotency_key.like(f"results:{consultation_id}:%"),
            ),
        )
        return consultation, participants, results_broadcasts, list(told), to_organiser

    consultation, participants, results_broadcasts, told, to_organiser = await in_transaction(
        sessions, look
    )
    assert consultation.status is ConsultationStatus.CLOSED
    assert consultation.results is not None
    assert consultation.results["respondents"] == len(RESIDENTS)
    assert participants == len(RESIDENTS)
    assert results_broadcasts == 1  # no neighbourhood given: one group of respondents
    assert told == [1] * len(RESIDENTS)  # each respondent hears back once
    # The results went to the organiser once: the message, a chart, the CSV.
    assert to_organiser == 3


async def test_a_closing_that_lost_to_the_deadline_is_undone_whole(
    council: Council, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Closing without `close_now`: the status looked at, then `close_consultation` and the
    announcements. If the scheduler closed it in between, the closing raises before writing
    anything, so nothing is announced twice (the organiser's transaction is rolled back)."""
    consultation_id = await consultation_with_answers(sessions)
    deadline = utcnow() + timedelta(hours=1, minutes=1)

    async def tick(session: AsyncSession) -> int:
        return await consultation_jobs.CLOSE_CONSULTATIONS.run(session, deadline)

    async def close(session: AsyncSession) -> bool:
        consultation = await session.get_one(Consultation, consultation_id)
        if consultation.status is not ConsultationStatus.OPEN:
            return False  # "This consultation can no longer be changed."
        await consultations.close_consultation(session, consultation, deadline)
        await consultation_jobs.announce(session, consultation)
        return True

    ticked, closed = await side_by_side(sessions, tick, close)
    assert ticked == 1
    if sessions.kw["bind"].dialect.name == "sqlite":
        assert closed is False  # the organiser looked once the tick had committed
    else:  # looked before, found it closed once locked
        assert isinstance(closed, consultations.AlreadyClosedError)

    async def look(session: AsyncSession) -> tuple[int, int]:
        results_broadcasts = await count(
            session,
            select(Broadcast).where(
                Broadcast.kind == "consultation-results",
                Broadcast.subject == f"consultation:{consultation_id}",
            ),
        )
        participants = await count(
            session, select(Participant).where(Participant.consultation_id == consultation_id)
        )
        return results_broadcasts, participants

    assert await in_transaction(sessions, look) == (1, len(RESIDENTS))


# --- a meeting cancelled or moved as its reminder falls due --------------------------------


async def meeting_with_guests(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, datetime]:
    """A meeting in two days, reminders a day and two hours before, everyone coming."""

    async def seed(session: AsyncSession) -> tuple[int, datetime]:
        council = await session.scalar(select(Council))
        assert council is not None
        people = await add_residents(session, council, list(RESIDENTS), ["en"])
        starts_at = utcnow().replace(microsecond=0) + timedelta(days=2)
        new = meetings.NewMeeting(
            title="Repair café",
            description="",
            place="Maison de quartier",
            starts_at=starts_at,
            ends_at=starts_at + timedelta(hours=2),
            reminder_hours=[24, 2],
        )
        sent, meeting = await meetings.send(session, council, new, None, ORGANISER)
        assert sent is meetings.Sent.SENT and meeting is not None
        for person in people:
            answered = await meetings.respond(session, meeting.id, person, Rsvp.COMING)
            assert answered.outcome is meetings.Answered.RECORDED
        return meeting.id, starts_at

    meeting_id, starts_at = await in_transaction(sessions, seed)
    return int(meeting_id), starts_at


def reminder_tick(now: datetime) -> Work:
    async def tick(session: AsyncSession) -> int:
        return await MEETING_REMINDERS.run(session, now)

    return tick


async def reminders_queued(session: AsyncSession, meeting_id: int) -> int:
    """Reminder messages for the meeting still to be sent."""
    return await count(
        session,
        select(OutboxMessage)
        .join(Broadcast, Broadcast.id == OutboxMessage.broadcast_id)
        .where(
            Broadcast.kind == "reminder",
            Broadcast.subject == f"meeting:{meeting_id}",
            OutboxMessage.status == OutboxStatus.PENDING,
        ),
    )


async def notices(session: AsyncSession, meeting_id: int, kind: str) -> int:
    return await count(
        session,
        select(Broadcast).where(
            Broadcast.kind == kind, Broadcast.subject == f"meeting:{meeting_id}"
        ),
    )


async def reminder_rows(session: AsyncSession, meeting_id: int) -> list[MeetingReminder]:
    rows = await session.scalars(
        select(MeetingReminder)
        .where(MeetingReminder.meeting_id == meeting_id)
        .order_by(MeetingReminder.id)
    )
    return list(rows)


@ORDERS
async def test_a_meeting_cancelled_as_its_reminder_falls_due_gets_no_reminder_after_the_notice(
    council: Council, sessions: async_sessionmaker[AsyncSession], scheduler_first: bool
) -> None:
    meeting_id, starts_at = await meeting_with_guests(sessions)
    now = starts_at - timedelta(hours=24) + timedelta(minutes=1)  # the day-before reminder

    async def cancel(session: AsyncSession) -> bool:
        seen = await session.get_one(Meeting, meeting_id)  # as the card showed it
        return await meetings.cancel(session, seen, now)

    tick = reminder_tick(now)
    first, second = (tick, cancel) if scheduler_first else (cancel, tick)
    outcomes = await side_by_side(sessions, first, second)
    no_failure(outcomes)
    ticked, cancelled = outcomes if scheduler_first else outcomes[::-1]
    assert cancelled is True

    async def look(
        session: AsyncSession,
    ) -> tuple[Meeting, int, int, list[MeetingReminder], list[BroadcastStatus]]:
        meeting = await session.get_one(Meeting, meeting_id)
        told = await notices(session, meeting_id, "meeting-cancel")
        reminders = await session.scalars(
            select(Broadcast.status).where(
                Broadcast.kind == "reminder", Broadcast.subject == f"meeting:{meeting_id}"
            )
        )
        queued = await reminders_queued(session, meeting_id)
        return meeting, told, queued, await reminder_rows(session, meeting_id), list(reminders)

    meeting, told, queued, rows, reminders = await in_transaction(sessions, look)
    assert meeting.status is MeetingStatus.CANCELLED
    assert told == 1
    # Nothing left to go out after the cancellation notice (which is urgent, so it would
    # overtake a reminder queued before it).
    assert queued == 0
    assert [r.status for r in rows if r.hours_before == 2] == [ReminderStatus.CANCELLED]
    (day_before,) = [r for r in rows if r.hours_before == 24]
    if ticked:  # the reminder was claimed first: withdrawn by the cancellation
        assert day_before.status is ReminderStatus.SENT
        assert reminders == [BroadcastStatus.INTERRUPTED]
    else:
        assert day_before.status is ReminderStatus.CANCELLED
        assert reminders == []


@ORDERS
async def test_a_meeting_moved_as_its_reminder_falls_due_plans_its_new_reminders_once(
    council: Council, sessions: async_sessionmaker[AsyncSession], scheduler_first: bool
) -> None:
    meeting_id, starts_at = await meeting_with_guests(sessions)
    now = starts_at - timedelta(hours=24) + timedelta(minutes=1)
    later = starts_at + timedelta(days=3)

    async def move(session: AsyncSession) -> bool:
        seen = await session.get_one(Meeting, meeting_id)
        return await meetings.change(session, seen, starts_at=later, now=now)

    tick = reminder_tick(now)
    first, second = (tick, move) if scheduler_first else (move, tick)
    outcomes = await side_by_side(sessions, first, second)
    no_failure(outcomes)
    moved = outcomes[1] if scheduler_first else outcomes[0]
    assert moved is True

    async def look(session: AsyncSession) -> tuple[Meeting, int, int, list[MeetingReminder]]:
        meeting = await session.get_one(Meeting, meeting_id)
        told = await notices(session, meeting_id, "meeting-change")
        return (
            meeting,
            told,
            await reminders_queued(session, meeting_id),
            await reminder_rows(session, meeting_id),
        )

    meeting, told, queued, rows = await in_transaction(sessions, look)
    assert meeting.starts_at == later
    assert told == 1
    assert queued == 0  # no reminder for the old time goes out after the change notice
    pending = [
        (r.hours_before, r.due_at, r.sequence) for r in rows if r.status is ReminderStatus.PENDING
    ]
    assert pending == [
        (24, later - timedelta(hours=24), meeting.sequence),
        (2, later - timedelta(hours=2), meeting.sequence),
    ]
    old = [r for r in rows if r.due_at < later - timedelta(days=1)]
    assert {r.status for r in old} <= {ReminderStatus.SENT, ReminderStatus.CANCELLED}
    assert len(old) == 2

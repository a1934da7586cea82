"""Scheduled work where one row fails: that row is rolled back alone, logged, marked failed
and skipped at the next ticks; the rest of the batch and the other councils go on."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import CoupDePouce
from flows.councils import create as create_council
from flows.engine import Job
from flows.meetings.jobs import MEETING_REMINDERS
from flows.meetings.service import schedule
from flows.scheduling import each_due, not_failed
from storage.models import (
    Council,
    Meeting,
    MeetingInvite,
    MeetingReminder,
    OutboxMessage,
    Priority,
    ReminderStatus,
    Rsvp,
    ScheduledFailure,
    utcnow,
)
from storage.queries import outbox
from tests.conftest import in_transaction
from tests.emulator import BotApiEmulator
from tests.factories import add_residents

OK_RESIDENT, BROKEN_RESIDENT = 61_001, 61_002


async def meeting_with_reminder(
    session: AsyncSession, council: Council, person_id: int, title: str, starts_at: datetime
) -> int:
    """A meeting with a reminder 24 hours before, one resident coming; its reminder's id."""
    meeting = Meeting(
        council_id=council.id,
        uid=f"{title}@test",
        title=title,
        place="Maison de quartier",
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=2),
        reminder_hours=[24],
    )
    session.add(meeting)
    await session.flush()
    session.add(MeetingInvite(meeting_id=meeting.id, person_id=person_id, rsvp=Rsvp.COMING))
    await schedule(session, meeting, utcnow())
    reminder = await session.scalar(
        select(MeetingReminder.id).where(MeetingReminder.meeting_id == meeting.id)
    )
    assert reminder is not None
    return reminder


async def test_a_reminder_that_raises_blocks_neither_its_batch_nor_other_councils(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council, caplog: pytest.LogCaptureFixture
) -> None:
    start = utcnow().replace(microsecond=0) + timedelta(days=2)

    async def seed(session: AsyncSession) -> tuple[int, list[int]]:
        ok = await session.get_one(Council, council.id)
        broken = await create_council(session, "quartier-sud", "Conseil Quartier Sud")
        broken.quiet_start = broken.quiet_end = None
        (anna,) = await add_residents(session, ok, [OK_RESIDENT], ["en"])
        (bilal,) = await add_residents(session, broken, [BROKEN_RESIDENT], ["en"])
        # Due first, so it leads the batch: its council's time zone was corrupted.
        failing = await meeting_with_reminder(
            session, broken, bilal.id, "Assemblée sud", start - timedelta(minutes=10)
        )
        broken.timezone = "Mars/Olympus"
        fine = [
            await meeting_with_reminder(session, ok, anna.id, title, start + timedelta(hours=i))
            for i, title in enumerate(("Atelier vélo", "Repair café"))
        ]
        return failing, fine

    failing, fine = await in_transaction(bot, seed)
    caplog.set_level(logging.WARNING, logger="flows.scheduling")

    now = start + timedelta(hours=1, minutes=1) - timedelta(hours=24)
    assert await bot.scheduler.tick(MEETING_REMINDERS, now) == 2

    anna = emulator.resident(OK_RESIDENT)
    await anna.wait_for(lambda m: len([x for x in anna.inbox if "⏰" in (x.text or "")]) == 2)
    texts = [m.text or "" for m in anna.inbox]
    assert any("Atelier vélo" in text for text in texts)
    assert any("Repair café" in text for text in texts)
    await emulator.wait_until_consumed()
    assert emulator.resident(BROKEN_RESIDENT).inbox == []

    (line,) = [r for r in caplog.records if r.name == "flows.scheduling"]
    assert line.levelno == logging.WARNING
    assert f"row {failing} failed" in line.getMessage()
    assert "Mars/Olympus" in line.getMessage()
    assert line.exc_info is None  # one line; the traceback is at DEBUG

    async def states(session: AsyncSession) -> tuple[dict[int, ReminderStatus], list[str]]:
        rows = await session.scalars(select(MeetingReminder))
        failures = await session.scalars(
            select(ScheduledFailure).where(
                ScheduledFailure.job == MEETING_REMINDERS.name,
                ScheduledFailure.row_id == failing,
            )
        )
        return {r.id: r.status for r in rows}, [f.error for f in failures]

    statuses, errors = await in_transaction(bot, states)
    assert statuses == {
        failing: ReminderStatus.FAILED,
        fine[0]: ReminderStatus.SENT,
        fine[1]: ReminderStatus.SENT,
    }
    assert len(errors) == 1 and "Mars/Olympus" in errors[0]

    # Not retried: the next ticks neither fail again nor record it twice.
    caplog.clear()
    assert await bot.scheduler.tick(MEETING_REMINDERS, now + timedelta(seconds=30)) == 0
    assert await bot.scheduler.tick(MEETING_REMINDERS, now + timedelta(minutes=1)) == 0
    assert [r for r in caplog.records if r.name == "flows.scheduling"] == []
    statuses, errors = await in_transaction(bot, states)
    assert statuses[failing] == ReminderStatus.FAILED and len(errors) == 1


async def test_a_job_that_raises_for_one_row_rolls_back_that_row_alone_and_skips_it(
    bot: CoupDePouce, council: Council, caplog: pytest.LogCaptureFixture
) -> None:
    """Any job using `each_due` and `not_failed` in its due query: the failing row's writes
    are undone, the other rows' are kept, and the failing row is not tried again."""
    job_name = "test-greetings"

    async def greet(session: AsyncSession, now: datetime) -> int:
        due = await session.scalars(
            select(Council).where(not_failed(job_name, Council.id)).order_by(Council.id)
        )

        async def work(row: Council) -> bool:
            row.name = row.name + " (greeted)"
            if row.slug == "quartier-sud":
                raise ValueError("no greeting in this council's language")
            await outbox.enqueue_one(
                session,
                channel="telegram",
                chat_id="1",
                payload={"text": f"Hello {row.slug}"},
                priority=Priority.REPORT,
                key=f"greeting:{row.id}:{now.isoformat()}",
            )
            return True

        return await each_due(session, job_name, due, work, now=now)

    job = Job(job_name, timedelta(seconds=30), greet)
    other = await in_transaction(bot, lambda s: create_council(s, "quartier-sud", "Sud"))
    caplog.set_level(logging.WARNING, logger="flows.scheduling")

    assert await bot.scheduler.tick(job) == 1
    assert await bot.scheduler.tick(job) == 1  # the good row again; the failed one skipped
    names = await in_transaction(
        bot, lambda s: s.scalars(select(Council.name).order_by(Council.id))
    )
    assert list(names) == [
        "Conseil citoyen Quartier Nord (greeted) (greeted)",
        "Sud",  # its change was rolled back with its failure
    ]
    failures = await in_transaction(bot, lambda s: s.scalars(select(ScheduledFailure)))
    assert [(f.job, f.row_id) for f in failures] == [(job_name, other.id)]
    queued = await in_transaction(
        bot, lambda s: s.scalars(select(OutboxMessage.payload).order_by(OutboxMessage.id))
    )
    assert [p["text"] for p in queued] == ["Hello quartier-nord"] * 2
    assert len([r for r in caplog.records if r.name == "flows.scheduling"]) == 1

"""Retention: what each capability declares it keeps for a while is purged once that while
has passed, on the scheduler, and one rule that fails does not stop the others."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import CoupDePouce
from flows.engine import Flow, Job, Retention
from flows.registry import FLOWS
from storage.models import (
    Broadcast,
    BroadcastStatus,
    Council,
    Identity,
    LoginLink,
    MeetingInvite,
    OutboxMessage,
    OutboxStatus,
    ProcessedEvent,
    Rsvp,
    WebMessage,
    utcnow,
)
from tests.conftest import StartBot, in_transaction
from tests.factories import add_residents
from tests.test_meetings_export import meeting

LONG_AGO = timedelta(days=800)


def retention_job(app: CoupDePouce) -> Job:
    [job] = [job for job in app.scheduler.jobs if job.name == "retention"]
    return job


async def seed(session: AsyncSession, council: Council, now: datetime) -> dict[str, int]:
    """Old and recent rows of each kind; returns the ids that must stay."""
    [amina, bruno] = await add_residents(session, council, [61_001, 61_002])
    old = now - LONG_AGO
    session.add_all(
        [
            ProcessedEvent(channel="telegram", event_id=1, processed_at=old),
            ProcessedEvent(channel="telegram", event_id=2, processed_at=now),
        ]
    )
    done = Broadcast(council_id=council.id, kind="test", status=BroadcastStatus.DONE)
    running = Broadcast(council_id=council.id, kind="test", status=BroadcastStatus.SENDING)
    session.add_all([done, running])
    await session.flush()

    def message(status: OutboxStatus, broadcast: Broadcast | None, at: datetime) -> OutboxMessage:
        return OutboxMessage(
            broadcast_id=broadcast.id if broadcast else None,
            council_id=council.id,
            person_id=amina.id,
            channel="telegram",
            chat_id="61001",
            payload={"text": "…"},
            status=status,
            created_at=at,
        )

    gone = message(OutboxStatus.SENT, done, old)
    still_sending = message(OutboxStatus.SENT, running, old)  # its broadcast is not over
    # …for one of its messages waits to go. Waiting messages are due tomorrow: the dispatcher
    # running beside the test neither sends them nor closes the broadcast meanwhile.
    unsent = message(OutboxStatus.PENDING, running, now)
    waiting = message(OutboxStatus.PENDING, None, old)
    for later in (unsent, waiting):
        later.next_attempt_at = now + timedelta(days=1)
    recent = message(OutboxStatus.SENT, None, now)
    session.add_all([gone, still_sending, unsent, waiting, recent])
    member_chat = "member-chat"
    session.add(
        Identity(person_id=bruno.id, channel="web", external_id=member_chat, preferred=False)
    )
    shown_long_ago = WebMessage(
        chat_id=member_chat, payload={"text": "…"}, created_at=old, delivered_at=old
    )
    mail_waiting = WebMessage(
        chat_id=member_chat, payload={"text": "…"}, created_at=old, mailed=True
    )
    visitor = WebMessage(
        chat_id="visitor", payload={"text": "…"}, created_at=now - timedelta(days=40)
    )
    visitor_today = WebMessage(chat_id="visitor", payload={"text": "…"}, created_at=now)
    session.add_all([shown_long_ago, mail_waiting, visitor, visitor_today])
    past = meeting(council.id, "past", "Réunion passée", old, old + timedelta(hours=2))
    coming = meeting(
        council.id,
        "coming",
        "Réunion à venir",
        now + timedelta(days=3),
        now + timedelta(days=3, hours=2),
    )
    session.add_all([past, coming])
    await session.flush()
    session.add_all(
        [
            MeetingInvite(meeting_id=past.id, person_id=amina.id, rsvp=Rsvp.COMING),
            MeetingInvite(meeting_id=coming.id, person_id=amina.id, rsvp=Rsvp.COMING),
        ]
    )
    session.add_all(
        [
            LoginLink(token_hash="a" * 64, person_id=amina.id, expires_at=now - timedelta(days=2)),
            LoginLink(
                token_hash="b" * 64, person_id=amina.id, expires_at=now + timedelta(minutes=5)
            ),
        ]
    )
    await session.flush()
    return {
        "still_sending": still_sending.id,
        "unsent": unsent.id,
        "waiting": waiting.id,
        "recent": recent.id,
        "mail_waiting": mail_waiting.id,
        "visitor_today": visitor_today.id,
        "coming": coming.id,
    }


async def remaining(session: AsyncSession) -> dict[str, object]:
    return {
        "events": sorted(await session.scalars(select(ProcessedEvent.event_id))),
        "outbox": sorted(await session.scalars(select(OutboxMessage.id))),
        "web": sorted(await session.scalars(select(WebMessage.id))),
        "invites": sorted(await session.scalars(select(MeetingInvite.meeting_id))),
        "links": int(await session.scalar(select(func.count()).select_from(LoginLink)) or 0),
    }


async def test_what_is_kept_for_a_while_goes_once_that_while_has_passed(
    start_bot: StartBot, council: Council
) -> None:
    bot = await start_bot()
    now = utcnow()

    async def setup(session: AsyncSession) -> dict[str, int]:
        stored = await session.get_one(Council, council.id)
        return await seed(session, stored, now)

    kept = await in_transaction(bot, setup)
    assert await bot.scheduler.tick(retention_job(bot), now) > 0
    left = await in_transaction(bot, remaining)
    assert left == {
        "events": [2],
        "outbox": sorted([kept["still_sending"], kept["unsent"], kept["waiting"], kept["recent"]]),
        "web": sorted([kept["mail_waiting"], kept["visitor_today"]]),
        "invites": [kept["coming"]],
        "links": 1,
    }
    # Nothing more to do at the next tick.
    assert await bot.scheduler.tick(retention_job(bot), now) == 0


async def failing(_session: AsyncSession, _before: datetime) -> int:
    raise RuntimeError("the disk is full")


BROKEN = Flow(name="broken", retention=[Retention("things that fail", timedelta(days=1), failing)])


async def test_a_rule_that_fails_does_not_stop_the_others(
    start_bot: StartBot, council: Council, caplog: pytest.LogCaptureFixture
) -> None:
    bot = await start_bot(flows=[BROKEN, *FLOWS])
    now = utcnow()

    async def setup(session: AsyncSession) -> None:
        session.add(ProcessedEvent(channel="telegram", event_id=9, processed_at=now - LONG_AGO))

    await in_transaction(bot, setup)
    with caplog.at_level(logging.WARNING):
        assert await bot.scheduler.tick(retention_job(bot), now) == 1
    assert (await in_transaction(bot, remaining))["events"] == []
    assert "things that fail could not be purged: the disk is full" in caplog.text

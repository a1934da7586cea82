"""Keeping the directory fresh: ask members every few months whether their profile is still
right, and hide from searches those who do not answer in time (until they do)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from flows.broadcasts.service import to_payload
from flows.engine import Choice, Job, Reply
from flows.i18n import Translator
from flows.scheduling import each_due
from flows.talents.buttons import Refresh, RefreshButton
from storage.models import Council, Person, PersonStatus, Priority, TalentProfile
from storage.queries import councils, outbox, people

REFRESH_JOB = "refresh-profiles"
BATCH = 500  # questions queued per council and tick; the rest wait for the next tick


def question(t: Translator, council: Council, profile_id: int) -> Reply:
    return Reply(
        t._(
            "Your profile in the talent directory of {council}: is it still right? "
            "Tell us, or it will be hidden from searches in a few weeks."
        ).format(council=council.name),
        (
            (Choice("✅ " + t._("Still right"), RefreshButton(profile_id, Refresh.OK).pack()),),
            (Choice(t._("Update it"), RefreshButton(profile_id, Refresh.EDIT).pack()),),
        ),
    )


async def refresh_profiles(session: AsyncSession, now: datetime) -> int:
    """Ask those whose profile is due; hide those who did not answer within the grace period."""
    done = 0
    for council in await councils.all_councils(session):
        done += await _ask(session, council, now)
        hidden = await session.execute(
            update(TalentProfile)
            .where(
                TalentProfile.council_id == council.id,
                TalentProfile.hidden_at.is_(None),
                TalentProfile.refresh_asked_at <= now - timedelta(days=council.profile_grace_days),
            )
            .values(hidden_at=now)
        )
        done += max(hidden.rowcount or 0, 0)  # type: ignore[attr-defined]
    return done


async def _ask(session: AsyncSession, council: Council, now: datetime) -> int:
    """Claim the council's due profiles (one process only) and queue the question."""
    due = (
        select(TalentProfile.id)
        .join(Person, Person.id == TalentProfile.person_id)
        .where(
            TalentProfile.council_id == council.id,
            TalentProfile.refresh_asked_at.is_(None),
            TalentProfile.confirmed_at <= now - timedelta(days=council.profile_refresh_days),
            Person.status == PersonStatus.ACTIVE,
        )
    )
    claimed = await session.execute(
        update(TalentProfile)
        .where(TalentProfile.id.in_(due.limit(BATCH)), TalentProfile.refresh_asked_at.is_(None))
        .values(refresh_asked_at=now)
        .returning(TalentProfile.id, TalentProfile.person_id)
    )

    async def ask(row: Row[int, int]) -> bool:
        profile_id, person_id = row.id, row.person_id
        person = await session.get(Person, person_id)
        address = await people.address_of(session, person_id)
        if person is None or address is None:
            return False
        await outbox.enqueue_one(
            session,
            channel=address[0],
            chat_id=address[1],
            payload=to_payload(question(Translator(person.locale), council, profile_id)),
            priority=Priority.BROADCAST,
            council_id=council.id,
            person_id=person_id,
            key=f"refresh:{profile_id}:{now.date().isoformat()}",
        )
        return True

    # A question that cannot be queued stays claimed: recorded, not asked again and again.
    return await each_due(session, REFRESH_JOB, claimed, ask, now=now)


REFRESH_PROFILES = Job(REFRESH_JOB, timedelta(hours=1), refresh_profiles)

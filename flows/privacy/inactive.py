"""Members silent for the period their council chose (two years unless it chose otherwise)
are not kept forever: a month before, they are told in their language, with one tap to stay;
if they say nothing, everything about them is erased, as /forget would.

Someone who belongs to several councils goes once every one of their memberships is past
its council's period (a person is erased whole, never in part)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Row, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from flows.broadcasts.service import to_payload
from flows.engine import Choice, Context, Flow, Job, Reply
from flows.i18n import Translator
from flows.privacy import service
from flows.privacy.buttons import StayButton
from flows.scheduling import each_due
from storage.models import Council, Membership, Person, PersonStatus, Priority
from storage.queries import outbox, people

log = logging.getLogger(__name__)

JOB = "inactive-members"
NOTICE = timedelta(days=30)  # between the warning and the erasure
DAYS_PER_MONTH = 30.44
BATCH = 500  # warnings queued per council and tick; the rest wait for the next tick


def silence(council: Council) -> timedelta:
    return timedelta(days=round(council.inactive_months * DAYS_PER_MONTH))


def last_active() -> ColumnElement[datetime]:
    """When a member last did something: wrote or tapped, or joined."""
    seen_at = func.coalesce(Person.last_seen_at, Person.created_at)
    return case((seen_at > Membership.joined_at, seen_at), else_=Membership.joined_at)


def warning(t: Translator, council: Council, membership_id: int, on: datetime) -> Reply:
    return Reply(
        t._(
            "We have not heard from you at {council} for a long time. Unless you tell us you "
            "want to stay, you will leave the council on {date}, and everything we keep about "
            "you will be erased."
        ).format(council=council.name, date=t.moment(on, council.timezone)),
        ((Choice("✅ " + t._("I want to stay"), StayButton(membership_id).pack()),),),
    )


def job(flows: Sequence[Flow]) -> Job:
    """Every six hours: warn those whose silence nears their council's period, erase those
    who were warned a month ago and have said nothing since."""
    capabilities = [data for flow in flows for data in flow.personal_data]

    async def run(session: AsyncSession, now: datetime) -> int:
        done = 0
        for council in await session.scalars(select(Council).where(Council.inactive_months > 0)):
            done += await _warn(session, council, now)
        for person in await _gone_silent(session, now):
            await service.forget(session, person, capabilities)
            log.info("inactive members: a person silent past their councils' periods erased")
            done += 1
        return done

    return Job(JOB, timedelta(hours=6), run)


async def _warn(session: AsyncSession, council: Council, now: datetime) -> int:
    """Claim the council's members due a warning (one process only) and queue it."""
    due = (
        select(Membership.id)
        .join(Person, Person.id == Membership.person_id)
        .where(
            Membership.council_id == council.id,
            Membership.inactivity_warned_at.is_(None),
            last_active() <= now - silence(council) + NOTICE,
        )
    )
    claimed = await session.execute(
        update(Membership)
        .where(Membership.id.in_(due.limit(BATCH)), Membership.inactivity_warned_at.is_(None))
        .values(inactivity_warned_at=now)
        .returning(Membership.id, Membership.person_id)
        .execution_options(synchronize_session=False)
    )

    async def tell(row: Row[int, int]) -> bool:
        membership_id, person_id = row.id, row.person_id
        person = await session.get(Person, person_id)
        address = await people.address_of(session, person_id)
        if person is None or address is None or person.status is not PersonStatus.ACTIVE:
            return True  # cannot be told (stopped, blocked): the month runs all the same
        await outbox.enqueue_one(
            session,
            channel=address[0],
            chat_id=address[1],
            payload=to_payload(
                warning(Translator(person.locale), council, membership_id, now + NOTICE)
            ),
            priority=Priority.BROADCAST,
            council_id=council.id,
            person_id=person_id,
            key=f"inactive:{membership_id}:{now.date().isoformat()}",
        )
        return True

    return await each_due(session, JOB, claimed, tell, now=now)


def _expired(membership: Membership, person: Person, now: datetime) -> bool:
    warned = membership.inactivity_warned_at
    active = person.last_seen_at or person.created_at
    return warned is not None and warned <= now - NOTICE and active < warned


async def _gone_silent(session: AsyncSession, now: datetime) -> list[Person]:
    """Persons all of whose memberships were warned a month ago with nothing since."""
    warned_long_ago = (
        select(Person)
        .join(Membership, Membership.person_id == Person.id)
        .where(
            Membership.inactivity_warned_at <= now - NOTICE,
            func.coalesce(Person.last_seen_at, Person.created_at) < Membership.inactivity_warned_at,
        )
        .distinct()
        .limit(BATCH)
        .options(selectinload(Person.memberships), selectinload(Person.identities))
    )
    return [
        person
        for person in await session.scalars(warned_long_ago)
        if all(_expired(membership, person, now) for membership in person.memberships)
    ]


async def stay(ctx: Context, button: StayButton) -> None:
    """The tap on "I want to stay": the warning is withdrawn, the person is active again."""
    membership = await ctx.session.get(Membership, button.membership_id)
    if membership is None or ctx.person is None or membership.person_id != ctx.person.id:
        ctx.toast = ctx._("Sorry, this button does not work.")
        return
    # The tap itself counts as activity (the engine noted it): the warnings are withdrawn.
    await ctx.session.execute(
        update(Membership)
        .where(Membership.person_id == ctx.person.id)
        .values(inactivity_warned_at=None)
        .execution_options(synchronize_session=False)
    )
    council = await ctx.session.get_one(Council, membership.council_id)
    ctx.say(ctx._("Thank you: you stay a member of {council}.").format(council=council.name))

"""Who counts once: the one definition of a verified member, and what follows from it.

A person counts as verified if the council vouched for them (`persons.verified_at`: an
invitation code, a coordinator) or if they have an identity on a channel other than the web
chat (Telegram and WhatsApp accounts are tied to a phone number). A web chat person who
links Telegram or WhatsApp (/link) therefore counts from then on, with nothing stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, and_, exists, not_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased

from storage.models import (
    Ballot,
    Consultation,
    ConsultationStatus,
    Identity,
    Membership,
    Person,
    utcnow,
)

WEB: Final = "web"  # the one channel anyone can open again and again


class By:
    """Who vouched for a person (`persons.verified_by`)."""

    CODE: Final = "code"  # an invitation code from the council
    LINK: Final = "link"  # a Telegram or WhatsApp account linked to them
    COORDINATOR: Final = "coordinator"  # a coordinator, in the dashboard


# Aliases, so that the expression stands on its own in queries that already read these
# tables; made once (an alias costs a copy of every column, and the consultation taps that
# use the expression are the ones residents make by hundreds after a broadcast).
_PERSON = aliased(Person, name="verified_person")
_IDENTITY = aliased(Identity, name="verified_identity")


def is_verified(
    person_id: ColumnElement[Any] | InstrumentedAttribute[Any] | int,
) -> ColumnElement[bool]:
    """True for a verified person, as an SQL expression over a person id (a column, for use in
    a WHERE or a SELECT, or a plain id)."""
    vouched = exists().where(_PERSON.id == person_id, _PERSON.verified_at.is_not(None))
    phone = exists().where(_IDENTITY.person_id == person_id, _IDENTITY.channel != WEB)
    return or_(vouched, phone)


async def verified(session: AsyncSession, person_id: int) -> bool:
    """Whether this person counts (one query)."""
    return bool(await session.scalar(select(is_verified(person_id))))


async def vouch(
    session: AsyncSession, person_id: int, by: str, now: datetime | None = None
) -> bool:
    """Record that someone vouched for the person, unless someone already did; True if this
    call did. Their answers to open consultations count from now on."""
    result = await session.execute(
        update(Person)
        .where(Person.id == person_id, Person.verified_at.is_(None))
        .values(verified_at=now or utcnow(), verified_by=by)
    )
    await refresh_ballots(session, person_id)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def refresh_ballots(session: AsyncSession, person_id: int) -> None:
    """Bring the person's ballots in open consultations up to date with the predicate (after
    a code, a coordinator's approval or a link)."""
    still_open = select(Consultation.id).where(Consultation.status != ConsultationStatus.CLOSED)
    await session.execute(
        update(Ballot)
        .where(Ballot.person_id == person_id, Ballot.consultation_id.in_(still_open))
        .values(verified=is_verified(person_id))
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True)
class Unverified:
    person_id: int
    first_name: str
    joined_at: datetime


async def unverified_members(
    session: AsyncSession, council_id: int, limit: int = 200
) -> Sequence[Unverified]:
    """The council's members who do not count yet (web chat only, nobody vouched), newest
    first."""
    rows = await session.execute(
        select(Person.id, Person.first_name, Membership.joined_at)
        .join(Membership, Membership.person_id == Person.id)
        .where(Membership.council_id == council_id, not_(is_verified(Person.id)))
        .order_by(Membership.joined_at.desc(), Person.id.desc())
        .limit(limit)
    )
    return [Unverified(person_id, name, joined) for person_id, name, joined in rows]


async def unverified_member(session: AsyncSession, council_id: int, person_id: int) -> bool:
    """Whether this person is an unverified member of this council."""
    found = await session.scalar(
        select(Membership.id).where(
            and_(
                Membership.council_id == council_id,
                Membership.person_id == person_id,
                not_(is_verified(person_id)),
            )
        )
    )
    return found is not None

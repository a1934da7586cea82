"""Onboarding rules: find the council, register a person at consent, join councils."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Council, Identity, Membership, Person, PersonStatus, utcnow
from storage.queries import people

# Bump when the privacy notice changes in substance: each consent records its version.
PRIVACY_VERSION = "2026-11"


class Joined(enum.Enum):
    JOINED = "joined"
    ALREADY = "already"


@dataclass(frozen=True)
class Newcomer:
    """What we know of someone at the moment they consent, and only then store."""

    channel: str
    external_id: str
    first_name: str
    username: str | None
    locale: str


async def register(session: AsyncSession, newcomer: Newcomer, council: Council) -> Person:
    """Create the person with their consent, their channel identity and their membership."""
    person = Person(
        first_name=newcomer.first_name[:200],
        locale=newcomer.locale,
        status=PersonStatus.ACTIVE,
        consent_version=PRIVACY_VERSION,
        consented_at=utcnow(),
    )
    session.add(person)
    await session.flush()
    session.add(
        Identity(
            person_id=person.id,
            channel=newcomer.channel,
            external_id=newcomer.external_id,
            username=(newcomer.username or None) and newcomer.username[:64],
        )
    )
    session.add(Membership(person_id=person.id, council_id=council.id))
    await session.flush()
    return person


async def join(session: AsyncSession, person: Person, council: Council) -> Joined:
    """Add the person to another council; they may belong to several."""
    if await people.membership(session, person, council) is not None:
        return Joined.ALREADY
    session.add(Membership(person_id=person.id, council_id=council.id))
    await session.flush()
    return Joined.JOINED


async def current_council(session: AsyncSession, person: Person) -> Council | None:
    """The council the person joined last: the one the bot speaks for by default."""
    memberships = await people.memberships(session, person)
    return memberships[0].council if memberships else None

"""Residents and councils made directly in the database, for stories about many people."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Council, Identity, Membership, Person, PersonStatus, utcnow


async def add_residents(
    session: AsyncSession,
    council: Council,
    telegram_ids: Sequence[int],
    locales: Sequence[str] = ("fr",),
) -> list[Person]:
    """Residents who consented and joined `council`, reachable on Telegram."""
    people = [
        Person(
            first_name=f"Habitant {telegram_id}",
            locale=locales[index % len(locales)],
            status=PersonStatus.ACTIVE,
            consent_version="test",
            consented_at=utcnow(),
        )
        for index, telegram_id in enumerate(telegram_ids)
    ]
    session.add_all(people)
    await session.flush()
    for person, telegram_id in zip(people, telegram_ids, strict=True):
        session.add(Identity(person_id=person.id, channel="telegram", external_id=str(telegram_id)))
        session.add(Membership(person_id=person.id, council_id=council.id))
    await session.flush()
    return people


async def add_whatsapp_residents(
    session: AsyncSession,
    council: Council,
    numbers: Sequence[str],
    locales: Sequence[str] = ("fr",),
    last_wrote: Sequence[datetime | None] = (),
) -> list[Person]:
    """Residents reachable on WhatsApp, who last wrote at these times (None: never)."""
    people = [
        Person(
            first_name=f"Habitant {number[-4:]}",
            locale=locales[index % len(locales)],
            status=PersonStatus.ACTIVE,
            consent_version="test",
            consented_at=utcnow(),
        )
        for index, number in enumerate(numbers)
    ]
    session.add_all(people)
    await session.flush()
    for index, (person, number) in enumerate(zip(people, numbers, strict=True)):
        wrote = last_wrote[index] if index < len(last_wrote) else None
        session.add(
            Identity(
                person_id=person.id, channel="whatsapp", external_id=number, last_inbound_at=wrote
            )
        )
        session.add(Membership(person_id=person.id, council_id=council.id))
    await session.flush()
    return people

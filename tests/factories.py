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
    return await _add(session, council, "telegram", [str(i) for i in telegram_ids], locales)


async def add_whatsapp_residents(
    session: AsyncSession,
    council: Council,
    numbers: Sequence[str],
    locales: Sequence[str] = ("fr",),
    last_wrote: Sequence[datetime | None] = (),
) -> list[Person]:
    """Residents reachable on WhatsApp, who last wrote at these times (None: never)."""
    return await _add(session, council, "whatsapp", numbers, locales, last_wrote)


async def _add(
    session: AsyncSession,
    council: Council,
    channel: str,
    external_ids: Sequence[str],
    locales: Sequence[str],
    last_wrote: Sequence[datetime | None] = (),
) -> list[Person]:
    people = [
        Person(
            first_name=f"Habitant {external_id}",
            locale=locales[index % len(locales)],
            status=PersonStatus.ACTIVE,
            consent_version="test",
            consented_at=utcnow(),
        )
        for index, external_id in enumerate(external_ids)
    ]
    session.add_all(people)
    await session.flush()
    for index, (person, external_id) in enumerate(zip(people, external_ids, strict=True)):
        wrote = last_wrote[index] if index < len(last_wrote) else None
        session.add(
            Identity(
                person_id=person.id,
                channel=channel,
                external_id=external_id,
                last_inbound_at=wrote,
            )
        )
        session.add(Membership(person_id=person.id, council_id=council.id))
    await session.flush()
    return people

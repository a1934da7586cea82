"""What linking keeps about a person: the one-time codes they asked for."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from flows.engine import PersonalData, Retention, deleted
from storage.models import LinkCode, Person


async def codes_of(session: AsyncSession, person: Person) -> list[dict[str, Any]]:
    codes = await session.execute(
        select(LinkCode.created_at, LinkCode.used_at).where(LinkCode.person_id == person.id)
    )
    return [
        {"asked_at": made.isoformat(), "used_at": used.isoformat() if used else None}
        for made, used in codes
    ]


LINK_CODES = PersonalData("link_codes", ("link_codes",), codes_of)


async def expired_codes(session: AsyncSession, before: datetime) -> int:
    result = await session.execute(delete(LinkCode).where(LinkCode.expires_at < before))
    return deleted(result)


RETENTION = (Retention("expired link codes", timedelta(days=1), expired_codes),)

"""What verification keeps about a person: the invitation code they entered."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from flows.engine import PersonalData
from storage.models import Council, InviteCode, Person


async def codes_used_by(session: AsyncSession, person: Person) -> list[dict[str, Any]]:
    codes = await session.execute(
        select(InviteCode.used_at, Council.slug)
        .join(Council, Council.id == InviteCode.council_id)
        .where(InviteCode.person_id == person.id)
    )
    return [
        {"council": slug, "used_at": used.isoformat() if used else None} for used, slug in codes
    ]


INVITE_CODES = PersonalData("invitation_codes", ("invite_codes",), codes_used_by)

"""What broadcasts keep about a person: the ones they started."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from flows.engine import PersonalData
from storage.models import Broadcast, Person


async def started_by(session: AsyncSession, person: Person) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(Broadcast.kind, Broadcast.created_at).where(Broadcast.started_by == person.id)
    )
    return [{"kind": kind, "started_at": at.isoformat()} for kind, at in rows]


STARTED = PersonalData("broadcasts_started", ("broadcasts",), started_by)

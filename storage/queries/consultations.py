"""Consultations: the locking read every writer of a consultation goes through."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Consultation


async def consultation_for_update(
    session: AsyncSession, consultation_id: int
) -> Consultation | None:
    """The consultation, its row locked until the end of the transaction (on PostgreSQL;
    SQLite already serialises writers) and read again as it is now: a closing committed by
    someone else while we waited for the lock is what the caller sees, even on an object the
    session had loaded before."""
    return await session.scalar(
        select(Consultation)
        .where(Consultation.id == consultation_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )

"""Meetings: the locking read every writer of a meeting goes through."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Meeting


async def meeting_for_update(session: AsyncSession, meeting_id: int) -> Meeting | None:
    """The meeting, its row locked until the end of the transaction (on PostgreSQL; SQLite
    already serialises writers) and read again as it is now: a change committed by someone
    else while we waited for the lock is what the caller sees, even on an object the session
    had loaded before."""
    return await session.scalar(
        select(Meeting)
        .where(Meeting.id == meeting_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )

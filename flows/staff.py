"""Which councils a person may act for, checked on the server at every step."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Council, Role
from storage.queries import councils, people


async def councils_coordinated(
    session: AsyncSession, channel: str, sender_id: str, is_admin: bool
) -> list[Council]:
    """The councils this person coordinates (all of them for an administrator), by name."""
    if is_admin:
        return list(await councils.all_councils(session))
    held = await people.roles_of(session, channel, sender_id)
    return sorted({c for c, role in held if role == Role.COORDINATOR}, key=lambda c: c.name)


async def coordinated(
    session: AsyncSession, channel: str, sender_id: str, is_admin: bool, council_id: int
) -> Council | None:
    """The council, if this person coordinates it; None otherwise (forged or revoked)."""
    allowed = await councils_coordinated(session, channel, sender_id, is_admin)
    return next((council for council in allowed if council.id == council_id), None)

"""Who still wants the council's messages."""

from __future__ import annotations

import enum

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Person, PersonStatus
from storage.queries import outbox


class Stopped(enum.Enum):
    STOPPED = "stopped"
    ALREADY = "already"


async def stop(session: AsyncSession, person: Person) -> Stopped:
    """No more broadcasts, including those already queued (the dispatcher cancels them)."""
    if person.status == PersonStatus.STOPPED:
        return Stopped.ALREADY
    person.status = PersonStatus.STOPPED
    return Stopped.STOPPED


def resume(person: Person) -> bool:
    """Broadcasts again after /start; True if the person had stopped or was unreachable."""
    if person.status in (PersonStatus.STOPPED, PersonStatus.UNREACHABLE):
        person.status = PersonStatus.ACTIVE
        return True
    return False


async def reachability(session: AsyncSession, person: Person, reachable: bool) -> None:
    """The person blocked the bot (nothing more can reach them) or unblocked it."""
    if not reachable:
        await outbox.mark_unreachable(session, person.id, None)
    elif person.status == PersonStatus.UNREACHABLE:
        person.status = PersonStatus.ACTIVE

"""One person on several channels: a one-time code from one, sent from the other.

The code is shown in a chat the person already uses; sent from another channel within a few
minutes, it adds that channel's identity to the same person. Only the code's hash is kept,
it works once, and a chat that sends wrong codes is stopped for a while (a code is short
enough to type, so guessing must not pay).
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Identity, LinkCode, Person
from storage.queries import verified

ALPHABET: Final = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L to misread
LENGTH: Final = 8
LIFETIME: Final = timedelta(minutes=10)
MAX_FAILURES: Final = 5  # wrong codes from one chat…
FAILURE_PAUSE: Final = timedelta(hours=1)  # …then this long before it may try again


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def normalise(code: str) -> str:
    """What the person typed, as the code was shown: 'k7p2 qxma' → 'K7P2QXMA'."""
    return "".join(c for c in code.upper() if c.isalnum())


async def new_code(session: AsyncSession, person: Person, now: datetime) -> str:
    code = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    session.add(
        LinkCode(
            code_hash=_hash(code), person_id=person.id, created_at=now, expires_at=now + LIFETIME
        )
    )
    await session.flush()
    return code


class Linked(enum.Enum):
    LINKED = "linked"
    ALREADY = "already"  # this chat is already this person's
    OTHER_PERSON = "other_person"  # this chat belongs to someone else: no merging
    INVALID = "invalid"  # unknown, used or expired


@dataclass(frozen=True)
class Linking:
    outcome: Linked
    person: Person | None = None


async def use_code(
    session: AsyncSession,
    code: str,
    channel: str,
    external_id: str,
    username: str | None,
    current: Person | None,
    now: datetime,
) -> Linking:
    """Add this chat to the person the code was made for, once."""
    found = await session.get(LinkCode, _hash(normalise(code)), with_for_update=True)
    if found is None or found.used_at is not None or found.expires_at <= now:
        return Linking(Linked.INVALID)
    person = await session.get(Person, found.person_id)
    if person is None:
        return Linking(Linked.INVALID)
    if current is not None:
        outcome = Linked.ALREADY if current.id == person.id else Linked.OTHER_PERSON
        return Linking(outcome, current)
    found.used_at = now
    session.add(
        Identity(
            person_id=person.id,
            channel=channel,
            external_id=external_id,
            username=(username or None) and username[:64],
            preferred=False,
        )
    )
    await session.flush()
    if channel != verified.WEB:
        # A Telegram or WhatsApp account makes a web chat member count: their answers to
        # open consultations count from now on.
        await verified.refresh_ballots(session, person.id)
    return Linking(Linked.LINKED, person)


async def identities(session: AsyncSession, person: Person) -> list[Identity]:
    return list(
        await session.scalars(
            select(Identity).where(Identity.person_id == person.id).order_by(Identity.id)
        )
    )


async def prefer(session: AsyncSession, person: Person, identity_id: int) -> Identity | None:
    """Make this identity the one the council's messages go to; None if it is not theirs."""
    chosen = await session.get(Identity, identity_id)
    if chosen is None or chosen.person_id != person.id:
        return None
    await session.execute(
        update(Identity).where(Identity.person_id == person.id).values(preferred=False)
    )
    await session.execute(update(Identity).where(Identity.id == chosen.id).values(preferred=True))
    await session.refresh(chosen)
    return chosen

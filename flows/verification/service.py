"""Invitation codes: printed on flyers, each works once and makes its holder a verified member.

A code is 8 letters and digits from an alphabet without look-alikes, shown as ``XXXX-XXXX``;
what a person types is read whatever its case, spaces or dashes. Only a code's hash is
stored. Redeeming marks the code used with one conditional UPDATE, so two people typing the
same code at the same moment cannot both succeed.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from datetime import datetime
from typing import Final

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Council, Identity, InviteCode, Membership, Person, utcnow
from storage.queries import verified
from storage.queries.verified import WEB, By

ALPHABET: Final = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L to misread
LENGTH: Final = 8
MAX_TYPED: Final = 40  # longer than any way of typing a code
MAX_CODES: Final = 5000  # in one batch
MAX_FAILURES: Final = 5  # wrong codes from one chat within an hour, then a pause


def normalise(typed: str) -> str:
    """What the person typed, as the code is stored: ' abcd-efgh ' → 'ABCDEFGH'."""
    return "".join(c for c in typed.upper() if c.isalnum())


def shown(code: str) -> str:
    """A code as printed: 'ABCDEFGH' → 'ABCD-EFGH'."""
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


def digest(code: str) -> str:
    return hashlib.sha256(normalise(code).encode()).hexdigest()


def well_formed(typed: str) -> bool:
    code = normalise(typed[: MAX_TYPED + 1])
    return len(typed) <= MAX_TYPED and len(code) == LENGTH and all(c in ALPHABET for c in code)


async def new_codes(
    session: AsyncSession, council: Council, count: int, now: datetime | None = None
) -> list[str]:
    """Make `count` fresh codes for the council; returns them (normalised), keeps their hashes."""
    codes: set[str] = set()
    while len(codes) < count:
        codes.add("".join(secrets.choice(ALPHABET) for _ in range(LENGTH)))
    made = now or utcnow()
    session.add_all(
        InviteCode(code_hash=digest(code), council_id=council.id, created_at=made) for code in codes
    )
    await session.flush()
    return sorted(codes)


class Redeemed(enum.Enum):
    VERIFIED = "verified"
    MALFORMED = "malformed"  # not shaped like a code: nothing looked up
    INVALID = "invalid"  # unknown, used already, or another council's: nothing changed
    ALREADY = "already"  # the council already vouched for them: the code stays unused
    PHONE = "phone"  # on Telegram or WhatsApp, they count already: the code stays unused


async def redeem(
    session: AsyncSession, person: Person, typed: str, now: datetime | None = None
) -> Redeemed:
    """Use the code for this person, once, if it belongs to one of their councils."""
    if not well_formed(typed):
        return Redeemed.MALFORMED
    on_phone = await session.scalar(
        select(exists().where(Identity.person_id == person.id, Identity.channel != WEB))
    )
    if on_phone:
        return Redeemed.PHONE
    if person.verified_at is not None:
        return Redeemed.ALREADY
    when = now or utcnow()
    their_councils = select(Membership.council_id).where(Membership.person_id == person.id)
    used = await session.execute(
        update(InviteCode)
        .where(
            InviteCode.code_hash == digest(typed),
            InviteCode.used_at.is_(None),
            InviteCode.council_id.in_(their_councils),
        )
        .values(used_at=when, person_id=person.id)
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]
        return Redeemed.INVALID
    await verified.vouch(session, person.id, By.CODE, when)
    await session.refresh(person, ["verified_at", "verified_by"])
    return Redeemed.VERIFIED


class Approved(enum.Enum):
    VERIFIED = "verified"
    NOT_FOUND = "not_found"  # not an unverified member of this council


async def approve(
    session: AsyncSession, council: Council, person_id: int, now: datetime | None = None
) -> Approved:
    """A coordinator vouches for one of their council's unverified members."""
    if not await verified.unverified_member(session, council.id, person_id):
        return Approved.NOT_FOUND
    if not await verified.vouch(session, person_id, By.COORDINATOR, now):
        return Approved.NOT_FOUND
    return Approved.VERIFIED

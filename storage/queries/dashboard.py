"""One-time dashboard links and signed-in sessions. Secrets are stored only as hashes."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import DashboardSession, LoginLink, Person, PersonStatus


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_link(
    session: AsyncSession, person_id: int, now: datetime, valid_for: timedelta
) -> str:
    """A new one-time token for this person; returns the token (only its hash is kept)."""
    token = secrets.token_urlsafe(32)
    session.add(
        LoginLink(
            token_hash=digest(token),
            person_id=person_id,
            created_at=now,
            expires_at=now + valid_for,
        )
    )
    # Old links are of no use to anyone: sweep them while we are here.
    await session.execute(delete(LoginLink).where(LoginLink.expires_at < now - timedelta(days=1)))
    return token


async def peek_link(session: AsyncSession, token: str, now: datetime) -> LoginLink | None:
    """The link if it can still be used, without using it."""
    link = await session.get(LoginLink, digest(token))
    if link is None or link.used_at is not None or link.expires_at <= now:
        return None
    return link


async def redeem_link(session: AsyncSession, token: str, now: datetime) -> int | None:
    """Use the link once: the person's id, or None if it is unknown, used or expired.

    A single conditional UPDATE, so two browsers racing with the same link cannot both win.
    """
    result = await session.execute(
        update(LoginLink)
        .where(
            LoginLink.token_hash == digest(token),
            LoginLink.used_at.is_(None),
            LoginLink.expires_at > now,
        )
        .values(used_at=now)
        .returning(LoginLink.person_id)
    )
    person_id = result.scalar_one_or_none()
    if person_id is None:
        return None
    status = await session.scalar(select(Person.status).where(Person.id == person_id))
    return person_id if status is PersonStatus.ACTIVE else None


@dataclass(frozen=True)
class SignedIn:
    person_id: int
    csrf_token: str
    expires_at: datetime


async def open_session(
    session: AsyncSession, person_id: int, now: datetime, lasts: timedelta
) -> tuple[str, SignedIn]:
    """A new session: the secret for the cookie, and what it stands for."""
    secret = secrets.token_urlsafe(32)
    row = DashboardSession(
        id_hash=digest(secret),
        person_id=person_id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + lasts,
    )
    session.add(row)
    await session.execute(delete(DashboardSession).where(DashboardSession.expires_at < now))
    return secret, SignedIn(row.person_id, row.csrf_token, row.expires_at)


async def signed_in(session: AsyncSession, secret: str, now: datetime) -> SignedIn | None:
    row = await session.get(DashboardSession, digest(secret))
    if row is None or row.expires_at <= now:
        return None
    return SignedIn(row.person_id, row.csrf_token, row.expires_at)


async def close_session(session: AsyncSession, secret: str) -> None:
    await session.execute(
        delete(DashboardSession).where(DashboardSession.id_hash == digest(secret))
    )

"""Secrets generated once and kept in the database, so that every process shares them."""

from __future__ import annotations

import secrets

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AppSecret


async def get_or_create(session: AsyncSession, name: str, nbytes: int = 32) -> str:
    """The named secret; made on first use (the first process to make it wins)."""
    existing = await session.get(AppSecret, name)
    if existing is not None:
        return existing.value
    try:
        async with session.begin_nested():
            session.add(AppSecret(name=name, value=secrets.token_urlsafe(nbytes)))
    except IntegrityError:
        pass
    found = await session.get(AppSecret, name, populate_existing=True)
    assert found is not None
    return found.value

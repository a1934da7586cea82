"""Councils: find, list, add."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Council


async def by_slug(session: AsyncSession, slug: str) -> Council | None:
    return await session.scalar(select(Council).where(Council.slug == slug))


async def by_id(session: AsyncSession, council_id: int) -> Council | None:
    return await session.get(Council, council_id)


async def all_councils(session: AsyncSession) -> Sequence[Council]:
    return (await session.scalars(select(Council).order_by(Council.name))).all()


async def add(session: AsyncSession, slug: str, name: str, timezone: str, locale: str) -> Council:
    council = Council(slug=slug, name=name, timezone=timezone, locale=locale)
    session.add(council)
    await session.flush()
    return council

"""Creating a council: the record, and the skills catalogue it starts with."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from flows.talents.service import seed_catalogue
from storage.models import Council
from storage.queries import councils


async def create(
    session: AsyncSession,
    slug: str,
    name: str,
    timezone: str = "Europe/Paris",
    locale: str = "fr",
    neighbourhoods: list[str] | None = None,
) -> Council:
    council = await councils.add(session, slug, name, timezone, locale)
    council.neighbourhoods = list(neighbourhoods or [])
    await seed_catalogue(session, council)
    return council

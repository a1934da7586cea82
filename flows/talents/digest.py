"""The talent directory in the council's digest: how many people joined it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from flows.i18n import Translator
from flows.sections import DigestSection, Period
from storage.models import Council, TalentProfile


@dataclass(frozen=True)
class DirectoryNews:
    new_members: int = 0

    @property
    def newsworthy(self) -> bool:
        return self.new_members > 0


async def gather(session: AsyncSession, council: Council, period: Period) -> DirectoryNews:
    """How many joined the directory in the period (and are still listed)."""
    count = await session.scalar(
        select(func.count()).where(
            TalentProfile.council_id == council.id,
            TalentProfile.created_at > period.since,
            TalentProfile.created_at <= period.now,
            TalentProfile.hidden_at.is_(None),
        )
    )
    return DirectoryNews(int(count or 0))


def write(t: Translator, news: DirectoryNews, timezone: str) -> list[str]:
    if not news.new_members:
        return []
    return [
        "🌱 "
        + t.ngettext(
            "{count} new person in the talent directory",
            "{count} new people in the talent directory",
            news.new_members,
        ).format(count=t.number(news.new_members))
    ]


SECTION = DigestSection("talents", 10, gather, write)

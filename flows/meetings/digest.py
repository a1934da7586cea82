"""The meetings in the council's digest: those of the next two weeks, with their answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from flows.digest.lines import SHOWN, block, more
from flows.i18n import N_, Translator
from flows.meetings import service
from flows.sections import DigestSection, Period
from storage.models import Council, Meeting, MeetingInvite, MeetingStatus

HEADER = N_("Upcoming meetings")
AHEAD = timedelta(days=14)


@dataclass(frozen=True)
class UpcomingMeeting:
    title: str
    starts_at: datetime
    coming: int
    guests: int
    maybe: int
    fresh: bool  # new, answered, or not yet in the last digest's two weeks


@dataclass(frozen=True)
class MeetingNews:
    upcoming: list[UpcomingMeeting] = field(default_factory=list)

    @property
    def newsworthy(self) -> bool:
        return any(meeting.fresh for meeting in self.upcoming)


async def gather(session: AsyncSession, council: Council, period: Period) -> MeetingNews:
    """The meetings of the next two weeks, with how many said they would come."""
    meetings = list(
        await session.scalars(
            select(Meeting)
            .where(
                Meeting.council_id == council.id,
                Meeting.status == MeetingStatus.SCHEDULED,
                Meeting.starts_at > period.now,
                Meeting.starts_at <= period.now + AHEAD,
            )
            .order_by(Meeting.starts_at, Meeting.id)
        )
    )
    answered: set[int] = set()
    if meetings:
        answered = set(
            await session.scalars(
                select(MeetingInvite.meeting_id)
                .where(
                    MeetingInvite.meeting_id.in_([meeting.id for meeting in meetings]),
                    MeetingInvite.answered_at > period.since,
                )
                .distinct()
            )
        )
    news = MeetingNews()
    for meeting in meetings:
        counts = await service.counts(session, meeting.id)
        news.upcoming.append(
            UpcomingMeeting(
                meeting.title,
                meeting.starts_at,
                coming=counts.coming,
                guests=counts.guests,
                maybe=counts.maybe,
                fresh=period.first
                or meeting.created_at > period.since
                or meeting.starts_at > period.since + AHEAD
                or meeting.id in answered,
            )
        )
    return news


def write(t: Translator, news: MeetingNews, timezone: str) -> list[str]:
    lines = []
    for meeting in news.upcoming[:SHOWN]:
        coming = t.ngettext("{count} coming", "{count} coming", meeting.coming).format(
            count=t.number(meeting.coming)
        )
        if meeting.guests:
            coming += " " + t.ngettext(
                "(+{count} guest)", "(+{count} guests)", meeting.guests
            ).format(count=t.number(meeting.guests))
        maybe = t.ngettext("{count} maybe", "{count} maybe", meeting.maybe).format(
            count=t.number(meeting.maybe)
        )
        lines += [
            "• "
            + t._("“{title}”, {date}").format(
                title=meeting.title, date=t.moment(meeting.starts_at, timezone)
            ),
            "  " + t._("{coming}, {maybe}").format(coming=coming, maybe=maybe),
        ]
    lines += more(t, news.upcoming)
    return block(t, "📅", HEADER, lines)


SECTION = DigestSection("meetings", 30, gather, write)

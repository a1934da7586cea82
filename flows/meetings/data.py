"""What the meetings keep about a person, for /mydata."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from flows.engine import PersonalData, Retention, deleted
from flows.i18n import Translator
from storage.models import Meeting, MeetingInvite, Person


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


async def invitations_of(session: AsyncSession, person: Person) -> list[dict[str, Any]]:
    """Their answers to invitations: coming or not, guests, needs, attendance."""
    rows = await session.execute(
        select(MeetingInvite, Meeting)
        .join(Meeting, Meeting.id == MeetingInvite.meeting_id)
        .where(MeetingInvite.person_id == person.id)
        .order_by(Meeting.starts_at)
    )
    return [
        {
            "meeting": meeting.title,
            "starts_at": _iso(meeting.starts_at),
            "place": meeting.place,
            "answer": invite.rsvp.value,
            "guests": invite.guests,
            "needs": invite.needs,
            "answered_at": _iso(invite.answered_at),
            "attended": invite.attended,
        }
        for invite, meeting in rows
    ]


async def organised_by(session: AsyncSession, person: Person) -> list[dict[str, Any]]:
    meetings = await session.scalars(
        select(Meeting).where(Meeting.created_by == person.id).order_by(Meeting.starts_at)
    )
    return [{"meeting": m.title, "starts_at": _iso(m.starts_at)} for m in meetings]


def invitations_line(t: Translator, invitations: list[dict[str, Any]]) -> str | None:
    if not invitations:
        return None
    return t.ngettext(
        "Your answer to {count} meeting invitation",
        "Your answers to {count} meeting invitations",
        len(invitations),
    ).format(count=t.number(len(invitations)))


def organised_line(t: Translator, meetings: list[dict[str, Any]]) -> str | None:
    if not meetings:
        return None
    return t.ngettext(
        "{count} meeting you organised", "{count} meetings you organised", len(meetings)
    ).format(count=t.number(len(meetings)))


INVITATIONS = PersonalData("meetings", ("meeting_invites",), invitations_of, invitations_line)
ORGANISED = PersonalData("meetings_organised", ("meetings",), organised_by, organised_line)


async def past_meetings_answers(session: AsyncSession, before: datetime) -> int:
    """Who said they would come (and who came), once the meeting is long past."""
    old = select(Meeting.id).where(Meeting.ends_at < before)
    result = await session.execute(delete(MeetingInvite).where(MeetingInvite.meeting_id.in_(old)))
    return deleted(result)


RETENTION = (Retention("answers to past meetings", timedelta(days=365), past_meetings_answers),)

"""A council's meetings and who answered what, for `coupdepouce export meetings`.

First names only: no contact details, no Telegram ids. Times of the meetings are in the
council's time zone, with their offset; in a spreadsheet, every time is on the council's
clock, and answers and needs read as the residents chose them ("I'm coming", "Childcare").
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from flows.i18n import N_
from flows.meetings.service import ANSWERS, NEEDS
from flows.spreadsheet import Column
from storage.models import Council, Meeting, MeetingInvite, MeetingStatus, Person, Rsvp

ANSWER_FIELDS = ("first_name", "answer", "guests", "needs", "answered_at", "attended")
STATUS_LABELS = {
    MeetingStatus.SCHEDULED.value: N_("scheduled"),
    MeetingStatus.CANCELLED.value: N_("cancelled"),
}
# The answers as the residents gave them, on the buttons they tapped.
ANSWER_LABELS = {
    **{rsvp.value: label for rsvp, label in ANSWERS.items()},
    Rsvp.WAITING.value: N_("Waiting list"),
}
COLUMNS = (
    Column("meeting_id", N_("Meeting number")),
    Column("title", N_("Title")),
    Column("starts_at", N_("Start")),
    Column("ends_at", N_("End")),
    Column("place", N_("Place")),
    Column("status", N_("Status"), STATUS_LABELS),
    Column("first_name", N_("First name")),
    Column("answer", N_("Response"), ANSWER_LABELS),
    Column("guests", N_("Guests")),
    Column("needs", N_("Needs"), NEEDS),
    Column("answered_at", N_("Answered on")),
    Column("attended", N_("Attended")),
)


async def meetings(session: AsyncSession, council: Council) -> list[dict[str, Any]]:
    """One entry per meeting, by start, each with the answers in the order they came."""
    zone = ZoneInfo(council.timezone)
    query = (
        select(Meeting)
        .where(Meeting.council_id == council.id)
        .order_by(Meeting.starts_at, Meeting.id)
    )
    exported: dict[int, dict[str, Any]] = {
        meeting.id: {
            "meeting_id": meeting.id,
            "title": meeting.title,
            "starts_at": meeting.starts_at.astimezone(zone),
            "ends_at": meeting.ends_at.astimezone(zone),
            "place": meeting.place,
            "status": meeting.status.value,
            "answers": [],
        }
        for meeting in await session.scalars(query)
    }
    answers = await session.execute(
        select(MeetingInvite, Person.first_name)
        .join(Meeting, Meeting.id == MeetingInvite.meeting_id)
        .join(Person, Person.id == MeetingInvite.person_id)
        .where(Meeting.council_id == council.id, MeetingInvite.rsvp != Rsvp.INVITED)
        .order_by(MeetingInvite.answered_at.is_(None), MeetingInvite.answered_at, MeetingInvite.id)
    )
    for invite, first_name in answers:
        exported[invite.meeting_id]["answers"].append(
            {
                "first_name": first_name,
                "answer": invite.rsvp.value,
                "guests": invite.guests,
                "needs": list(invite.needs or []),
                "answered_at": invite.answered_at,
                "attended": invite.attended,
            }
        )
    return list(exported.values())


def rows(exported: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The meetings flattened for a spreadsheet: one row per answer, one row with empty
    answer columns for a meeting nobody answered."""
    return [
        {**{key: value for key, value in meeting.items() if key != "answers"}, **answer}
        for meeting in exported
        for answer in meeting["answers"] or [dict.fromkeys(ANSWER_FIELDS)]
    ]

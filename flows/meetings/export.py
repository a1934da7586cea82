"""A council's meetings and who answered what, for `coupdepouce export meetings`.

First names only: no contact details, no Telegram ids. Times of the meetings are in the
council's time zone, with their offset.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Council, Meeting, MeetingInvite, Person, Rsvp

ANSWER_FIELDS = ("first_name", "answer", "guests", "needs", "answered_at", "attended")


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
            "starts_at": meeting.starts_at.astimezone(zone).isoformat(),
            "ends_at": meeting.ends_at.astimezone(zone).isoformat(),
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
                "answered_at": _iso(invite.answered_at),
                "attended": invite.attended,
            }
        )
    return list(exported.values())


def rows(exported: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The meetings flattened for CSV: one row per answer, one row with empty answer columns
    for a meeting nobody answered."""
    flat = []
    for meeting in exported:
        fields = {key: value for key, value in meeting.items() if key != "answers"}
        for answer in meeting["answers"] or [dict.fromkeys(ANSWER_FIELDS)]:
            flat.append(
                {
                    **fields,
                    "first_name": answer["first_name"] or "",
                    "answer": answer["answer"] or "",
                    "guests": "" if answer["guests"] is None else answer["guests"],
                    "needs": ";".join(answer["needs"] or []),
                    "answered_at": answer["answered_at"] or "",
                    "attended": _yes_no(answer["attended"]),
                }
            )
    return flat


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _yes_no(value: bool | None) -> str:
    return "" if value is None else "yes" if value else "no"

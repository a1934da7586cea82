"""The meetings among the council's pages: each meeting, who answered what (with guests
and needs), and who came."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from flows.i18n import N_
from flows.meetings import export, service
from flows.sections import DashboardSection, Figure, Page, Visit
from flows.staff import ORGANISING
from storage.models import Council, Meeting, utcnow

RSVP_LABELS = {
    "coming": N_("Coming"),
    "maybe": N_("Maybe"),
    "declined": N_("Not coming"),
    "waiting": N_("Waiting list"),
}


async def meetings(v: Visit) -> Page:
    """The council's meetings, the latest first, with their answers."""
    exported = await export.meetings(v.session, v.council)
    by_id = {
        meeting.id: meeting
        for meeting in await v.session.scalars(
            select(Meeting).where(Meeting.council_id == v.council.id)
        )
    }
    listed = []
    for item in reversed(exported):
        meeting = by_id[item["meeting_id"]]
        groups: dict[str, list[dict[str, Any]]] = {key: [] for key in RSVP_LABELS}
        for answer in item["answers"]:
            if answer["answer"] in groups:
                groups[answer["answer"]].append(answer)
        listed.append(
            {
                "title": meeting.title,
                "when": v.t.moment(meeting.starts_at, v.council.timezone),
                "place": meeting.place,
                "capacity": meeting.capacity,
                "summary": service.counts_text(v.t, await service.counts(v.session, meeting.id)),
                "cancelled": item["status"] == "cancelled",
                "groups": [(v.t._(RSVP_LABELS[key]), groups[key]) for key in RSVP_LABELS],
                "attended": [a["first_name"] for a in item["answers"] if a["attended"]],
                "started": meeting.starts_at <= utcnow(),
            }
        )
    return Page(
        template="meetings.html", context={"meetings": listed, "needs_labels": service.NEEDS}
    )


async def figures(session: AsyncSession, council: Council) -> list[Figure]:
    to_come = await session.scalar(
        select(func.count()).where(Meeting.council_id == council.id, Meeting.starts_at > utcnow())
    )
    return [Figure(N_("Meetings to come"), int(to_come or 0))]


MEETINGS = DashboardSection("meetings", N_("Meetings"), ORGANISING, 30, meetings, figures=figures)

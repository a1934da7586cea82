"""The calls for talents among the council's pages: each call and who answered what."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from flows.i18n import N_
from flows.sections import DashboardSection, Figure, Page, Visit
from flows.staff import COORDINATING
from flows.talents import export as talent_export
from storage.models import Call, CallStatus, Council

ANSWER_LABELS = {
    "yes": N_("Can help"),
    "maybe": N_("Maybe"),
    "no": N_("Not this time"),
}
STATUS_LABELS = {
    CallStatus.OPEN: N_("open"),
    CallStatus.CLOSED: N_("closed"),
}


async def calls(v: Visit) -> Page:
    """The council's calls, the latest first, with the first names of those who answered."""
    rows = await talent_export.call_answers(v.session, v.council)
    found = list(
        await v.session.scalars(
            select(Call).where(Call.council_id == v.council.id).order_by(Call.id)
        )
    )
    listed = []
    for call, row in reversed(list(zip(found, rows, strict=True))):
        listed.append(
            {
                "title": call.title,
                "status": v.t._(STATUS_LABELS[call.status]),
                "deadline": v.t.moment(call.deadline, v.council.timezone),
                "needed": call.people_needed,
                "answers": [
                    (v.t._(label), [name for name in (row.get(key) or "").split(", ") if name])
                    for key, label in ANSWER_LABELS.items()
                ],
            }
        )
    return Page(template="calls.html", context={"calls": listed})


async def figures(session: AsyncSession, council: Council) -> list[Figure]:
    still_open = await session.scalar(
        select(func.count()).where(Call.council_id == council.id, Call.status == CallStatus.OPEN)
    )
    return [Figure(N_("Open calls"), int(still_open or 0))]


CALLS = DashboardSection("calls", N_("Calls for talents"), COORDINATING, 20, calls, figures=figures)

"""The consultations among the council's pages: each one's figures and charts, live while
it is open."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from flows.consultations import results, service
from flows.engine import Attachment
from flows.i18n import N_
from flows.sections import DashboardSection, Figure, Page, Route, Visit, whole_number
from flows.staff import ORGANISING
from storage.models import Consultation, ConsultationStatus, Council

STATUS_LABELS = {
    ConsultationStatus.SCHEDULED: N_("planned"),
    ConsultationStatus.OPEN: N_("open"),
    ConsultationStatus.CLOSED: N_("closed"),
}


async def results_of(
    session: AsyncSession, council: Council, consultation: Consultation
) -> Mapping[str, Any] | None:
    """The figures: stored once closed, computed live while open (an anonymous one's once
    enough people answered), none before opening."""
    return await service.figures(session, consultation, council)


async def consultations(v: Visit) -> Page:
    """The council's consultations, the latest first, with their figures."""
    found = list(
        await v.session.scalars(
            select(Consultation)
            .where(Consultation.council_id == v.council.id)
            .order_by(Consultation.opens_at.desc(), Consultation.id.desc())
        )
    )
    listed = []
    for consultation in found:
        figures = await results_of(v.session, v.council, consultation)
        charts = 0
        if figures is not None:
            charts = sum(1 for q in figures["questions"] if q["kind"] != "text")
        listed.append(
            {
                "id": consultation.id,
                "title": consultation.title,
                "status": consultation.status.value,
                "status_label": v.t._(STATUS_LABELS[consultation.status]),
                "closes": v.t.moment(consultation.closes_at, v.council.timezone),
                "summary": (
                    results.summary(
                        v.t,
                        consultation,
                        figures,
                        consultation.status == ConsultationStatus.CLOSED,
                    )
                    if figures is not None
                    else ""
                ),
                "charts": range(1, charts + 1),
            }
        )
    return Page(template="consultations.html", context={"consultations": listed})


async def chart(v: Visit) -> Attachment | None:
    """One question's chart, as an image."""
    consultation_id = whole_number(v.params.get("id"))
    consultation = (
        await v.session.get(Consultation, consultation_id) if consultation_id is not None else None
    )
    if consultation is None or consultation.council_id != v.council.id:
        return None
    figures = await results_of(v.session, v.council, consultation)
    files = (
        await asyncio.to_thread(results.chart_files, v.t, figures) if figures is not None else []
    )
    number = whole_number(v.params.get("number")) or 0
    if not 1 <= number <= len(files):
        return None
    return files[number - 1]


async def figures(session: AsyncSession, council: Council) -> list[Figure]:
    still_open = await session.scalar(
        select(func.count()).where(
            Consultation.council_id == council.id,
            Consultation.status == ConsultationStatus.OPEN,
        )
    )
    return [Figure(N_("Open consultations"), int(still_open or 0))]


CONSULTATIONS = DashboardSection(
    "consultations",
    N_("Consultations"),
    ORGANISING,
    40,
    consultations,
    figures=figures,
    routes=[Route("{id:\\d+}/chart-{number:\\d+}.png", chart)],
)

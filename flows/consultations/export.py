"""A council's consultations with their figures, for `coupdepouce export consultations`.

A closed consultation gives the figures kept at its closing; an open one, the figures so
far, computed now with the council's small-group threshold; a scheduled one (or one whose
time passed while the bot was down) is listed with no figures. Small neighbourhood groups
are merged or hidden as in the results posted in chat, and free texts are as there too:
in an anonymous consultation they name nobody; where the organiser chose named answers,
each starts with its author's first name. Opening and closing times are in the council's
time zone, with their offset.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from flows.consultations import sheet
from flows.consultations.service import figures
from flows.i18n import N_
from flows.spreadsheet import Column
from storage.models import Consultation, Council

COLUMNS = (
    Column("consultation_id", N_("Consultation number")),
    Column("consultation", N_("Consultation")),
    *sheet.COLUMNS,
)


async def consultations(session: AsyncSession, council: Council) -> list[dict[str, Any]]:
    """One entry per consultation, by opening time, with its figures (None: none yet)."""
    zone = ZoneInfo(council.timezone)
    query = (
        select(Consultation)
        .where(Consultation.council_id == council.id)
        .order_by(Consultation.opens_at, Consultation.id)
    )
    exported = []
    for consultation in list(await session.scalars(query)):
        results = await figures(session, consultation, council)
        exported.append(
            {
                "consultation_id": consultation.id,
                "title": consultation.title,
                "status": consultation.status.value,
                "anonymous": consultation.anonymous,
                "opens_at": consultation.opens_at.astimezone(zone),
                "closes_at": consultation.closes_at.astimezone(zone),
                "audience_size": consultation.audience_size,
                "results": results,
            }
        )
    return exported


def rows(exported: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The figures flattened for a spreadsheet: the rows of the results table that organisers
    get in chat, each prefixed by its consultation; one row with empty figure columns for a
    consultation with no figures yet."""
    flat = []
    for consultation in exported:
        fields = {
            "consultation_id": consultation["consultation_id"],
            "consultation": consultation["title"],
        }
        results = consultation["results"]
        flat += [{**fields, **row} for row in (sheet.rows(results) if results else [])] or [fields]
    return flat

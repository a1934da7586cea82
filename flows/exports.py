"""A council's records as tables, for `coupdepouce export` and the dashboard's CSV files."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from flows import spreadsheet
from flows.consultations import export as consultation_export
from flows.meetings import export as meeting_export
from flows.talents import export as talent_export
from storage.models import Council


async def records(session: AsyncSession, council: Council, kind: str) -> list[dict[str, Any]]:
    """The records, nested where they have parts (a meeting's answers): as JSON shows them."""
    if kind == "talents":
        return await talent_export.directory(session, council)
    if kind == "calls":
        return await talent_export.call_answers(session, council)
    if kind == "meetings":
        return await meeting_export.meetings(session, council)
    if kind == "consultations":
        return await consultation_export.consultations(session, council)
    raise ValueError(f"unknown export {kind!r}")


def rows(kind: str, exported: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records flattened to one row each, for CSV."""
    if kind == "meetings":
        return meeting_export.rows(exported)
    if kind == "consultations":
        return consultation_export.rows(exported)
    return exported


def csv_text(table: list[dict[str, Any]], line_end: str = "\n") -> str:
    """The rows as CSV with a header, safe to open in a spreadsheet; nothing for no rows."""
    return spreadsheet.records_text(table, line_end)

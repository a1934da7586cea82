"""A council's records as tables, for `coupdepouce export` and the dashboard's CSV files:
each capability declares its own (`Flow.exports`); this module only finds and writes them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from flows import spreadsheet
from flows.engine import Export, Flow
from storage.models import Council


def available(flows: Sequence[Flow]) -> dict[str, Export]:
    """The exports the capabilities declare, by kind, in the capabilities' order."""
    found: dict[str, Export] = {}
    for export in (export for flow in flows for export in flow.exports):
        if export.kind in found:
            raise ValueError(f"export {export.kind!r} declared twice")
        found[export.kind] = export
    return found


async def records(session: AsyncSession, council: Council, export: Export) -> list[dict[str, Any]]:
    """The records, nested where they have parts (a meeting's answers): as JSON shows them."""
    return await export.records(session, council)


def rows(export: Export, exported: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records flattened to one row each, for CSV."""
    return export.rows(exported) if export.rows else exported


def csv_text(table: list[dict[str, Any]], line_end: str = "\n") -> str:
    """The rows as CSV with a header, safe to open in a spreadsheet; nothing for no rows."""
    return spreadsheet.records_text(table, line_end)

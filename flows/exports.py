"""A council's records as tables, for `coupdepouce export` and the dashboard's downloads:
each capability declares its own (`Flow.exports`); this module only finds and writes them.

Three formats. JSON is for programs: the records as they are, nested where they have parts,
with stable English keys, machine values ("coming", true) and ISO 8601 timestamps with
their offset; it is the same whatever the council's language. CSV and XLSX are for people
opening them in a spreadsheet: one row per record (`Export.rows`), under the headers and
with the labels the export declares (`Export.columns`), in the council's language and time
zone, in its locale's conventions (see `flows.spreadsheet`).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from flows import spreadsheet
from flows.engine import Export, Flow
from flows.i18n import Translator
from storage.models import Council


class Format(enum.StrEnum):
    CSV = "csv"
    JSON = "json"
    XLSX = "xlsx"

    @property
    def content_type(self) -> str:
        return {
            Format.CSV: "text/csv",
            Format.JSON: "application/json",
            Format.XLSX: spreadsheet.XLSX_TYPE,
        }[self]


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
    """The records flattened to one row each, for a spreadsheet."""
    return export.rows(exported) if export.rows else exported


def sheet(export: Export, exported: list[dict[str, Any]]) -> spreadsheet.Sheet:
    """The records as a spreadsheet's table: under the columns the export declares, or, for
    one that declares none, under its rows' own keys."""
    flat = rows(export, exported)
    return spreadsheet.Sheet(export.columns, flat) if export.columns else spreadsheet.Sheet.of(flat)


def file(
    export: Export, exported: list[dict[str, Any]], format: Format, locale: str, timezone: str
) -> bytes:
    """The records as a file: JSON for programs; CSV or XLSX in the council's language
    (`locale`), with its moments on its clock (`timezone`)."""
    if format is Format.JSON:
        return (json_text(exported) + "\n").encode()
    table = sheet(export, exported)
    reader = spreadsheet.Reader(Translator(locale), timezone)
    if format is Format.XLSX:
        return spreadsheet.xlsx_bytes(table, reader, title=reader.t._(export.title))
    return spreadsheet.csv_bytes(table, reader)


def json_text(exported: list[dict[str, Any]]) -> str:
    """The records as JSON: moments and days in ISO 8601, moments with their offset."""
    return json.dumps(exported, ensure_ascii=False, indent=2, default=_iso)


def _iso(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")

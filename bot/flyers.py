"""Invitation cards for door-to-door flyers: a printable A4 PDF, eight cards a page.

Each card has the council's name, a QR code that opens the web chat with the card's code
(``{address}/?start={slug}&code={CODE}``), the code in large letters for typing it instead,
and one line on how to use it, in the council's language. The text uses DejaVu Sans (it
ships with matplotlib, which draws the consultation charts) for every script; Arabic is
shaped and put in visual order here, as the PDF has no text layout engine of its own.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Final
from urllib.parse import quote

import arabic_reshaper
import segno
from bidi import get_display
from fpdf import FPDF
from fpdf.enums import MethodReturnValue

from flows.i18n import N_, RTL_LOCALES, Translator
from flows.verification.service import shown

COLUMNS: Final = 2
ROWS: Final = 4
PAGE_WIDTH: Final = 210.0  # A4, in millimetres
PAGE_HEIGHT: Final = 297.0
CARD_WIDTH: Final = PAGE_WIDTH / COLUMNS
CARD_HEIGHT: Final = PAGE_HEIGHT / ROWS
PADDING: Final = 7.0
QR_SIZE: Final = 38.0
FONT: Final = "DejaVu"
CODE_FONT: Final = "Helvetica"  # the code is Latin letters and digits only
HOW_TO = N_(
    "Scan the QR code to join {council}'s chat: your answers will count. "
    "Or open {address} and send /verify {code}."
)


def chat_address(public_url: str, slug: str, code: str | None = None) -> str:
    """The web chat page that joins the council (and redeems the code, if one is given)."""
    address = f"{public_url.rstrip('/')}/?start={quote(slug)}"
    return f"{address}&code={quote(shown(code))}" if code else address


@contextmanager
def dejavu() -> Iterator[tuple[Path, Path]]:
    """The files of DejaVu Sans, regular and bold: they ship with matplotlib and have the
    letters of every language the bot speaks."""
    fonts = resources.files("matplotlib") / "mpl-data" / "fonts" / "ttf"
    with (
        resources.as_file(fonts / "DejaVuSans.ttf") as regular,
        resources.as_file(fonts / "DejaVuSans-Bold.ttf") as bold,
    ):
        yield regular, bold


@contextmanager
def a4_sheet(title: str, locale: str) -> Iterator[FPDF]:
    """An empty A4 document with no margins of its own, DejaVu Sans ready as FONT."""
    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.set_auto_page_break(auto=False)
    pdf.set_margin(0)
    pdf.set_title(title)
    pdf.set_lang(locale)
    pdf.set_creator("Coup de pouce")
    with dejavu() as (regular, bold):
        pdf.add_font(FONT, "", str(regular))
        pdf.add_font(FONT, "B", str(bold))
        yield pdf


def shaped(text: str) -> str:
    """Arabic letters in their joined forms: neither the PDF nor the picture shapes them."""
    return str(arabic_reshaper.reshape(text))


def visual(line: str, rtl: bool | None = None) -> str:
    """One line of shaped text in the order it is drawn, left to right. Its direction is the
    language's if given, else that of its first letter with a direction."""
    base = None if rtl is None else "R" if rtl else "L"
    return str(get_display(line, base_dir=base))


def cards(
    council_name: str, slug: str, locale: str, public_url: str, codes: Sequence[str]
) -> bytes:
    """The PDF: one card per code, cut lines between them."""
    t = Translator(locale)
    rtl = locale in RTL_LOCALES
    with a4_sheet(council_name, locale) as pdf:
        for index, code in enumerate(codes):
            place = index % (COLUMNS * ROWS)
            if place == 0:
                pdf.add_page()
                _cut_lines(pdf)
            x = (place % COLUMNS) * CARD_WIDTH
            y = (place // COLUMNS) * CARD_HEIGHT
            _card(pdf, t, rtl, council_name, slug, public_url, code, x, y)
    return bytes(pdf.output())


def _cut_lines(pdf: FPDF) -> None:
    pdf.set_draw_color(170, 170, 170)
    pdf.set_line_width(0.2)
    with pdf.local_context(dash_pattern={"dash": 2, "gap": 2}):
        for column in range(1, COLUMNS):
            pdf.line(column * CARD_WIDTH, 0, column * CARD_WIDTH, PAGE_HEIGHT)
        for row in range(1, ROWS):
            pdf.line(0, row * CARD_HEIGHT, PAGE_WIDTH, row * CARD_HEIGHT)


def _card(
    pdf: FPDF,
    t: Translator,
    rtl: bool,
    council_name: str,
    slug: str,
    public_url: str,
    code: str,
    x: float,
    y: float,
) -> None:
    inner = CARD_WIDTH - 2 * PADDING
    align = "R" if rtl else "L"
    pdf.set_text_color(11, 110, 79)
    pdf.set_font(FONT, "B", 12)
    _lines(pdf, council_name, x + PADDING, y + PADDING, inner, 5.5, rtl, align, max_lines=2)

    qr = segno.make(chat_address(public_url, slug, code), error="m")
    picture = io.BytesIO()
    qr.save(picture, kind="png", scale=8, border=2)
    picture.seek(0)
    top = y + PADDING + 12
    qr_x = x + CARD_WIDTH - PADDING - QR_SIZE if rtl else x + PADDING
    pdf.image(picture, x=qr_x, y=top, w=QR_SIZE, h=QR_SIZE)

    beside = inner - QR_SIZE - 4
    code_x = x + PADDING if rtl else x + PADDING + QR_SIZE + 4
    pdf.set_text_color(0, 0, 0)
    pdf.set_font(CODE_FONT, "B", 18)
    pdf.set_xy(code_x, top + 6)
    pdf.cell(beside, 10, shown(code), align="C")
    pdf.set_font(FONT, "", 8)
    how = t._(HOW_TO).format(
        council=council_name, address=chat_address(public_url, slug), code=shown(code)
    )
    _lines(pdf, how, code_x, top + 19, beside, 3.6, rtl, align, max_lines=6)


def _lines(
    pdf: FPDF,
    text: str,
    x: float,
    y: float,
    width: float,
    height: float,
    rtl: bool,
    align: str,
    max_lines: int,
) -> None:
    """Text wrapped to `width`, Arabic shaped and each line put in visual order."""
    logical = shaped(text) if rtl else text
    lines = pdf.multi_cell(width, height, logical, dry_run=True, output=MethodReturnValue.LINES)
    assert isinstance(lines, list)
    for number, line in enumerate(lines[:max_lines]):
        pdf.set_xy(x, y + number * height)
        pdf.cell(width, height, visual(line) if rtl else line, align=align)

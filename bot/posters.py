"""The council's invitation link, ready to print: a QR code picture with the council's name
above the code and the link written under it (PNG), and an A4 poster to put up (PDF) with
the name as its title, one line inviting residents in the council's language, the code
large in the middle and the link under it.

The text is DejaVu Sans, shaped and put in visual order as on the invitation cards (see
flyers.py). Names and links are never cut: they wrap, between words for text and after
``/ ? & =`` or before ``%`` for links, and their letters shrink down to a smallest size,
after which they take as many lines as they need.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

import segno
from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont

from bot.flyers import FONT, a4_sheet, dejavu, shaped, visual
from flows.i18n import N_, RTL_LOCALES, Translator

INVITATION = N_(
    "Scan this code with your phone to join the council's chat: ask for a hand, "
    "lend one, have your say."
)

GREEN: Final = (11, 110, 79)  # the invitation cards' title colour
BLACK: Final = (0, 0, 0)
WHITE: Final = (255, 255, 255)

# The picture, in pixels.
MODULE: Final = 10  # the side of one square of the code
QUIET_ZONE: Final = 4  # modules of white around the code, which readers need
MIN_WIDTH: Final = 720
SIDE: Final = 40  # white on either side of the text, and above and below it all
NAME_SIZES: Final = (44, 38, 32, 26)
LINK_SIZES: Final = (24, 20, 17, 14)

# The poster, in millimetres and points.
PAGE_WIDTH: Final = 210.0
PAGE_HEIGHT: Final = 297.0
MARGIN: Final = 20.0
LARGEST_CODE: Final = 150.0
TITLE_SIZES: Final = (36, 30, 24, 20)
INVITATION_SIZES: Final = (18, 16, 14)
URL_SIZES: Final = (14, 12, 10, 8)
POINT: Final = 25.4 / 72  # one point in millimetres
LEADING: Final = 1.3  # line height over letter size

Measure = Callable[[str], float]


def picture(council_name: str, link: str) -> bytes:
    """The PNG: the council's name, the QR code of the link, the link."""
    code = Image.open(io.BytesIO(_code_png(link))).convert("RGB")
    width = max(code.width, MIN_WIDTH)
    with dejavu() as (regular, bold):

        def font(path: Path, size: int) -> ImageFont.FreeTypeFont:
            # The text comes shaped and in visual order: no layout engine may redo it.
            return ImageFont.truetype(str(path), size, layout_engine=ImageFont.Layout.BASIC)

        name_size, name_lines = _fit(
            _words(shaped(council_name)),
            " ",
            NAME_SIZES,
            2,
            width - 2 * SIDE,
            lambda size: font(bold, size).getlength,
        )
        link_size, link_lines = _fit(
            _link_pieces(link),
            "",
            LINK_SIZES,
            4,
            width - 2 * SIDE,
            lambda size: font(regular, size).getlength,
        )
        name_height = round(name_size * LEADING)
        link_height = round(link_size * LEADING)
        top = SIDE + len(name_lines) * name_height
        bottom = top + code.height
        image = Image.new("RGB", (width, bottom + len(link_lines) * link_height + SIDE), WHITE)
        image.paste(code, ((width - code.width) // 2, top))
        draw = ImageDraw.Draw(image)
        name_font, link_font = font(bold, name_size), font(regular, link_size)
        for number, line in enumerate(name_lines):
            middle = SIDE + (number + 0.5) * name_height
            draw.text((width / 2, middle), visual(line), font=name_font, fill=GREEN, anchor="mm")
        for number, line in enumerate(link_lines):
            middle = bottom + (number + 0.5) * link_height
            draw.text((width / 2, middle), line, font=link_font, fill=BLACK, anchor="mm")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def poster(council_name: str, link: str, locale: str) -> bytes:
    """The PDF: one A4 page, centred, in the language's direction."""
    rtl = locale in RTL_LOCALES
    width = PAGE_WIDTH - 2 * MARGIN
    invitation = Translator(locale)._(INVITATION)
    with a4_sheet(council_name, locale) as pdf:
        pdf.add_page()
        title = _pdf_fit(pdf, "B", _words(shaped(council_name)), " ", TITLE_SIZES, 3, width)
        words = _pdf_fit(pdf, "", _words(shaped(invitation)), " ", INVITATION_SIZES, 4, width)
        url = _pdf_fit(pdf, "", _link_pieces(link), "", URL_SIZES, 4, width)
        y = MARGIN + 6
        y = _pdf_lines(pdf, title, "B", GREEN, y, visual)
        y = _pdf_lines(pdf, words, "", BLACK, y + 6, lambda line: visual(line, rtl))
        below = _height(url) + 6
        room = PAGE_HEIGHT - MARGIN - y - 10
        side = min(LARGEST_CODE, room - below)
        top = y + 10 + (room - side - below) / 2
        pdf.image(io.BytesIO(_code_png(link)), x=(PAGE_WIDTH - side) / 2, y=top, w=side, h=side)
        _pdf_lines(pdf, url, "", BLACK, top + side + 6, lambda line: line)
    return bytes(pdf.output())


def _code_png(link: str) -> bytes:
    out = io.BytesIO()
    segno.make(link, error="m").save(out, kind="png", scale=MODULE, border=QUIET_ZONE)
    return out.getvalue()


def _words(text: str) -> list[str]:
    """Break points between words: ordinary spaces only, so that the no-break spaces of
    French typography keep a colon with its word."""
    return [word for word in text.split(" ") if word]


def _link_pieces(link: str) -> list[str]:
    """Break points in a link: after / ? & = and before an escaped letter such as %20."""
    return re.findall(r"%[0-9A-Fa-f]{2}|[^%/?&=]*[/?&=]|[^%/?&=]+|%", link)


def _wrap(pieces: Sequence[str], joiner: str, width: float, measure: Measure) -> list[str]:
    """The pieces in lines no wider than `width`; a piece wider than a line on its own is
    broken between letters."""
    lines: list[str] = []
    line = ""
    for piece in pieces:
        longer = f"{line}{joiner}{piece}" if line else piece
        if measure(longer) <= width:
            line = longer
            continue
        if line:
            lines.append(line)
        while measure(piece) > width:
            cut = next(
                (end for end in range(len(piece) - 1, 1, -1) if measure(piece[:end]) <= width), 1
            )
            lines.append(piece[:cut])
            piece = piece[cut:]
        line = piece
    if line:
        lines.append(line)
    return lines


def _fit(
    pieces: Sequence[str],
    joiner: str,
    sizes: Sequence[int],
    max_lines: int,
    width: float,
    measure_at: Callable[[int], Measure],
) -> tuple[int, list[str]]:
    """The largest size at which the text takes at most `max_lines` lines; else the smallest
    size, on as many lines as it takes. Words are spread evenly over their lines, rather than
    leaving one alone on the last."""
    for size in sizes:
        measure = measure_at(size)
        lines = _wrap(pieces, joiner, width, measure)
        if len(lines) <= max_lines:
            break
    if joiner == " " and len(lines) > 1:
        narrow, wide = 0.0, width
        while wide - narrow > 1:
            middle = (narrow + wide) / 2
            if len(_wrap(pieces, joiner, middle, measure)) > len(lines):
                narrow = middle
            else:
                wide = middle
        lines = _wrap(pieces, joiner, wide, measure)
    return size, lines


def _pdf_fit(
    pdf: FPDF,
    style: str,
    pieces: Sequence[str],
    joiner: str,
    sizes: Sequence[int],
    max_lines: int,
    width: float,
) -> tuple[int, list[str]]:
    def measure_at(size: int) -> Measure:
        pdf.set_font(FONT, style, size)
        return pdf.get_string_width

    return _fit(pieces, joiner, sizes, max_lines, width, measure_at)


def _height(fitted: tuple[int, list[str]]) -> float:
    size, lines = fitted
    return len(lines) * size * POINT * LEADING


def _pdf_lines(
    pdf: FPDF,
    fitted: tuple[int, list[str]],
    style: str,
    colour: tuple[int, int, int],
    y: float,
    drawn: Callable[[str], str],
) -> float:
    """The lines centred on the page from `y` down; where they end."""
    size, lines = fitted
    pdf.set_font(FONT, style, size)
    pdf.set_text_color(*colour)
    height = size * POINT * LEADING
    for number, line in enumerate(lines):
        pdf.set_xy(MARGIN, y + number * height)
        pdf.cell(PAGE_WIDTH - 2 * MARGIN, height, drawn(line), align="C")
    return y + len(lines) * height

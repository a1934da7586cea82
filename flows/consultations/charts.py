"""One consultation question's result as a PNG bar chart, lettered for a phone screen.

Drawn with matplotlib's object-oriented API on an Agg canvas: no pyplot, no global
state, no display, so the bot's server process can render charts from any thread.

The layout is computed here rather than left to matplotlib: each option's text
(wrapped to the measured width it may use) sits above its bar, with its count and
percentage at the far end of the same line, so nothing overlaps and nothing is cut,
however long the text and whatever the number of options. Right-to-left locales get
the mirrored layout: text from the right, bars growing leftwards.

Arabic needs shaping (joined letter forms) and bidirectional reordering. Matplotlib
3.11 and later do both themselves (libraqm), and must then receive the text as
written; earlier versions draw characters one by one, left to right, so the text is
reshaped (``arabic_reshaper``) and reordered (``python-bidi``) before it is drawn.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import arabic_reshaper
from babel.numbers import format_decimal, format_percent
from bidi import get_display
from matplotlib import ft2font
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Rectangle

from flows.i18n import RTL_LOCALES

# Matplotlib lays text out with libraqm (shaping and bidi) from 3.11 on.
NATIVE_SHAPING = hasattr(ft2font, "__libraqm_version__")

WIDTH_IN = 7.2  # x DPI = 1080 px, the width phones display at full resolution
DPI = 150
_PT_PER_IN = 72.0
_WIDTH = WIDTH_IN * _PT_PER_IN  # the layout below is in points, from the top left
_MARGIN = 24.0
_CONTENT = _WIDTH - 2 * _MARGIN
_TOP, _BOTTOM = 22.0, 18.0
_AFTER_TITLE = 14.0
_LABEL_TO_BAR = 5.0
_BAR = 16.0
_BETWEEN_ROWS = 15.0
_BEFORE_NOTE = 4.0
_VALUE_GAP = 14.0  # between an option's text and its count
_LINE_PITCH = 1.3  # x font size
_ASCENT = 0.95  # x font size: DejaVu Sans rises 0.93 em above its baseline

# DejaVu Sans ships with matplotlib and has Latin, Arabic and the narrow no-break space.
_FAMILY = "DejaVu Sans"
TITLE_FONT = FontProperties(family=_FAMILY, weight="bold", size=18)
LABEL_FONT = FontProperties(family=_FAMILY, size=15)
VALUE_FONT = FontProperties(family=_FAMILY, weight="bold", size=15)
NOTE_FONT = FontProperties(family=_FAMILY, size=13)

BACKGROUND = "white"
INK = "#1f2933"
MUTED = "#5f6b7a"
BAR_COLOUR = "#4a7ab0"
TRACK_COLOUR = "#e7edf4"


@dataclass(frozen=True)
class Bar:
    """One option of the question and how many respondents chose it."""

    label: str  # the option's text, already in the reader's language
    count: int
    share: float  # 0..1 of the respondents to this question

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError(f"negative count: {self.count}")
        if not 0.0 <= self.share <= 1.0:  # also refuses NaN
            raise ValueError(f"share outside 0..1: {self.share}")


def bar_label(count: int, share: float, locale: str) -> str:
    """The text at the end of a bar: "12 (40 %)" in fr, "1,234 (40%)" in en."""
    return f"{format_decimal(count, locale=locale)} ({format_percent(share, locale=locale)})"


def shaped(text: str, *, native_shaping: bool | None = None) -> str:
    """Text as matplotlib should measure and wrap it: Arabic letters in their joined
    forms when matplotlib does not shape them itself, else the text unchanged."""
    if _native(native_shaping):
        return text
    return str(arabic_reshaper.reshape(text))


def visual(line: str, *, native_shaping: bool | None = None) -> str:
    """One wrapped line of shaped text in drawing order, left to right, when
    matplotlib does not reorder bidirectional text itself, else the line unchanged.

    The line's direction comes from its first letter, as libraqm decides it: "12 (40%)"
    reads the same in an Arabic chart as in a French one."""
    if _native(native_shaping):
        return line
    return str(get_display(line))


def _native(native_shaping: bool | None) -> bool:
    return NATIVE_SHAPING if native_shaping is None else native_shaping


@dataclass(frozen=True)
class _Text:
    top: float  # points from the top of the figure
    x: float  # points from the left
    text: str
    font: FontProperties
    colour: str
    align: str  # "left" or "right"


@dataclass(frozen=True)
class _Box:
    top: float
    x: float
    width: float
    height: float
    colour: str


def figure(question: str, bars: Sequence[Bar], footnote: str, locale: str) -> Figure:
    """The chart as a figure attached to its own Agg canvas (``render`` saves it)."""
    rtl = locale in RTL_LOCALES
    fig = Figure(figsize=(WIDTH_IN, 1.0), dpi=DPI, facecolor=BACKGROUND)
    canvas = FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()

    def width_of(text: str, font: FontProperties) -> float:
        width_px, _height, _descent = renderer.get_text_width_height_descent(
            text, font, ismath=False
        )
        return float(width_px) * _PT_PER_IN / DPI

    start = _WIDTH - _MARGIN if rtl else _MARGIN  # where text begins and bars grow from
    end = _MARGIN if rtl else _WIDTH - _MARGIN
    start_align, end_align = ("right", "left") if rtl else ("left", "right")
    texts: list[_Text] = []
    boxes: list[_Box] = []
    y = _TOP

    def lines(text: str, font: FontProperties, width: float, colour: str) -> int:
        nonlocal y
        wrapped = _wrap(shaped(text), width, lambda line: width_of(line, font))
        for line in wrapped:
            texts.append(_Text(y, start, visual(line), font, colour, start_align))
            y += _pitch(font)
        return len(wrapped)

    if lines(question, TITLE_FONT, _CONTENT, INK):
        y += _AFTER_TITLE
    for bar in bars:
        value = bar_label(bar.count, bar.share, locale)
        value_width = width_of(value, VALUE_FONT)
        texts.append(_Text(y, end, visual(value), VALUE_FONT, INK, end_align))
        row_top = y
        lines(bar.label, LABEL_FONT, _CONTENT - value_width - _VALUE_GAP, INK)
        y = max(y, row_top + _pitch(VALUE_FONT)) + _LABEL_TO_BAR
        boxes.append(_Box(y, _MARGIN, _CONTENT, _BAR, TRACK_COLOUR))
        if bar.share > 0:
            width = bar.share * _CONTENT
            boxes.append(_Box(y, start - width if rtl else start, width, _BAR, BAR_COLOUR))
        y += _BAR + _BETWEEN_ROWS
    y += _BEFORE_NOTE
    lines(footnote, NOTE_FONT, _CONTENT, MUTED)
    y += _BOTTOM

    height_in = math.ceil(y / _PT_PER_IN * DPI) / DPI  # a whole number of pixels
    fig.set_size_inches(WIDTH_IN, height_in)
    inches = fig.dpi_scale_trans

    def from_bottom(top: float) -> float:
        return height_in - top / _PT_PER_IN

    for box in boxes:
        fig.add_artist(
            Rectangle(
                (box.x / _PT_PER_IN, from_bottom(box.top + box.height)),
                box.width / _PT_PER_IN,
                box.height / _PT_PER_IN,
                transform=inches,
                facecolor=box.colour,
                edgecolor="none",
                linewidth=0,
            )
        )
    for text in texts:
        fig.text(
            text.x / _PT_PER_IN,
            # On a common baseline, Arabic and Latin line up whatever their heights.
            from_bottom(text.top + _ASCENT * text.font.get_size_in_points()),
            text.text,
            transform=inches,
            fontproperties=text.font,
            color=text.colour,
            horizontalalignment=text.align,
            verticalalignment="baseline",
            parse_math=False,  # "$5 or $10" is money, not mathematics
            usetex=False,
        )
    return fig


def render(question: str, bars: Sequence[Bar], footnote: str, locale: str) -> bytes:
    """A horizontal bar chart as PNG bytes, 1080 px wide: the question as title
    (wrapped), one bar per option in the given order (first at the top), each with its
    count and percentage written the ``locale`` way ("12 (40 %)" in fr), and the
    footnote (e.g. "35 respondents of 120") under the chart."""
    fig = figure(question, bars, footnote, locale)
    buffer = io.BytesIO()
    # print_png, unlike savefig, ignores rcParams (savefig.bbox, savefig.facecolor...).
    canvas = fig.canvas
    assert isinstance(canvas, FigureCanvasAgg)
    canvas.print_png(buffer, metadata={"Software": None})
    return buffer.getvalue()


def _pitch(font: FontProperties) -> float:
    return float(font.get_size_in_points()) * _LINE_PITCH


def _wrap(text: str, width: float, measure: Callable[[str], float]) -> list[str]:
    """Lines at most ``width`` points wide (as ``measure`` says), broken between words,
    and inside a word only when it is longer than a line; blank lines are dropped."""
    wrapped: list[str] = []
    for paragraph in text.splitlines():
        paragraph = " ".join(paragraph.split())
        if not paragraph:
            continue
        full = measure(paragraph)
        if full <= width:
            wrapped.append(paragraph)
            continue
        # A first guess from the paragraph's own mean character width, then narrower.
        chars = max(1, int(len(paragraph) * width / full))
        while True:
            candidate = textwrap.wrap(paragraph, chars)
            if chars == 1 or all(measure(line) <= width for line in candidate):
                break
            chars -= 1
        wrapped.extend(candidate)
    return wrapped

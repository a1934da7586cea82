"""A consultation question's result drawn as a PNG a phone shows at full width:
French and Arabic, long options, no respondents, nothing overlapping."""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from itertools import combinations
from pathlib import Path

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.transforms import Bbox
from PIL import Image

from flows.consultations import charts
from flows.consultations.charts import (
    BAR_COLOUR,
    TRACK_COLOUR,
    Bar,
    bar_label,
    figure,
    render,
    shaped,
    visual,
)

ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

QUESTION_FR = "Faut-il ouvrir le jardin partagé de la rue des Lilas le dimanche matin ?"
OPTIONS_FR = [
    ("Oui, tout à fait", 12),
    ("Plutôt oui, si les horaires d'ouverture du jardin sont élargis le week-end", 9),
    ("Plutôt non", 5),
    ("Non", 4),
    ("Sans avis", 0),
]
QUESTION_AR = "هل يجب فتح الحديقة المشتركة في شارع الليلك صباح يوم الأحد؟"
OPTIONS_AR = [
    ("نعم، بالتأكيد", 12),
    ("نعم إلى حد ما، بشرط توسيع ساعات فتح الحديقة المشتركة في نهاية الأسبوع", 9),
    ("لا إلى حد ما", 5),
    ("لا", 4),
    ("بدون رأي", 0),
]
LONG_OPTION = (
    "Proposition {n} : réaménager la placette devant l'école élémentaire avec des bancs, "
    "de l'ombre, des jeux pour les petits et un point d'eau, entre $5 et $10 par habitant"
)

UNBREAKABLE = "https://exemple.org/" + "sansespacenitiret" * 9  # wider than a line


def bars_of(options: list[tuple[str, int]]) -> list[Bar]:
    respondents = sum(count for _label, count in options)
    return [Bar(label, count, count / respondents) for label, count in options]


def twelve_long_bars() -> list[Bar]:
    bars = [Bar(LONG_OPTION.format(n=n), 100 * n, n / 78) for n in range(1, 12)]
    return [*bars, Bar(UNBREAKABLE, 0, 0.0)]


def image(png: bytes) -> Image.Image:
    assert png.startswith(PNG_SIGNATURE)
    picture = Image.open(io.BytesIO(png))
    picture.load()
    return picture


def rectangles(fig: Figure, colour: str) -> list[Rectangle]:
    return [
        child
        for child in fig.get_children()
        if isinstance(child, Rectangle) and child.get_facecolor() == to_rgba(colour)
    ]


def renderer_of(fig: Figure) -> RendererAgg:
    assert isinstance(fig.canvas, FigureCanvasAgg)
    return fig.canvas.get_renderer()


def drawn_boxes(fig: Figure) -> tuple[list[tuple[str, Bbox]], list[Bbox]]:
    """Each text with its extent on the canvas, and the bar tracks' extents."""
    renderer = renderer_of(fig)
    texts = [(text.get_text(), text.get_window_extent(renderer)) for text in fig.texts]
    tracks = [track.get_window_extent(renderer) for track in rectangles(fig, TRACK_COLOUR)]
    return texts, tracks


def test_a_five_option_chart_is_a_png_a_phone_shows_at_full_width() -> None:
    picture = image(render(QUESTION_FR, bars_of(OPTIONS_FR), "30 répondants sur 120", "fr"))

    width, height = picture.size
    assert width == 1080
    assert 500 < height < 1500
    assert picture.convert("RGB").getpixel((2, 2)) == (255, 255, 255)  # white background


def test_the_same_chart_gives_the_same_bytes() -> None:
    bars = bars_of(OPTIONS_FR)
    assert render(QUESTION_FR, bars, "30", "fr") == render(QUESTION_FR, bars, "30", "fr")
    assert b"Software" not in render(QUESTION_FR, bars, "30", "fr")


@pytest.mark.parametrize(
    ("count", "share", "locale", "expected"),
    [
        (12, 0.4, "fr", "12 (40 %)"),
        (1234, 0.4, "fr", "1 234 (40 %)"),
        (0, 0.0, "fr", "0 (0 %)"),
        (1234, 0.4, "en", "1,234 (40%)"),
        (12, 0.4, "ar", "12 (40%)"),
        (5, 1 / 3, "fr", "5 (33 %)"),
    ],
)
def test_bars_are_labelled_with_count_and_percentage_the_locale_way(
    count: int, share: float, locale: str, expected: str
) -> None:
    label = bar_label(count, share, locale)
    # Babel writes French with no-break spaces (narrow or not, depending on CLDR data).
    assert label.replace("\u202f", " ").replace("\xa0", " ") == expected


def test_text_never_overlaps_and_stays_on_the_canvas() -> None:
    for locale, question in (("fr", QUESTION_FR * 3), ("ar", QUESTION_AR * 3)):
        fig = figure(question, twelve_long_bars(), "4 200 répondants sur 9 000", locale)
        canvas = Bbox.from_bounds(0, 0, fig.bbox.width, fig.bbox.height)
        texts, tracks = drawn_boxes(fig)

        assert len(tracks) == 12
        for text, box in texts:
            assert canvas.contains(box.x0, box.y0) and canvas.contains(box.x1, box.y1), text
            assert not any(box.overlaps(track) for track in tracks), text
        for (first, box), (second, other) in combinations(texts, 2):
            assert not box.overlaps(other), (first, second)


def test_options_come_in_the_given_order_first_at_the_top() -> None:
    bars = bars_of(OPTIONS_FR)
    fig = figure(QUESTION_FR, bars, "30 répondants sur 120", "fr")
    renderer = renderer_of(fig)
    tops = {text.get_text(): text.get_window_extent(renderer).y1 for text in fig.texts}

    def top_of(whole: str) -> float:  # where its first (maybe only) line is drawn
        return next(top for text, top in tops.items() if whole.startswith(text))

    heights = [top_of(label) for label, _count in OPTIONS_FR]
    assert heights == sorted(heights, reverse=True)
    assert top_of(QUESTION_FR) > heights[0] > top_of("30 répondants sur 120")


def test_twelve_long_options_are_wrapped_not_cut() -> None:
    bars = twelve_long_bars()
    fig = figure("Quel aménagement pour la placette ?", bars, "4 200 répondants", "fr")
    drawn = " ".join(text.get_text() for text in fig.texts)

    assert "$5 et $10 par habitant" in drawn  # every word is there, dollars not as maths
    assert drawn.count("Proposition") == 11
    assert UNBREAKABLE in "".join(text.get_text() for text in fig.texts)  # split, not cut
    picture = image(render("Quel aménagement pour la placette ?", bars, "4 200", "fr"))
    assert picture.size[0] == 1080
    assert picture.size[1] > 2000  # grows with the options instead of squeezing them


def test_a_question_nobody_answered_still_renders() -> None:
    nobody = [Bar("Samedi 6 juin", 0, 0.0), Bar("Dimanche 7 juin", 0, 0.0)]

    picture = image(render("Quelle date pour la fête ?", nobody, "Aucun répondant", "fr"))
    empty = image(render("Quelle date pour la fête ?", [], "Aucun répondant", "fr"))

    assert picture.size[0] == empty.size[0] == 1080
    assert empty.size[1] < picture.size[1]
    assert [bar_label(bar.count, bar.share, "fr") for bar in nobody] == ["0 (0\xa0%)"] * 2


@pytest.mark.parametrize(("count", "share"), [(-1, 0.0), (1, -0.1), (1, 1.5), (1, math.nan)])
def test_impossible_bars_are_refused(count: int, share: float) -> None:
    with pytest.raises(ValueError, match=r"count|share"):
        Bar("Oui", count, share)


def test_an_arabic_chart_renders_mirrored_without_missing_glyphs() -> None:
    # pytest turns warnings into errors: a "Glyph … missing" warning fails this test.
    bars = bars_of(OPTIONS_AR)
    picture = image(render(QUESTION_AR, bars, "30 مشاركًا من أصل 120", "ar"))
    assert picture.size[0] == 1080

    fig = figure(QUESTION_AR, bars, "30 مشاركًا من أصل 120", "ar")
    counts = {bar_label(bar.count, bar.share, "ar") for bar in bars}
    for text in fig.texts:  # counts at the left end, everything else from the right
        expected = "left" if text.get_text() in counts else "right"
        assert text.get_horizontalalignment() == expected, text.get_text()
    right_edges = {
        round(box.get_x() + box.get_width(), 6)
        for box in rectangles(fig, TRACK_COLOUR) + rectangles(fig, BAR_COLOUR)
    }
    assert len(right_edges) == 1  # tracks and bars all grow from the right margin


def test_arabic_is_reshaped_and_reordered_when_matplotlib_cannot() -> None:
    raw = "ما رأيك في الحديقة؟"

    joined = shaped(raw, native_shaping=False)
    drawn = visual(joined, native_shaping=False)

    assert joined != raw and len(joined) == len(raw)
    assert all("\ufe70" <= char <= "\ufeff" for char in joined if char not in " ؟")
    assert drawn == joined[::-1]  # one right-to-left run: drawn from its end
    # Matplotlib 3.11+ shapes and reorders with libraqm: reshaping again would garble.
    assert shaped(raw, native_shaping=True) == visual(raw, native_shaping=True) == raw
    assert visual(bar_label(12, 0.4, "ar"), native_shaping=False) == "12 (40%)"


def test_pre_shaped_arabic_has_every_glyph_in_the_font(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(charts, "NATIVE_SHAPING", False)
    fig = figure(QUESTION_AR, bars_of(OPTIONS_AR), "30 مشاركًا من أصل 120", "ar")

    assert any("\ufe70" <= char <= "\ufeff" for text in fig.texts for char in text.get_text())
    image(render(QUESTION_AR, bars_of(OPTIONS_AR), "30 مشاركًا من أصل 120", "ar"))


def test_charts_render_side_by_side_in_threads() -> None:
    jobs = [
        (QUESTION_FR, bars_of(OPTIONS_FR), "30", "fr"),
        (QUESTION_AR, bars_of(OPTIONS_AR), "30", "ar"),
    ] * 4
    alone = [render(*job) for job in jobs[:2]]

    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda job: render(*job), jobs))

    assert together == alone * 4


def test_a_fresh_process_with_an_empty_matplotlib_cache_renders_without_warnings(
    tmp_path: Path,
) -> None:
    script = (
        "from flows.consultations.charts import Bar, render\n"
        "png = render('سؤال؟', [Bar('نعم', 1, 1.0)], 'مشارك واحد', 'ar')\n"
        "assert png.startswith(b'\\x89PNG')\n"
    )
    environment = {**os.environ, "MPLCONFIGDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}

    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr
    assert any(tmp_path.glob("fontlist-*.json"))  # the font cache was built there

"""The command line a deployer scripts against: councils, roles, invitations, and clear
one-line errors for bad settings."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import unicodedata
from pathlib import Path
from urllib.parse import quote, unquote

import aiohttp
import pytest
import segno
from PIL import Image
from pypdf import PdfReader

from bot.channels.whatsapp.payloads import join_text
from bot.channels.whatsapp.templates import TEMPLATES
from bot.posters import INVITATION
from storage.models import Council
from tests.conftest import whatsapp_settings
from tests.emulator import BotApiEmulator
from tests.helpers import AR, FR, run_cli
from tests.whatsapp_emulator import CloudApiEmulator

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
A4_IN_POINTS = (595.28, 841.89)


def assert_a_printable_qr_code(picture: Path, link: str) -> None:
    """The PNG holds the link's QR code, module for module, with its quiet zone; the council's
    name is written above it and the link under it, no text running off the edges."""
    assert picture.read_bytes().startswith(PNG_SIGNATURE)
    image = Image.open(picture).convert("L")
    code = segno.make(link, error="m")
    bare_width, bare_height = code.symbol_size(scale=10, border=4)
    assert image.width >= bare_width and image.height > bare_height

    def inked(box: tuple[int, int, int, int]) -> bool:
        darkest = image.crop(box).getextrema()[0]
        assert isinstance(darkest, int)
        return darkest < 128

    # The top left finder pattern: the first row with a dark run of seven modules of at least
    # seven pixels (no letter has such a long stroke).
    for top in range(image.height):
        pixels = image.crop((0, top, image.width, top + 1)).tobytes()
        row = "".join("x" if value < 128 else " " for value in pixels)
        runs = [run for run in row.split() if len(run) >= 49]
        if runs:
            left, length = row.index(runs[0]), len(runs[0])
            break
    else:
        pytest.fail("no QR code in the picture")
    module = length // 7
    assert length == 7 * module
    size = len(code.matrix)
    for y, modules in enumerate(code.matrix):
        for x, black in enumerate(modules):
            centre = (left + x * module + module // 2, top + y * module + module // 2)
            assert inked((*centre, centre[0] + 1, centre[1] + 1)) == bool(black), (x, y)
    quiet, side = 4 * module, size * module
    above, below = top - quiet, top + side + quiet
    assert not inked((left - quiet, above, left + side + quiet, top))
    assert not inked((left - quiet, top + side, left + side + quiet, below))
    assert inked((0, 0, image.width, above)), "no name above the code"
    assert inked((0, below, image.width, image.height)), "no link under the code"
    width, height = image.size
    for edge in [(0, 0, width, 2), (0, height - 2, width, height), (0, 0, 2, height)]:
        assert not inked(edge)
    assert not inked((width - 2, 0, width, height))


def poster_text(poster: Path) -> str:
    """The text of the poster, which must be a single A4 page."""
    assert poster.read_bytes().startswith(b"%PDF-")
    [page] = PdfReader(poster).pages
    assert (float(page.mediabox.width), float(page.mediabox.height)) == pytest.approx(A4_IN_POINTS)
    assert len(page.images) == 1  # the QR code
    return page.extract_text()


def words(text: str) -> str:
    """Text compared word for word: letters in their plain forms (Arabic as written, not as
    shaped, without its vowel marks), any run of spaces or line breaks as one space."""
    plain = unicodedata.normalize("NFKC", text)
    return " ".join("".join(c for c in plain if not unicodedata.combining(c)).split())


def holds_link(text: str, link: str) -> bool:
    """The link is written whole, over as many lines as it takes."""
    return link in "".join(text.split())


def assert_one_clear_line(stderr: str, *expected: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("coupdepouce: error: ")
    for fragment in expected:
        assert fragment in lines[0], lines[0]


async def test_council_add_and_list(database_url: str) -> None:
    env = {"DATABASE_URL": database_url}
    code, out, err = await run_cli(
        "council", "add", "quartier-nord", "--name", "Conseil citoyen Quartier Nord", env=env
    )
    assert code == 0, err
    code, out, err = await run_cli(
        "council", "add", "centre", "--name", "Conseil du Centre", "--locale", "ar", env=env
    )
    assert code == 0, err
    code, out, err = await run_cli("council", "keep", "centre", "6", env=env)
    assert (code, out.strip()) == (0, "council centre keeps silent members for 6 months"), err
    code, out, _ = await run_cli("council", "list", env=env)
    assert out.splitlines() == [  # by name
        "quartier-nord\tConseil citoyen Quartier Nord\tEurope/Paris\tfr\t"
        "silent members kept 24 months",
        "centre\tConseil du Centre\tEurope/Paris\tar\tsilent members kept 6 months",
    ]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["council", "add", "Quartier Nord!", "--name", "x"], "slug"),
        (["council", "add", "nord", "--name", "x", "--timezone", "Mars/Olympus"], "time zone"),
        (["council", "add", "nord", "--name", "x", "--locale", "klingon"], "language"),
        (["council", "add", "quartier-nord", "--name", "again"], "already exists"),
        (["role", "grant", "nowhere", "123", "coordinator"], "no council"),
        (["role", "grant", "quartier-nord", "123", "mayor"], "coordinator or organiser"),
        (["invite", "nowhere"], "no council"),
        (["council", "keep", "quartier-nord", "500"], "0 (keep for ever) to 120 months"),
        (["council", "keep", "nowhere", "12"], "no council"),
        (["invite", "quartier-nord"], "TELEGRAM_BOT_USERNAME"),
    ],
)
async def test_mistakes_get_one_clear_line(
    database_url: str, council: Council, args: list[str], expected: str
) -> None:
    env = {"DATABASE_URL": database_url, "TELEGRAM_BOT_TOKEN": "", "TELEGRAM_BOT_USERNAME": ""}
    code, _out, err = await run_cli(*args, env=env)
    assert code == 2
    assert_one_clear_line(err, expected)


async def test_invite_prints_the_deep_link_and_writes_a_qr_code(
    database_url: str, council: Council, tmp_path: Path
) -> None:
    poster = tmp_path / "affiche.png"
    code, out, err = await run_cli(
        "invite",
        "quartier-nord",
        "--qr",
        str(poster),
        env={"DATABASE_URL": database_url, "TELEGRAM_BOT_USERNAME": "conseil_nord_bot"},
    )
    assert code == 0, err
    link = "https://t.me/conseil_nord_bot?start=quartier-nord"
    assert out.splitlines() == [link, f"QR code written to {poster}"]
    assert_a_printable_qr_code(poster, link)


async def test_invite_writes_an_a4_poster_in_the_council_language(
    database_url: str, council: Council, tmp_path: Path
) -> None:
    env = {
        "DATABASE_URL": database_url,
        "TELEGRAM_BOT_USERNAME": "conseil_nord_bot",
        "PUBLIC_URL": "https://coupdepouce.example.org",
    }
    picture, poster = tmp_path / "affiche.png", tmp_path / "affiche.pdf"
    code, out, err = await run_cli(
        "invite", "quartier-nord", "--poster", str(poster), "--qr", str(picture), env=env
    )
    assert code == 0, err
    link = "https://t.me/conseil_nord_bot?start=quartier-nord"
    assert out.splitlines() == [
        link,
        f"QR code written to {picture}",
        f"poster written to {poster}",
    ]
    assert_a_printable_qr_code(picture, link)
    text = poster_text(poster)
    assert words(council.name) in words(text)
    assert words(FR._(INVITATION)) in words(text)
    assert holds_link(text, link)

    # The web chat's address, in Arabic, for the talent directory.
    code, out, err = await run_cli(
        "invite",
        "quartier-nord",
        "--web",
        "--talents",
        "--language",
        "ar",
        "--poster",
        str(poster),
        env=env,
    )
    assert code == 0, err
    link = out.splitlines()[0]
    assert link.startswith("https://coupdepouce.example.org/?start=quartier-nord")
    text = poster_text(poster)
    assert words(AR._(INVITATION)) in words(text)
    assert words(FR._(INVITATION)) not in words(text)
    assert words(council.name) in words(text) and holds_link(text, link)

    # A WhatsApp link, whose message makes it long: it wraps, whole, on the poster and under
    # the picture's code.
    whatsapp = env | {"TELEGRAM_BOT_TOKEN": "", "WHATSAPP_NUMBER": "+33 6 12 34 56 78"}
    code, out, err = await run_cli(
        "invite",
        "quartier-nord",
        "--whatsapp",
        "--language",
        "ar",
        "--poster",
        str(poster),
        "--qr",
        str(picture),
        env=whatsapp,
    )
    assert code == 0, err
    link = out.splitlines()[0]
    assert link == "https://wa.me/33612345678?text=" + quote(join_text(AR, "quartier-nord"))
    assert len(link) > 200
    assert holds_link(poster_text(poster), link)
    assert_a_printable_qr_code(picture, link)


async def test_a_poster_or_picture_that_cannot_be_written_is_one_line(
    database_url: str, council: Council, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": database_url, "TELEGRAM_BOT_USERNAME": "conseil_nord_bot"}
    missing = tmp_path / "no-such-folder" / "affiche.pdf"
    code, _out, err = await run_cli("invite", "quartier-nord", "--poster", str(missing), env=env)
    assert code == 2
    assert_one_clear_line(err, f"cannot write {missing}: No such file or directory")
    code, _out, err = await run_cli("invite", "quartier-nord", "--qr", str(tmp_path), env=env)
    assert code == 2
    assert_one_clear_line(err, f"cannot write {tmp_path}: Is a directory")
    code, _out, err = await run_cli(
        "invite",
        "quartier-nord",
        "--codes",
        "3",
        "--pdf",
        str(tmp_path / "cards.pdf"),
        "--poster",
        str(tmp_path / "affiche.pdf"),
        env=env,
    )
    assert code == 2
    assert_one_clear_line(err, "choose one")
    assert not {"cards.pdf", "affiche.pdf"} & set(await asyncio.to_thread(os.listdir, tmp_path))


async def test_invite_asks_the_bot_api_for_the_name(
    database_url: str, council: Council, emulator: BotApiEmulator
) -> None:
    code, out, err = await run_cli(
        "invite",
        "quartier-nord",
        env={
            "DATABASE_URL": database_url,
            "TELEGRAM_BOT_TOKEN": "123456:TEST-token",
            "TELEGRAM_API_URL": emulator.url,
            "TELEGRAM_BOT_USERNAME": "",
        },
    )
    assert code == 0, err
    assert out.strip() == f"https://t.me/{emulator.bot_username}?start=quartier-nord"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"TELEGRAM_BOT_TOKEN": ""}, "no messenger configured: set TELEGRAM_BOT_TOKEN"),
        (
            {"WHATSAPP_TOKEN": "EAAG-token", "WHATSAPP_PHONE_NUMBER_ID": "100200300"},
            "WHATSAPP_APP_SECRET and WHATSAPP_VERIFY_TOKEN",
        ),
        ({"WHATSAPP_PHONE_NUMBER_ID": "my-number"}, "WHATSAPP_PHONE_NUMBER_ID"),
        ({"WHATSAPP_API_URL": "graph.facebook.com"}, "WHATSAPP_API_URL"),
        ({"WHATSAPP_RATE": "0"}, "WHATSAPP_RATE"),
        ({"WHATSAPP_NUMBER": "call me"}, "WHATSAPP_NUMBER"),
        ({"DATABASE_URL": ""}, "DATABASE_URL"),
        ({"DATABASE_URL": "coupdepouce.db"}, "DATABASE_URL"),
        ({"DATABASE_URL": "mysql://root@localhost/cdp"}, "DATABASE_URL"),
        (
            {"DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:9/none"},
            "cannot open the database",
        ),
        ({"HTTP_PORT": "eighty"}, "HTTP_PORT"),
        ({"WEBHOOK_URL": "https://bot.example.org/hook"}, "WEBHOOK_SECRET"),
        ({"WEBHOOK_URL": "https://x.org/h", "WEBHOOK_SECRET": "has spaces"}, "WEBHOOK_SECRET"),
        ({"ADMIN_TELEGRAM_IDS": "12,abc"}, "ADMIN_TELEGRAM_IDS"),
        ({"TELEGRAM_API_URL": "api.telegram.org"}, "TELEGRAM_API_URL"),
        ({"PUBLIC_URL": "bot.example.org"}, "PUBLIC_URL"),
        ({"DASHBOARD_LINK_MINUTES": "0"}, "DASHBOARD_LINK_MINUTES"),
        ({"DASHBOARD_SESSION_HOURS": "forever"}, "DASHBOARD_SESSION_HOURS"),
    ],
)
async def test_bad_settings_stop_run_with_one_line(
    database_url: str, env: dict[str, str], expected: str, tmp_path: Path
) -> None:
    base = {"DATABASE_URL": database_url, "TELEGRAM_BOT_TOKEN": "123456:TEST-token"}
    code, _out, err = await run_cli("run", env=base | env)
    assert code == 2
    assert_one_clear_line(err, expected)


async def test_run_serves_residents_until_stopped(
    database_url: str, council: Council, emulator: BotApiEmulator
) -> None:
    """`coupdepouce run` as a deployer starts it, against a self-hosted Bot API server."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        env={
            **os.environ,
            "DATABASE_URL": database_url,
            "TELEGRAM_BOT_TOKEN": "123456:TEST-token",
            "TELEGRAM_API_URL": emulator.url,
            "HTTP_PORT": "0",
        },
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        amina = emulator.resident(6001, language_code="fr")
        amina.send("/start quartier-nord")
        consent = await amina.next_message(timeout=30)
        assert "Conseil citoyen Quartier Nord" in (consent.text or "")
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, err.decode()
    assert "Traceback" not in err.decode()


async def test_demo_prints_where_to_go_and_serves_it(database_url: str) -> None:
    """`coupdepouce demo` seeds the demo council and prints the three addresses to open."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "demo",
        env={**os.environ, "DATABASE_URL": database_url, "HTTP_PORT": "0"},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        printed: dict[str, str] = {}
        while "dashboard" not in printed:
            line = (await asyncio.wait_for(process.stdout.readline(), timeout=60)).decode()
            assert line, "the demo stopped before printing its addresses"
            if "http://" in line:
                label, _, url = line.strip().partition("http://")
                printed[label.rstrip(": ").removeprefix("as ").removeprefix("the ")] = (
                    "http://" + url
                )
        assert printed["a resident"].endswith("/?start=demo")
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
            async with client.get(printed["a resident"]) as page:
                assert page.status == 200
            async with client.get(printed["coordinator"]) as page:
                assert page.status == 200 and '<html lang="fr"' in await page.text()
            async with client.get(printed["dashboard"]) as page:
                assert page.status == 200  # the one-time link's sign-in page
            # The printed address makes a fresh one-time link at each visit: it never expires.
            assert printed["dashboard"].endswith("/demo/dashboard")
            links = []
            for _visit in range(2):
                async with client.get(printed["dashboard"], allow_redirects=False) as page:
                    assert page.status == 302
                    links.append(page.headers["Location"])
            assert all("/dashboard/login/" in link for link in links)
            assert links[0] != links[1]
    finally:
        process.send_signal(signal.SIGINT)
        _out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, err.decode()
    assert "Traceback" not in err.decode()
    # Start-up says what runs and where in a handful of lines: migrations and jobs added are
    # told at DEBUG only.
    logged = err.decode().splitlines()
    assert len(logged[: next(i for i, line in enumerate(logged) if "web server on" in line)]) <= 4
    assert not [line for line in logged if "alembic" in line or "apscheduler" in line], logged


async def test_invite_on_whatsapp_prints_a_wa_me_link_that_asks_to_join(
    database_url: str, council: Council, whatsapp: CloudApiEmulator, tmp_path: Path
) -> None:
    poster = tmp_path / "affiche-whatsapp.png"
    env = {"DATABASE_URL": database_url, "TELEGRAM_BOT_TOKEN": ""}
    # The number asked from the Graph API, as Meta shows it ("+33 7 57 00 00 00").
    code, out, err = await run_cli(
        "invite",
        "quartier-nord",
        "--whatsapp",
        "--qr",
        str(poster),
        env=env | {key.upper(): str(value) for key, value in whatsapp_settings(whatsapp).items()},
    )
    assert code == 0, err
    link = out.splitlines()[0]
    assert link.startswith("https://wa.me/33757000000?text=")
    assert unquote(link.partition("?text=")[2]) == join_text(FR, "quartier-nord")
    assert poster.read_bytes().startswith(PNG_SIGNATURE)
    # In Arabic, with the number given.
    code, out, err = await run_cli(
        "invite",
        "quartier-nord",
        "--whatsapp",
        "--language",
        "ar",
        env=env | {"WHATSAPP_NUMBER": "+33 6 12 34 56 78"},
    )
    assert code == 0, err
    assert unquote(out.strip().partition("?text=")[2]) == join_text(AR, "quartier-nord")
    assert out.startswith("https://wa.me/33612345678?text=")
    code, _out, err = await run_cli("invite", "quartier-nord", "--whatsapp", env=env)
    assert code == 2
    assert_one_clear_line(err, "WHATSAPP_NUMBER")


async def test_whatsapp_templates_are_printed_and_submitted(
    database_url: str, whatsapp: CloudApiEmulator
) -> None:
    code, out, err = await run_cli("whatsapp", "templates", env={"DATABASE_URL": database_url})
    assert code == 0, err
    printed = json.loads(out)
    assert {(t["name"], t["language"]) for t in printed} == {
        (template.name, locale) for template in TEMPLATES for locale in ("fr", "en", "ar")
    }
    whatsapp.templates.clear()
    whatsapp.auto_approve = False
    settings = {key.upper(): str(value) for key, value in whatsapp_settings(whatsapp).items()}
    code, out, err = await run_cli(
        "whatsapp", "templates", "--submit", env={"DATABASE_URL": database_url} | settings
    )
    assert code == 0, err
    assert len(out.splitlines()) == len(printed)
    assert all(line.endswith(": PENDING") for line in out.splitlines()), out
    assert len(whatsapp.templates) == len(printed)
    assert whatsapp.templates[("coupdepouce_meeting", "fr")].status == "PENDING"


async def test_a_coordinator_is_named_by_whatsapp_number(
    database_url: str, council: Council
) -> None:
    code, _out, err = await run_cli(
        "role",
        "grant",
        "quartier-nord",
        "+33 6 12 34 56 78",
        "coordinator",
        "--channel",
        "whatsapp",
        env={"DATABASE_URL": database_url},
    )
    assert code == 0, err
    code, _out, err = await run_cli(
        "role",
        "grant",
        "quartier-nord",
        "06 12",
        "coordinator",
        "--channel",
        "whatsapp",
        env={"DATABASE_URL": database_url},
    )
    assert code == 2
    assert_one_clear_line(err, "international form")


async def test_run_serves_a_council_on_whatsapp_alone(
    database_url: str, council: Council, whatsapp: CloudApiEmulator
) -> None:
    """No Telegram token: `run` serves WhatsApp's webhook, and residents join there."""
    settings = {key.upper(): str(value) for key, value in whatsapp_settings(whatsapp).items()}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        env={
            **os.environ,
            **settings,
            "DATABASE_URL": database_url,
            "TELEGRAM_BOT_TOKEN": "",
            "HTTP_PORT": "0",
        },
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        while True:
            line = (await asyncio.wait_for(process.stderr.readline(), timeout=60)).decode()
            assert line, "run stopped before serving"
            if "web server on http://" in line:
                whatsapp.webhook_url = line.strip().rpartition(" ")[2] + "/whatsapp"
                break
        amina = whatsapp.user("33612345001", name="Amina")
        assert await amina.send(join_text(FR, "quartier-nord")) == 200
        consent = await amina.next_message(timeout=30)
        assert "Conseil citoyen Quartier Nord" in (consent.text or "")
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, err.decode()
    assert "Traceback" not in err.decode()


@pytest.mark.parametrize("command", ["demo", "run"])
async def test_a_port_in_use_stops_at_once_in_one_line(command: str, tmp_path: Path) -> None:
    """Before migrating or seeding anything: the database file is never created."""
    database = tmp_path / "fresh.db"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _out, err = await run_cli(
            command,
            env={
                "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
                "HTTP_PORT": str(port),
                "TELEGRAM_BOT_TOKEN": "123456:TEST-token",
            },
        )
    assert code == 2
    assert err.strip() == f"coupdepouce: error: port {port} is in use: set HTTP_PORT"
    assert not database.exists()


async def test_help_is_plain_wrapped_between_words_and_lists_the_settings_read() -> None:
    helps = {
        args: await run_cli(*args, "--help", env={"COLUMNS": "60"})
        for args in [(), ("run",), ("demo",), ("export",), ("invite",), ("council", "keep")]
    }
    for args, (code, out, err) in helps.items():
        assert code == 0, (args, err)
        assert "<bool>" not in out, args
        assert "╭" not in out, args  # no boxes to break a line inside
        assert max(len(line) for line in out.splitlines()) <= 60, args
    words = " ".join(helps[("export",)][1].split())
    assert "its consultations with their figures" in words
    settings_of_run = " ".join(helps[("run",)][1].split())
    for name in ("DATABASE_URL", "TELEGRAM_BOT_TOKEN", "WHATSAPP_TOKEN", "DISPATCH_RATE"):
        assert name in settings_of_run
    settings_of_demo = " ".join(helps[("demo",)][1].split())
    assert "DATABASE_URL, HTTP_HOST, HTTP_PORT" in settings_of_demo
    assert "TELEGRAM_BOT_TOKEN" not in settings_of_demo

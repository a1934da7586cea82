"""The command line a deployer scripts against: councils, roles, invitations, and clear
one-line errors for bad settings."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path
from urllib.parse import unquote

import aiohttp
import pytest

from bot.channels.whatsapp.payloads import join_text
from bot.channels.whatsapp.templates import TEMPLATES
from storage.models import Council
from tests.conftest import whatsapp_settings
from tests.emulator import BotApiEmulator
from tests.helpers import AR, FR, run_cli
from tests.whatsapp_emulator import CloudApiEmulator

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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
    assert out.splitlines()[0] == "https://t.me/conseil_nord_bot?start=quartier-nord"
    assert poster.read_bytes().startswith(PNG_SIGNATURE)


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

"""Fixtures: a fresh database per test (SQLite, or PostgreSQL when TEST_POSTGRES_URL is set),
the Bot API emulator, and the real application started against them."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import CoupDePouce
from bot.dispatcher import Limits
from bot.settings import Settings, load_settings
from flows.councils import create as create_council
from flows.engine import Flow
from flows.registry import FLOWS
from storage import db
from storage.models import Council
from tests.emulator import BotApiEmulator
from tests.whatsapp_emulator import CloudApiEmulator

SHARED_TELEGRAM = Path(__file__).resolve().parents[2] / "shared" / "telegram"
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL")
TEST_TOKEN = "123456:TEST-token"
WA_PHONE_NUMBER_ID = "100200300"
WA_ACCOUNT_ID = "900800700"
WA_TOKEN = "EAAG-test-token"
WA_APP_SECRET = "test-app-secret"
WA_VERIFY_TOKEN = "a-phrase-of-our-own"
log = logging.getLogger(__name__)
_counter = itertools.count()

requires_postgres = pytest.mark.skipif(POSTGRES_URL is None, reason="TEST_POSTGRES_URL is not set")


def pytest_report_header() -> str:
    if POSTGRES_URL is None:
        return "database: SQLite"
    return f"database: PostgreSQL {make_url(POSTGRES_URL).render_as_string()}"


def _pg_dsn(url: str, database: str | None = None) -> str:
    sa_url = make_url(url)
    if database is not None:
        sa_url = sa_url.set(database=database)
    return sa_url.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def template_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database with every migration applied, copied for each test."""
    if POSTGRES_URL is None:
        path = tmp_path_factory.mktemp("template") / "template.db"
        db.upgrade(f"sqlite+aiosqlite:///{path}")
        yield str(path)
        return
    name = f"cdp_template_{os.getpid()}"

    async def create() -> None:
        connection = await asyncpg.connect(_pg_dsn(POSTGRES_URL))
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(create())
    db.upgrade(make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False))
    yield name
    asyncio.run(_drop_databases(name, prefix=f"cdp_test_{os.getpid()}_"))


async def _drop_databases(template: str, prefix: str) -> None:
    assert POSTGRES_URL is not None
    connection = await asyncpg.connect(_pg_dsn(POSTGRES_URL))
    try:
        names = await connection.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1", prefix + "%"
        )
        for row in [*names, {"datname": template}]:
            await _drop(connection, row["datname"])
    finally:
        await connection.close()


@pytest.fixture
async def database_url(template_database: str, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated, empty database of its own for this test."""
    if POSTGRES_URL is None:
        path = tmp_path / "coupdepouce.db"
        shutil.copy(template_database, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    name = f"cdp_test_{os.getpid()}_{next(_counter)}"
    connection = await asyncpg.connect(_pg_dsn(POSTGRES_URL))
    try:
        await connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    finally:
        await connection.close()
    yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    connection = await asyncpg.connect(_pg_dsn(POSTGRES_URL))
    try:
        await _drop(connection, name)
    finally:
        await connection.close()


async def _drop(connection: asyncpg.Connection, name: str) -> None:
    """Drop a test database; one still in use by someone else is left for the end of the run."""
    for _ in range(20):
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
            return
        except asyncpg.ObjectInUseError:
            await asyncio.sleep(0.1)  # connections closing after the test
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except asyncpg.PostgresError as error:
        log.warning("test database %s left behind: %s", name, error)


@pytest.fixture
async def emulator() -> AsyncIterator[BotApiEmulator]:
    spec = SHARED_TELEGRAM / "bot-api-spec.json"
    emulator = BotApiEmulator(spec_path=spec if spec.exists() else None)
    await emulator.start()
    yield emulator
    await emulator.stop()
    assert emulator.spec_violations == [], emulator.spec_violations


@pytest.fixture
async def whatsapp() -> AsyncIterator[CloudApiEmulator]:
    """Meta's Cloud API, with our templates approved (a story may change their status)."""
    from bot.channels.whatsapp import templates

    emulator = CloudApiEmulator(
        phone_number_id=WA_PHONE_NUMBER_ID,
        waba_id=WA_ACCOUNT_ID,
        token=WA_TOKEN,
        app_secret=WA_APP_SECRET,
    )
    await emulator.start()
    for definition in templates.definitions():
        body, buttons = definition["components"]
        emulator.add_template(
            definition["name"],
            definition["language"],
            body["text"],
            buttons=[button["text"] for button in buttons["buttons"]],
        )
    yield emulator
    await emulator.stop()


def whatsapp_settings(whatsapp: CloudApiEmulator) -> dict[str, Any]:
    """The settings of a bot that speaks WhatsApp through the emulator."""
    return {
        "whatsapp_token": WA_TOKEN,
        "whatsapp_phone_number_id": WA_PHONE_NUMBER_ID,
        "whatsapp_app_secret": WA_APP_SECRET,
        "whatsapp_verify_token": WA_VERIFY_TOKEN,
        "whatsapp_api_url": whatsapp.url,
        "whatsapp_business_account_id": WA_ACCOUNT_ID,
    }


@pytest.fixture
def make_settings(database_url: str, emulator: BotApiEmulator) -> Callable[..., Settings]:
    """Settings for a bot talking to the emulator, with overrides."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "telegram_bot_token": TEST_TOKEN,
            "telegram_api_url": emulator.url,
            "http_host": "127.0.0.1",
            "http_port": 0,
            # Scripted pages write faster than people: the limits have their own tests.
            "webchat_messages_per_second": 1000,
            "webchat_messages_per_minute": 100_000,
            "webchat_messages_per_address": 100_000,
            "webchat_sockets_per_minute": 100_000,
        }
        values.update(overrides)
        return load_settings(**values)

    return make


StartBot = Callable[..., Awaitable[CoupDePouce]]


@pytest.fixture
async def start_bot(make_settings: Callable[..., Settings]) -> AsyncIterator[StartBot]:
    """Start the real application (several times for restarts); all are stopped at the end."""
    running: list[CoupDePouce] = []

    async def start(
        flows: Sequence[Flow] = FLOWS, limits: Limits | None = None, **overrides: Any
    ) -> CoupDePouce:
        app = CoupDePouce(make_settings(**overrides), flows=flows)
        if limits is not None:
            app.dispatcher.limits = limits
        running.append(app)
        await app.start()
        # Stories tick jobs themselves: the start-up ticks (work missed while down) must be
        # over first, or one could take the rows a story is about to tick for.
        await app.scheduler.caught_up()
        return app

    yield start
    for app in running:
        await app.stop()


@pytest.fixture
async def bot(start_bot: StartBot) -> CoupDePouce:
    return await start_bot()


async def in_transaction(app: CoupDePouce, work: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
    async with db.session_scope(app.sessions) as session:
        return await work(session)


@pytest.fixture
async def council(database_url: str) -> Council:
    """The council most stories happen in."""
    engine = db.create_engine(database_url)
    try:
        async with db.session_scope(db.session_factory(engine)) as session:
            added = await create_council(
                session,
                "quartier-nord",
                "Conseil citoyen Quartier Nord",
                neighbourhoods=["Les Tilleuls", "La Gare", "Le Centre"],
            )
            # Stories run at any hour of the day; quiet hours have stories of their own.
            added.quiet_start = added.quiet_end = None
    finally:
        await engine.dispose()
    return added

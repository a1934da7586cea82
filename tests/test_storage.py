"""The migrations build exactly the models, and concurrent taps cannot register someone twice."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from bot.app import CoupDePouce
from storage import db
from storage.models import Base, Council, Person
from tests.conftest import StartBot
from tests.emulator import BotApiEmulator
from tests.helpers import count_rows
from tests.test_webhook import WEBHOOK, post


async def test_migrations_match_the_models(database_url: str) -> None:
    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    engine = db.create_engine(database_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(differences) == []
    finally:
        await engine.dispose()


async def test_upgrade_twice_is_harmless(database_url: str) -> None:
    await asyncio.to_thread(db.upgrade, database_url)
    await asyncio.to_thread(db.upgrade, database_url)


async def test_a_double_tap_on_consent_registers_once(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    app: CoupDePouce = await start_bot(**WEBHOOK)
    sam = emulator.resident(7001, language_code="en")
    await post(app, emulator.take_update(sam.send("/start quartier-nord")))
    consent = await sam.next_message()
    taps = [emulator.take_update(sam.tap("✅ Yes, I agree", consent)) for _ in range(4)]
    statuses = await asyncio.gather(*(post(app, tap) for tap in taps))
    assert statuses == [200] * 4
    assert await count_rows(app, Person) == 1
    # Answered once kept; the taps' answers follow in the chat's lane.
    await emulator.wait_until(lambda: len(sam.answered_callbacks) == 4)
    toasts = [call.params.get("text") for call in sam.answered_callbacks]
    assert toasts.count("This button has expired.") == 3

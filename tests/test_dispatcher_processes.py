"""The dispatcher as a real process: killed with SIGKILL in the middle of a broadcast and
started again, it finishes without losing a message; on PostgreSQL two dispatchers share
the outbox and never send the same message twice."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sys

from bot.channels.telegram import TelegramChannel
from bot.dispatcher import Dispatcher, Limits
from flows.broadcasts import service as broadcasts
from flows.engine import Engine, Reply
from flows.i18n import Translator
from flows.registry import FLOWS
from storage import db
from storage.models import Council
from tests.conftest import TEST_TOKEN, requires_postgres
from tests.emulator import BotApiEmulator
from tests.factories import add_residents

TEXT = "Réunion du conseil jeudi à 18 h"


def announcement(_t: Translator) -> Reply:
    return Reply(TEXT)


async def prepare(
    database_url: str, emulator: BotApiEmulator, council: Council, count: int
) -> None:
    """`count` residents, and a broadcast to all of them waiting in the outbox."""
    ids = list(range(30_001, 30_001 + count))
    for chat_id in ids:
        emulator.resident(chat_id)
    engine = db.create_engine(database_url)
    try:
        async with db.session_scope(db.session_factory(engine)) as session:
            stored = await session.get_one(Council, council.id)
            await add_residents(session, stored, ids)
            await broadcasts.start_broadcast(
                session,
                council=stored,
                kind="test",
                audience=broadcasts.members(stored),
                render=announcement,
            )
    finally:
        await engine.dispose()


async def start_process(database_url: str, emulator: BotApiEmulator) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        env={
            **os.environ,
            "DATABASE_URL": database_url,
            "TELEGRAM_BOT_TOKEN": TEST_TOKEN,
            "TELEGRAM_API_URL": emulator.url,
            "HTTP_PORT": "0",
            "DISPATCH_RATE": "60",
            "DISPATCH_LEASE_SECONDS": "2",
            "LOG_LEVEL": "WARNING",
        },
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


def deliveries(emulator: BotApiEmulator) -> collections.Counter[int]:
    return collections.Counter(chat for chat, text in emulator.delivered_texts() if text == TEXT)


async def test_killed_mid_broadcast_then_restarted_loses_nothing(
    database_url: str, emulator: BotApiEmulator, council: Council
) -> None:
    await prepare(database_url, emulator, council, 150)
    first = await start_process(database_url, emulator)
    try:
        reached = await emulator.wait_until(lambda: len(deliveries(emulator)) >= 40 or None, 30)
        assert reached, "the first process sent nothing"
    finally:
        first.kill()  # SIGKILL: no chance to record or release anything
        await first.wait()
    assert first.returncode == -signal.SIGKILL
    before_restart = sum(deliveries(emulator).values())
    assert before_restart < 150, "the broadcast finished before the crash; nothing was tested"

    second = await start_process(database_url, emulator)
    try:
        done = await emulator.wait_until(lambda: len(deliveries(emulator)) == 150 or None, 60)
    finally:
        second.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(second.communicate(), 30)
    assert done, f"only {len(deliveries(emulator))} of 150 residents were reached"
    duplicates = sum(count - 1 for count in deliveries(emulator).values())
    # Only what was in flight at the kill may go twice: the requests under way and the
    # sends not yet recorded (the dispatcher records every 50 ms).
    assert duplicates <= Limits().concurrency, duplicates
    assert second.returncode == 0, err.decode()


@requires_postgres
async def test_two_dispatchers_share_one_outbox_on_postgresql(
    database_url: str, emulator: BotApiEmulator, council: Council
) -> None:
    await prepare(database_url, emulator, council, 400)
    engines = [db.create_engine(database_url) for _ in range(2)]
    channels: list[TelegramChannel] = []
    dispatchers: list[Dispatcher] = []
    try:
        for index, engine in enumerate(engines):
            sessions = db.session_factory(engine)
            channel = TelegramChannel(Engine(FLOWS, sessions), TEST_TOKEN, emulator.url, rate=1000)
            await channel.application.initialize()
            channels.append(channel)
            dispatcher = Dispatcher(
                sessions,
                {"telegram": channel},
                Limits(chat_interval=0, concurrency=8, record_interval=0.02, report_every=0.2),
                name=f"dispatcher-{index}",
            )
            dispatchers.append(dispatcher)
        await asyncio.gather(*(d.start() for d in dispatchers))
        done = await emulator.wait_until(lambda: len(deliveries(emulator)) == 400 or None, 60)
        assert done
    finally:
        for dispatcher in dispatchers:
            await dispatcher.stop()
        for channel in channels:
            await channel.application.shutdown()
        for engine in engines:
            await engine.dispose()
    assert max(deliveries(emulator).values()) == 1
    assert all(d.sent > 0 for d in dispatchers), [d.sent for d in dispatchers]
    assert sum(d.sent for d in dispatchers) == 400

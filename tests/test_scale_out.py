"""Several processes on one PostgreSQL: roles, one sender at a time holding a lease (taken
over when its holder dies), schedulers that never double anything, health and readiness."""

from __future__ import annotations

import asyncio
import collections
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import CoupDePouce
from bot.channels.telegram import TelegramChannel
from bot.dispatcher import Dispatcher, Limits
from bot.lease import Lease
from bot.scheduler import Scheduler
from flows import retention
from flows.digest import service as digest
from flows.engine import Engine
from flows.registry import FLOWS
from storage import db
from storage.models import Council, OutboxMessage, ProcessedEvent
from tests.conftest import TEST_TOKEN, in_transaction, requires_postgres
from tests.emulator import BotApiEmulator
from tests.helpers import run_cli
from tests.test_deployment import CADDYFILE
from tests.test_digest import register, schedule_of, seed_activity, set_council
from tests.test_dispatcher_processes import deliveries, prepare

SECRET = "s3cret-Token_1"
HOOK = "https://bot.example.org/telegram/hook"


# --- health and readiness (both databases) -------------------------------------------------


async def get(app: CoupDePouce, path: str) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"http://127.0.0.1:{app.port}{path}") as response,
    ):
        return response.status, await response.json()


async def test_healthz_says_alive_and_readyz_says_whether_to_send_it_work(
    bot: CoupDePouce,
) -> None:
    assert await get(bot, "/healthz") == (200, {"status": "ok"})
    assert await get(bot, "/readyz") == (
        200,
        {"status": "ok", "database": "ok", "migrations": "ok", "channels": "telegram,web"},
    )

    async def behind(session: AsyncSession) -> None:
        await session.execute(text("UPDATE alembic_version SET version_num = '0001'"))

    await in_transaction(bot, behind)  # a database an older release migrated
    status, checks = await get(bot, "/readyz")
    assert (status, checks["migrations"]) == (503, "not current")
    assert await get(bot, "/healthz") == (200, {"status": "ok"})  # alive all the same

    bot.readiness.stopping = True
    status, checks = await get(bot, "/readyz")
    assert (status, checks["process"]) == (503, "stopping")


async def test_roles_need_postgresql(database_url: str) -> None:
    if not database_url.startswith("sqlite"):
        return
    code, _out, err = await run_cli(
        "run",
        "--role",
        "web",
        env={"DATABASE_URL": database_url, "TELEGRAM_BOT_TOKEN": TEST_TOKEN},
    )
    assert code != 0
    assert err.strip().splitlines() == [
        "coupdepouce: error: --role needs PostgreSQL (DATABASE_URL): SQLite serves one process only"
    ]


# --- leases ----------------------------------------------------------------------------------


@requires_postgres
async def test_one_holder_at_a_time_and_a_dead_holder_s_lease_is_taken_over(
    database_url: str,
) -> None:
    engines = [db.create_engine(database_url) for _ in range(2)]
    first, second = (Lease(engine, "sending", retry=0.1, check=0.2) for engine in engines)
    try:
        await first.acquire()
        waiting = asyncio.create_task(second.acquire())
        await asyncio.sleep(0.5)
        assert first.held and not waiting.done()

        await first.release()  # a process stopping
        await asyncio.wait_for(waiting, 2)
        assert second.held

        # The holder's connection ends (its process killed, the network cut): the lock goes
        # with it, the holder learns it lost the lease, and the other takes over.
        taking_over = asyncio.create_task(first.acquire())
        async with engines[0].connect() as connection:
            await connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid() "
                    "AND database = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database())"
                )
            )
        await asyncio.wait_for(second.lost(), 2)
        assert not second.held
        await asyncio.wait_for(taking_over, 2)
        assert first.held
    finally:
        for lease in (first, second):
            await lease.release()
        for engine in engines:
            await engine.dispose()


@requires_postgres
async def test_a_message_queued_by_another_process_wakes_the_sending_dispatcher_at_once(
    database_url: str, emulator: BotApiEmulator, council: Council
) -> None:
    # The dispatcher would look again in a minute; what another process queues reaches it at
    # once, through the notice sent when that process's transaction commits.
    engine = db.create_engine(database_url)
    sessions = db.session_factory(engine)
    channel = TelegramChannel(Engine(FLOWS, sessions), TEST_TOKEN, emulator.url, rate=30)
    await channel.application.initialize()
    dispatcher = Dispatcher(
        sessions,
        {"telegram": channel},
        Limits(chat_interval=0, poll_interval=60.0, record_interval=0.02),
        lease=Lease(engine, "dispatcher"),
    )
    try:
        await dispatcher.start()
        await asyncio.sleep(1.0)  # it holds the lease, looked, found nothing: it sleeps
        await prepare(database_url, emulator, council, 3)  # on an engine of its own
        queued_at = time.monotonic()
        assert await emulator.wait_until(lambda: len(deliveries(emulator)) == 3 or None, 5)
        assert time.monotonic() - queued_at < 2.0
    finally:
        await dispatcher.stop()
        await channel.application.shutdown()
        await engine.dispose()


async def test_on_sqlite_the_one_process_always_holds_its_leases(database_url: str) -> None:
    if not database_url.startswith("sqlite"):
        return
    engine = db.create_engine(database_url)
    try:
        lease = Lease(engine, "sending")
        await asyncio.wait_for(lease.acquire(), 1)
        assert lease.held
        await lease.release()
    finally:
        await engine.dispose()


# --- schedulers -----------------------------------------------------------------------------


@requires_postgres
async def test_two_schedulers_never_double_a_digest_or_any_job(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council, database_url: str
) -> None:
    await set_council(bot, council.id, locale="en")
    await register(bot, emulator, council)
    due, _last = await schedule_of(bot, council.id)
    assert due is not None
    await seed_activity(bot, council.id, due)
    engines = [db.create_engine(database_url) for _ in range(2)]
    jobs = [*(job for flow in FLOWS for job in flow.jobs)]
    jobs += [digest.job(FLOWS), retention.job(FLOWS)]
    schedulers = [Scheduler(db.session_factory(engine), jobs) for engine in engines]
    try:
        for moment in (due, due + timedelta(days=40)):  # the digest, then everything due
            for job in jobs:
                done = await asyncio.gather(*(s.tick(job, moment) for s in schedulers))
                again = await asyncio.gather(*(s.tick(job, moment) for s in schedulers))
                assert again == [0, 0], (job.name, done, again)
    finally:
        for engine in engines:
            await engine.dispose()

    async def queued(session: AsyncSession) -> list[tuple[str, str]]:
        rows = await session.execute(select(OutboxMessage.chat_id, OutboxMessage.payload))
        return [(chat, str(payload.get("text"))) for chat, payload in rows]

    messages = await in_transaction(bot, queued)
    digests = [m for m in messages if m[1].startswith("📰")]
    assert len(digests) == 2  # one at each moment it was due: neither scheduler doubled it
    twice = [m for m, n in collections.Counter(messages).items() if n > 1]
    assert twice == []


# --- processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def until_ready(name: str, process: asyncio.subprocess.Process, site: str) -> None:
    """Wait until the site's /readyz says 200, for 30 s at most (the process serving it must
    not exit)."""
    async with aiohttp.ClientSession() as client:
        for _ in range(300):
            if process.returncode is not None:
                said = (await process.stderr.read()).decode() if process.stderr else ""
                raise AssertionError(f"{name} exited: {said}")
            try:
                async with client.get(f"{site}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{name} not ready after 30 s")


class Worker:
    """`coupdepouce run --role ROLE` as a real process."""

    def __init__(self, role: str, process: asyncio.subprocess.Process, port: int) -> None:
        self.role, self.process, self.port = role, process, port

    @classmethod
    async def start(
        cls, role: str, database_url: str, emulator: BotApiEmulator, **env: str
    ) -> Worker:
        port = free_port()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            "--role",
            role,
            env={
                **os.environ,
                "DATABASE_URL": database_url,
                "TELEGRAM_BOT_TOKEN": TEST_TOKEN,
                "TELEGRAM_API_URL": emulator.url,
                "WEBHOOK_URL": HOOK,
                "WEBHOOK_SECRET": SECRET,
                "HTTP_PORT": str(port),
                "DISPATCH_RATE": "30",
                "LOG_LEVEL": "WARNING",
                **env,
            },
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        worker = cls(role, process, port)
        await worker.ready()
        return worker

    async def ready(self) -> None:
        await until_ready(self.role, self.process, f"http://127.0.0.1:{self.port}")

    async def post(self, client: aiohttp.ClientSession, update: dict[str, Any]) -> int:
        async with client.post(
            f"http://127.0.0.1:{self.port}/telegram/hook",
            json=update,
            headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
        ) as response:
            return response.status

    async def stop(self) -> tuple[int, str]:
        """SIGTERM; its exit code and what it wrote on stderr."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(self.process.communicate(), 60)
        assert self.process.returncode is not None
        return self.process.returncode, err.decode()


@requires_postgres
async def test_two_web_workers_two_dispatchers_two_schedulers_answer_and_send_once(
    database_url: str, emulator: BotApiEmulator, council: Council
) -> None:
    await prepare(database_url, emulator, council, 120)  # a broadcast waiting in the outbox
    newcomers = [emulator.resident(35_001 + n, language_code="en") for n in range(60)]
    # Telegram's limits as Telegram counts them (a bucket that lends a second's worth). Each
    # process lets a message go at the moment it took from the shared pace, but a busy
    # machine may send it a little late, bunched with the next ones: a strict one-second
    # window would count that bunching; Telegram does not.
    emulator.enforce_limits()
    workers = await asyncio.gather(
        *(
            Worker.start(role, database_url, emulator)
            for role in ("web", "web", "scheduler", "scheduler")
        )
    )
    webs = workers[:2]
    try:
        updates = [emulator.take_update(user.send("/start")) for user in newcomers]
        async with aiohttp.ClientSession() as client:  # round robin, all at once
            statuses = await asyncio.gather(
                *(webs[n % 2].post(client, update) for n, update in enumerate(updates))
            )
        assert set(statuses) == {200}
        dispatchers = await asyncio.gather(
            *(Worker.start("dispatcher", database_url, emulator) for _ in range(2))
        )
        workers += dispatchers
        done = await emulator.wait_until(lambda: len(deliveries(emulator)) == 120 or None, 60)
        assert done, f"{len(deliveries(emulator))} of 120 reached"
    finally:
        stopped = await asyncio.gather(*(worker.stop() for worker in workers))
    assert [code for code, _err in stopped] == [0] * len(workers), stopped
    for user in newcomers:  # each /start answered once, by one of the two
        assert len(user.inbox) == 1, user.inbox
    engine = db.create_engine(database_url)
    try:
        async with db.session_scope(db.session_factory(engine)) as session:
            assert await session.scalar(select(func.count()).select_from(ProcessedEvent)) == 60
    finally:
        await engine.dispose()
    assert max(deliveries(emulator).values()) == 1  # every broadcast message once
    assert emulator.flood_refusals == []
    # The web workers and the dispatcher together keep to 30 a second. Their moments are
    # 1.02/30 s apart, but two processes on a busy machine may each send one a little late,
    # bunched with the other's: over a few seconds, that is within a message or two.
    assert emulator.max_rate(window=5.0) <= 30


@requires_postgres
async def test_two_all_in_one_processes_on_one_database_keep_to_one_rate_and_send_once(
    database_url: str, emulator: BotApiEmulator, council: Council
) -> None:
    # `coupdepouce run` started twice on one database (without roles): both answer the
    # webhook, one sends the outbox, and together they keep to Telegram's rate.
    await prepare(database_url, emulator, council, 120)
    newcomers = [emulator.resident(36_001 + n, language_code="en") for n in range(60)]
    emulator.enforce_limits()
    workers = await asyncio.gather(*(Worker.start("all", database_url, emulator) for _ in "ab"))
    try:
        updates = [emulator.take_update(user.send("/start")) for user in newcomers]
        async with aiohttp.ClientSession() as client:
            statuses = await asyncio.gather(
                *(workers[n % 2].post(client, update) for n, update in enumerate(updates))
            )
        assert set(statuses) == {200}
        done = await emulator.wait_until(lambda: len(deliveries(emulator)) == 120 or None, 60)
        assert done, f"{len(deliveries(emulator))} of 120 reached"
    finally:
        stopped = await asyncio.gather(*(worker.stop() for worker in workers))
    assert [code for code, _err in stopped] == [0, 0], stopped
    for user in newcomers:
        assert len(user.inbox) == 1, user.inbox
    assert max(deliveries(emulator).values()) == 1
    assert emulator.flood_refusals == []
    assert emulator.max_rate(window=5.0) <= 30  # as above


@requires_postgres
async def test_behind_caddy_an_address_meets_the_web_chat_s_limits_once_for_all_workers(
    database_url: str, emulator: BotApiEmulator, council: Council, tmp_path: Path
) -> None:
    """deploy/Caddyfile, run by Caddy in front of two web workers: whichever worker answers,
    an address may start the web chat's 60 new conversations an hour, not 60 per worker."""
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy is not installed (Debian's caddy package)")
    webs = await asyncio.gather(
        *(Worker.start("web", database_url, emulator, TRUSTED_PROXY="127.0.0.1") for _ in "ab")
    )
    port = free_port()
    config = tmp_path / "Caddyfile"
    config.write_text(f"{{\n\tadmin off\n}}\n\nimport {CADDYFILE}\n")
    proxy = await asyncio.create_subprocess_exec(
        caddy,
        *("run", "--config", str(config), "--adapter", "caddyfile"),
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "DOMAIN": f"http://127.0.0.1:{port}",
            "WEB_UPSTREAMS": " ".join(f"127.0.0.1:{web.port}" for web in webs),
        },
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    site = f"http://127.0.0.1:{port}"

    async def new_visitors(address: str, count: int) -> list[int]:
        """`count` first visits to the chat from `address`, each without a cookie."""
        connector = aiohttp.TCPConnector(local_addr=(address, 0), force_close=True)
        async with aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar()
        ) as client:
            statuses = []
            for _ in range(count):
                async with client.get(f"{site}/?start={council.slug}") as response:
                    statuses.append(response.status)
            return statuses

    try:
        await until_ready("caddy", proxy, site)
        # One address, one connection a visit: Caddy could pick either worker every time.
        assert await new_visitors("127.0.0.7", 61) == [200] * 60 + [429]
        assert await new_visitors("127.0.0.8", 1) == [200]  # another address is not held back
    finally:
        proxy.terminate()
        await proxy.wait()
        stopped = await asyncio.gather(*(web.stop() for web in webs))
    assert [code for code, _err in stopped] == [0, 0], stopped


BROADCAST = 450  # about 15 s at 30 a second


async def hand_over(
    database_url: str,
    emulator: BotApiEmulator,
    council: Council,
    leave: Callable[[Worker], Awaitable[None]],
) -> float:
    """A broadcast under way from one dispatcher, a second one standing by; the first
    `leave`s. Returns when it left (the emulator's clock), once every resident is reached."""
    await prepare(database_url, emulator, council, BROADCAST)
    emulator.enforce_limits()
    first = await Worker.start("dispatcher", database_url, emulator)
    second: Worker | None = None
    try:
        reached = await emulator.wait_until(lambda: len(deliveries(emulator)) >= 40 or None, 30)
        assert reached
        second = await Worker.start("dispatcher", database_url, emulator)  # standing by
        await leave(first)
        left_at = emulator.clock()
        assert len(deliveries(emulator)) < BROADCAST, "finished before the first one left"
        done = await emulator.wait_until(lambda: len(deliveries(emulator)) == BROADCAST or None, 60)
        assert done, f"{len(deliveries(emulator))} of {BROADCAST} reached"
    finally:
        code, err = await second.stop() if second is not None else (0, "")
        await first.stop()
    assert code == 0, err
    # The standby kept to the pace where it was. Moments are 1.02/30 s apart: over 2 s, a
    # stall of 40 ms on a busy machine (either process's, or the emulator's, which stamps
    # what waited together) bunches one message too many; over 5 s, it takes 100 ms.
    assert emulator.max_rate(window=5.0) <= 30
    return left_at


def resumed_after(emulator: BotApiEmulator, moment: float) -> float:
    """Seconds from `moment` to the next message the emulator received."""
    return min(call.at for call in emulator.calls_to("sendMessage") if call.at > moment) - moment


@requires_postgres
async def test_a_killed_dispatcher_s_lease_is_taken_over_and_nothing_is_lost(
    database_url: str, emulator: BotApiEmulator, council: Council
) -> None:
    async def kill(worker: Worker) -> None:
        await asyncio.sleep(0.5)
        worker.process.kill()  # SIGKILL: no chance to release anything
        await worker.process.wait()

    killed_at = await hand_over(database_url, emulator, council, kill)
    assert resumed_after(emulator, killed_at) < 5  # the standby took over within seconds
    duplicates = sum(n - 1 for n in deliveries(emulator).values())
    assert duplicates <= Limits().concurrency  # at most what was in flight at the kill
    # The only refusals: a message in flight at the kill, sent again at once by the standby
    # into a chat that had just received it (one a second per chat), never the bot-wide limit.
    delivered = [call for call in emulator.calls_to("sendMessage") if call.ok]
    for refused in emulator.flood_refusals:
        chat = refused.params["chat_id"]
        assert any(c.params["chat_id"] == chat and c.at < refused.at for c in delivered), chat


@requires_postgres
async def test_a_stopped_dispatcher_hands_its_lease_over_at_once_and_sends_nothing_twice(
    database_url: str, emulator: BotApiEmulator, council: Council
) -> None:
    async def stop(worker: Worker) -> None:
        code, err = await worker.stop()  # SIGTERM: what it holds recorded, the lease let go
        assert code == 0, err

    stopped_at = await hand_over(database_url, emulator, council, stop)
    assert resumed_after(emulator, stopped_at) < 2.5  # taken at the standby's next try
    assert max(deliveries(emulator).values()) == 1
    assert emulator.flood_refusals == []

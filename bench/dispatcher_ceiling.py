"""Figure 2: how fast can the dispatcher send when nothing limits it?

10,000 residents, one message each, no flood limits in the emulator, dispatch_rate=10000 and
no pause between two messages into one chat. The emulator runs in a child process, so this
process's CPU time is the bot's alone; the emulator's is reported apart.

Baseline, measured in the same run against the same emulator: a bare python-telegram-bot
`Bot` sending as many sendMessage calls from 32 concurrent tasks (the dispatcher's
concurrency), without a database, through the same HTTP stack as the bot (HTTPXRequest, 64
connections). For reference, raw aiohttp POSTs (no python-telegram-bot) show what the
transport alone costs.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass

import aiohttp
from telegram import Bot
from telegram.request import HTTPXRequest

from bench.common import (
    BROADCAST_TEXT,
    TOKEN,
    Tally,
    add_council,
    add_residents,
    broadcast_to_members,
    database_kinds,
    label,
    pauses,
    quiet_logging,
    rate_between,
    scratch_database,
    sent_count,
    start_app,
    tally,
)
from bench.remote_emulator import RemoteEmulator

MESSAGES = 10_000
CONCURRENCY = 32
CONNECTIONS = 64  # as bot/channels/telegram.py
PAID_RATE = 1000.0
BOT_IDS = range(6_000_001, 6_000_001 + MESSAGES)
BASELINE_IDS = range(7_000_001, 7_000_001 + MESSAGES)
BASELINE_TEXT = "Bare Bot baseline message (bench)"


REFERENCE_TEXT = "Raw aiohttp reference message (bench)"
REFERENCE_IDS = range(8_000_001, 8_000_001 + MESSAGES)


@dataclass(frozen=True)
class Run:
    """One way of sending MESSAGES messages, measured."""

    delivered: int
    lost: int
    duplicated: int
    rate: float  # deliveries per second, first to last (emulator's receive times)
    wall: float  # seconds from the start to the last one recorded
    cpu: float  # CPU seconds of this process
    emulator_cpu: float  # CPU seconds of the emulator's process
    pauses: tuple[int, float]  # gaps > 0.1 s between consecutive deliveries: count, seconds
    span: float  # seconds from the first to the last delivery

    @property
    def cpu_per_message(self) -> float:
        return self.cpu / max(self.delivered, 1)

    @property
    def emulator_cpu_per_message(self) -> float:
        return self.emulator_cpu / max(self.delivered, 1)


def measured(
    counted: Tally, times: list[float], wall: float, cpu: float, emulator_cpu: float
) -> Run:
    return Run(
        delivered=counted.delivered,
        lost=counted.lost,
        duplicated=counted.duplicated,
        rate=rate_between(times),
        wall=wall,
        cpu=cpu,
        emulator_cpu=emulator_cpu,
        pauses=pauses(times),
        span=max(times) - min(times) if times else 0.0,
    )


async def reference(emulator: RemoteEmulator) -> Run:
    """Not python-telegram-bot: raw sendMessage POSTs with aiohttp, to show the transport's
    share of the cost (same concurrency, same connection limit, same emulator)."""
    url = f"{emulator.url}/bot{TOKEN}/sendMessage"
    chats = iter(REFERENCE_IDS)
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for chat_id in chats:
                async with session.post(
                    url, json={"chat_id": chat_id, "text": REFERENCE_TEXT}
                ) as r:
                    body = await r.json()
                    if not body.get("ok"):
                        raise RuntimeError(f"sendMessage refused: {body}")

        emulator_cpu = await emulator.cpu()
        wall, cpu = time.monotonic(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        wall, cpu = time.monotonic() - wall, time.process_time() - cpu
        emulator_cpu = await emulator.cpu() - emulator_cpu
    counted = tally(await emulator.deliveries(), REFERENCE_IDS, REFERENCE_TEXT)
    times = await emulator.receive_times(REFERENCE_TEXT)
    return measured(counted, times, wall, cpu, emulator_cpu)


async def baseline(emulator: RemoteEmulator) -> Run:
    bot = Bot(
        TOKEN,
        base_url=f"{emulator.url}/bot",
        base_file_url=f"{emulator.url}/file/bot",
        request=HTTPXRequest(connection_pool_size=CONNECTIONS, pool_timeout=30),
    )
    await bot.initialize()
    chats = iter(BASELINE_IDS)

    async def worker() -> None:
        for chat_id in chats:
            await bot.send_message(chat_id, BASELINE_TEXT)

    emulator_cpu = await emulator.cpu()
    wall, cpu = time.monotonic(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    emulator_cpu = await emulator.cpu() - emulator_cpu
    await bot.shutdown()
    counted = tally(await emulator.deliveries(), BASELINE_IDS, BASELINE_TEXT)
    times = await emulator.receive_times(BASELINE_TEXT)
    return measured(counted, times, wall, cpu, emulator_cpu)


async def dispatcher(url: str, council_id: int, emulator: RemoteEmulator) -> Run:
    app = await start_app(url, emulator.url, rate=10_000, chat_interval=0, report_seconds=1.0)
    try:
        await asyncio.sleep(0.5)  # let start-up traffic settle
        emulator_cpu = await emulator.cpu()
        wall, cpu = time.monotonic(), time.process_time()
        broadcast_id = await broadcast_to_members(app, council_id)
        deadline = wall + 100
        while time.monotonic() < deadline:
            if await sent_count(app, broadcast_id) >= MESSAGES:
                break
            await asyncio.sleep(0.1)
        wall, cpu = time.monotonic() - wall, time.process_time() - cpu
        emulator_cpu = await emulator.cpu() - emulator_cpu
    finally:
        await app.stop()
    counted = tally(await emulator.deliveries(), BOT_IDS, BROADCAST_TEXT)
    times = await emulator.receive_times(BROADCAST_TEXT)
    return measured(counted, times, wall, cpu, emulator_cpu)


def show(name: str, what: str, run: Run) -> None:
    count, idle = run.pauses
    print(
        f"[{name}] {what}: {run.delivered:,} delivered (lost {run.lost}, duplicated "
        f"{run.duplicated}), {run.rate:,.0f} msg/s (first to last delivery), "
        f"{run.wall:.2f} s wall to the last one recorded"
    )
    print(
        f"[{name}] {what}: CPU {run.cpu_per_message * 1e3:.3f} ms/message in this process, "
        f"emulator {run.emulator_cpu_per_message * 1e3:.3f} ms/message in its own process"
    )
    share = idle / run.span if run.span else 0.0
    print(
        f"[{name}] {what}: pauses > 0.1 s between consecutive deliveries: {count}, "
        f"{idle:.2f} s in all ({share:.0%} of the sending time)"
    )


async def run(kind: str) -> None:
    name = label(kind)
    async with scratch_database(kind) as url:
        council_id = await add_council(url)
        await add_residents(url, council_id, list(BOT_IDS))
        emulator = RemoteEmulator()
        await emulator.start()
        try:
            await emulator.residents(BOT_IDS)
            await emulator.residents(BASELINE_IDS)
            await emulator.residents(REFERENCE_IDS)
            raw = await reference(emulator)
            bare = await baseline(emulator)
            bot = await dispatcher(url, council_id, emulator)
        finally:
            await emulator.stop()
    print(f"[{name}] {MESSAGES:,} messages, {CONCURRENCY} requests in flight, no limits")
    show(name, "reference raw aiohttp (no python-telegram-bot)", raw)
    show(name, "baseline bare Bot", bare)
    show(name, "dispatcher", bot)
    print(
        f"[{name}] ratio dispatcher/baseline: rate {bot.rate / bare.rate:.2f}, "
        f"CPU per message {bot.cpu_per_message / bare.cpu_per_message:.2f}"
    )
    print(
        f"[{name}] ratio bare Bot/raw aiohttp: rate {bare.rate / raw.rate:.2f}, "
        f"CPU per message {bare.cpu_per_message / raw.cpu_per_message:.1f}"
    )
    verdict = "yes" if bot.rate >= PAID_RATE else "NO"
    print(f"[{name}] dispatcher >= {PAID_RATE:,.0f} msg/s (Telegram's paid broadcasts): {verdict}")


async def main() -> int:
    quiet_logging()
    for kind in database_kinds(description=__doc__ or ""):
        await run(kind)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

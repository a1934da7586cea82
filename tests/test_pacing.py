"""Pacing under load: a second never holds more messages than the messenger counts in one,
even when the event loop stalls (a loaded machine) and the bucket would make up for lost
time; a chat's next message waits its interval from when the last one surely arrived."""

from __future__ import annotations

import asyncio
import time

from bot.ratelimit import WINDOW, RateLimiter
from storage.models import Council
from tests.conftest import StartBot
from tests.emulator import BotApiEmulator
from tests.test_broadcast import FAST, broadcast_to_members, residents, until_finished


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def busiest_second(times: list[float]) -> int:
    return max(sum(1 for t in times if start <= t < start + 1.0) for start in times)


def test_a_stalled_loop_catches_up_within_the_limit() -> None:
    clock = Clock()
    limiter = RateLimiter(30, burst=0.1, clock=clock)
    taken: list[float] = []
    stall_at = 2.0
    while clock.now < 10:
        while limiter.try_acquire() == 0:  # as many as may go now
            taken.append(clock.now)
        if clock.now >= stall_at:
            clock.now += 0.3  # the loop held up by other work: the bucket fills meanwhile
            stall_at += 2.0
        else:
            clock.now += 0.001
    assert busiest_second(taken) <= 30
    # Short of the rate by the window's margin and the stalls only.
    assert len(taken) >= (10 - 4 * 0.3) * 30 / WINDOW * 0.95


def test_the_next_in_a_full_second_waits() -> None:
    clock = Clock()
    limiter = RateLimiter(5, burst=1.0, clock=clock)
    assert [limiter.try_acquire() for _ in range(5)] == [0.0] * 5
    clock.now = 0.99
    assert limiter.try_acquire() > 0  # five went in the last second
    clock.now = WINDOW
    assert limiter.try_acquire() == 0


async def test_a_broadcast_on_a_stalling_machine_gets_no_429(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    # Telegram's bucket. (That no second holds more than the rate when the loop stalls is
    # the limiter's own test above: here the emulator shares the stalling loop, so what it
    # reads after a stall comes closer together than it left, as no real network does.)
    emulator.enforce_limits(global_per_second=20, per_chat_per_second=1)
    app = await start_bot(limits=FAST, dispatch_rate=20)
    await residents(app, emulator, council, range(19_001, 19_061))

    async def load() -> None:
        while True:
            await asyncio.sleep(0.4)
            time.sleep(0.1)  # the event loop held up by other work  # noqa: ASYNC251

    loader = asyncio.create_task(load())
    try:
        broadcast_id = await broadcast_to_members(app, council)
        await until_finished(app, broadcast_id)
    finally:
        loader.cancel()
    assert emulator.flood_refusals == []
    assert len(emulator.delivered_texts()) == 60

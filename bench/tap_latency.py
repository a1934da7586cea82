"""Figure 4: is a resident who writes to the bot answered promptly while a broadcast runs?

The emulator (in this process, as in the tests) enforces 30 messages/s in all and 1/s per
chat; the bot has dispatch_rate=30, so a 10,000-message broadcast keeps the whole budget busy
for minutes. Someone outside the broadcast sends /help every 0.5 s (waiting for each answer)
for about 20 s; latency is the time from push_update to the reply reaching the emulator (the
reply's Call.at minus the push time, both time.monotonic()). Baseline, in the same run: the
same taps with no broadcast running.

Two tappers: one resident, as specified, whose replies come faster than the 1 message/s a
private chat allows (so Telegram's per-chat limit shows in the figures), and four residents
taking turns (each chat gets a reply every 2 s), which leaves the broadcast as the only
thing replies compete with.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass

from bench.common import (
    BROADCAST_TEXT,
    add_council,
    add_residents,
    broadcast_to_members,
    database_kinds,
    label,
    percentile,
    quiet_logging,
    scratch_database,
    start_app,
)
from tests.emulator import BotApiEmulator, Call, FakeUser

RESIDENTS = 10_000
FIRST_ID = 20_000_001
TAPPER_IDS = range(29_999_990, 29_999_994)  # not residents: not in the broadcast
DURATION = 20.0  # seconds of tapping
EVERY = 0.5  # seconds between taps
RATE = 30
TARGET = 1.0  # seconds, worst tap


@dataclass(frozen=True)
class Taps:
    latencies: list[float]
    started: float
    finished: float

    def summary(self) -> str:
        values = self.latencies
        return (
            f"{len(values)} taps, p50 {percentile(values, 0.5) * 1e3:.0f} ms, "
            f"p95 {percentile(values, 0.95) * 1e3:.0f} ms, max {max(values) * 1e3:.0f} ms"
        )


def reply_call(emulator: BotApiEmulator, chat_id: int, message_id: int) -> Call:
    """The sendMessage call that delivered this message."""
    for call in reversed(emulator.calls):
        if (
            call.method == "sendMessage"
            and call.ok
            and call.params.get("chat_id") == chat_id
            and call.response is not None
            and call.response["result"]["message_id"] == message_id
        ):
            return call
    raise AssertionError(f"no sendMessage delivered message {message_id} to {chat_id}")


async def tap(emulator: BotApiEmulator, user: FakeUser) -> float:
    pushed = time.monotonic()
    user.send("/help")
    reply = await user.next_message(timeout=30)
    return reply_call(emulator, user.id, reply.message_id).at - pushed


async def taps(emulator: BotApiEmulator, users: list[FakeUser]) -> Taps:
    """A tap every EVERY seconds (or as soon as the previous one was answered), users taking
    turns, for DURATION seconds."""
    started = time.monotonic()
    latencies: list[float] = []
    while time.monotonic() < started + DURATION:
        await asyncio.sleep(max(0.0, started + len(latencies) * EVERY - time.monotonic()))
        latencies.append(await tap(emulator, users[len(latencies) % len(users)]))
    return Taps(latencies, started, time.monotonic())


def broadcast_deliveries(emulator: BotApiEmulator, since: float, until: float) -> int:
    return sum(
        1
        for call in emulator.calls
        if call.method == "sendMessage"
        and call.ok
        and call.params.get("text") == BROADCAST_TEXT
        and since <= call.at <= until
    )


def ratio(during: Taps, before: Taps, fraction: float) -> float:
    return percentile(during.latencies, fraction) / percentile(before.latencies, fraction)


@dataclass(frozen=True)
class Phase:
    taps: Taps
    broadcast_messages: int  # delivered while these taps went on


async def phase(emulator: BotApiEmulator, users: list[FakeUser]) -> Phase:
    await asyncio.sleep(2.0)  # every tapper's chat bucket full again
    done = await taps(emulator, users)
    return Phase(done, broadcast_deliveries(emulator, done.started, done.finished))


async def run(kind: str) -> None:
    name = label(kind)
    ids = range(FIRST_ID, FIRST_ID + RESIDENTS)
    async with scratch_database(kind) as url:
        council_id = await add_council(url)
        await add_residents(url, council_id, list(ids))
        emulator = BotApiEmulator()
        await emulator.start()
        try:
            for user_id in ids:
                emulator.resident(user_id, language_code="fr")
            tappers = [
                emulator.resident(user_id, first_name="Sam", language_code="en")
                for user_id in TAPPER_IDS
            ]
            single, rotating = [tappers[0]], tappers
            emulator.enforce_limits(global_per_second=RATE, per_chat_per_second=1)
            app = await start_app(url, emulator.url, rate=RATE)
            try:
                for user in tappers:
                    await tap(emulator, user)  # warm-up, not counted
                quiet = {"one": await phase(emulator, single)}
                quiet["four"] = await phase(emulator, rotating)
                await broadcast_to_members(app, council_id)
                await emulator.wait_until(
                    lambda: broadcast_deliveries(emulator, 0, float("inf")) >= 20 or None,
                    timeout=30,
                )
                busy = {"one": await phase(emulator, single)}
                busy["four"] = await phase(emulator, rotating)
            finally:
                await app.stop()
            refusals = list(emulator.flood_refusals)
        finally:
            await emulator.stop()
    print(
        f"[{name}] /help every {EVERY} s (or as soon as answered) for {DURATION:.0f} s; "
        f"emulator limits {RATE}/s in all and 1/s per chat; broadcast to {RESIDENTS:,}"
    )
    for key, who in (
        ("one", "one resident (as specified)"),
        ("four", "four residents in turn (each chat below 1 reply/s)"),
    ):
        before, during = quiet[key], busy[key]
        window = during.taps.finished - during.taps.started
        print(f"[{name}] {who}:")
        print(f"[{name}]   baseline, no broadcast: {before.taps.summary()}")
        print(
            f"[{name}]   during the broadcast: {during.taps.summary()}; "
            f"{during.broadcast_messages} broadcast messages delivered meanwhile "
            f"({during.broadcast_messages / window:.1f}/s over {window:.1f} s)"
        )
        ratios = ", ".join(
            f"{what} {ratio(during.taps, before.taps, q):.2f}"
            for what, q in (("p50", 0.5), ("p95", 0.95), ("max", 1.0))
        )
        print(f"[{name}]   ratio during/baseline: {ratios}")
        worst = max(during.taps.latencies)
        verdict = "yes" if worst < TARGET else "NO"
        print(f"[{name}]   max latency during the broadcast < {TARGET:.0f} s: {verdict}")
        if key == "one":
            print(
                f"[{name}]   (a tap follows the previous reply at once and a chat takes 1 "
                f"message/s, so about 1 s is the floor here for any bot; the replies refused "
                f"with 429 and sent again after retry_after: {refused(refusals, single)})"
            )
    print(
        f"[{name}] 429 refusals: {len(refusals)} ({refused(refusals, tappers)} of them replies "
        f"to the tappers, {len(refusals) - refused(refusals, tappers)} broadcast messages)"
    )


def refused(refusals: list[Call], users: list[FakeUser]) -> int:
    chats = {user.id for user in users}
    return sum(1 for call in refusals if call.params.get("chat_id") in chats)


async def main() -> int:
    quiet_logging()
    for kind in database_kinds(description=__doc__ or ""):
        await run(kind)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

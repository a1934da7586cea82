"""Figure 1: does a broadcast go out at the rate Telegram allows, without a 429, each
resident getting it exactly once?

The emulator (in a child process) enforces a global limit of L messages/s and 1 message/s per
chat; the bot is configured with dispatch_rate=L. Achieved rate = delivered / time from the
first to the last delivery, on the emulator's receive timestamps.

`--window`: the emulator counts the global limit over a moving one-second window (at most L
sends in any second) instead of a token bucket holding a second's worth; stricter, it
refuses any bunching. `--rates 30` runs the L=30 case alone, `--rounds N` repeats it: run it
beside the test suite to see it on a loaded machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
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
    max_in_window,
    pauses,
    quiet_logging,
    rate_between,
    scratch_database,
    sent_count,
    start_app,
    status_counts,
    tally,
)
from bench.remote_emulator import RemoteEmulator

TARGET = 0.95
DEADLINE_SLACK = 50.0  # seconds beyond the expected sending time before giving up
FIRST_ID = 5_000_001


@dataclass(frozen=True)
class Case:
    rate: int  # L, messages per second
    residents: int
    note: str


CASES = (
    Case(
        30,
        600,
        "subset: 10,000 residents at 30/s would take 5.6 min; 600 residents are 20 s of "
        "steady sending, enough for the rate, and keep the run short",
    ),
    Case(1000, 10_000, "10,000 residents at Telegram's paid-broadcast rate: 10 s of sending"),
)


async def run_case(kind: str, case: Case, window: bool) -> bool:
    ids = range(FIRST_ID, FIRST_ID + case.residents)
    async with scratch_database(kind) as url:
        council_id = await add_council(url)
        await add_residents(url, council_id, list(ids))
        emulator = RemoteEmulator()
        await emulator.start()
        try:
            await emulator.residents(ids)
            await emulator.enforce_limits(
                global_per_second=case.rate, per_chat_per_second=1, window=window
            )
            app = await start_app(url, emulator.url, rate=case.rate)
            try:
                started = time.monotonic()
                broadcast_id = await broadcast_to_members(app, council_id)
                committed = time.monotonic()
                # Generous: a bot slower than L still finishes, so that "lost" means lost.
                deadline = committed + case.residents / case.rate * 1.2 + DEADLINE_SLACK
                while time.monotonic() < deadline:
                    if await emulator.delivered_count() >= case.residents:
                        break
                    await asyncio.sleep(0.25)
                while time.monotonic() < deadline:  # everything recorded as sent
                    if await sent_count(app, broadcast_id) >= case.residents:
                        break
                    await asyncio.sleep(0.1)
                await asyncio.sleep(1.0)  # room for a late duplicate to show up
            finally:
                await app.stop()
            statuses = await status_counts(app, broadcast_id)  # after stop: nothing in flight
            await app.database.dispose()
            deliveries = await emulator.deliveries()
            times = await emulator.receive_times(BROADCAST_TEXT)
            refusals = await emulator.flood_refusals()
        finally:
            await emulator.stop()
    counted = tally(deliveries, ids, BROADCAST_TEXT)
    achieved = rate_between(times)
    fraction = achieved / case.rate
    span = max(times) - min(times) if times else 0.0
    ok = (
        fraction >= TARGET
        and refusals == 0
        and counted.lost == 0
        and counted.duplicated == 0
        and counted.strays == 0
    )
    name = label(kind)
    counted_as = "a moving one-second window" if window else "a token bucket of one second"
    print(f"[{name}] L={case.rate}/s, {case.residents:,} residents ({case.note})")
    print(f"[{name}]   the emulator counts L over {counted_as}; load average {_load()}")
    print(f"[{name}]   enqueue (start_broadcast + commit): {committed - started:.2f} s")
    if times:
        print(f"[{name}]   first delivery {min(times) - committed:.2f} s after the commit")
    print(
        f"[{name}]   delivered {counted.delivered:,} of {counted.audience:,} "
        f"in {span:.2f} s (first to last delivery)"
    )
    verdict = "OK" if fraction >= TARGET else "BELOW TARGET"
    print(
        f"[{name}]   achieved rate {achieved:.1f}/s = {fraction:.3f} x L "
        f"(target >= {TARGET}): {verdict}"
    )
    print(f"[{name}]   busiest 1-second window: {max_in_window(times)} messages")
    count, idle = pauses(times)
    print(
        f"[{name}]   pauses > 0.1 s between consecutive deliveries: {count}, "
        f"{idle:.2f} s in all ({idle / span if span else 0:.0%} of the sending time)"
    )
    print(f"[{name}]   429 refusals: {refusals}")
    print(
        f"[{name}]   lost: {counted.lost}, duplicated: {counted.duplicated}, "
        f"outside the audience: {counted.strays}"
    )
    queued = statuses.get("pending", 0) + statuses.get("sending", 0)
    if counted.lost:
        print(f"[{name}]   of the lost, still queued when the run gave up: {queued}")
    print(f"[{name}]   outbox at the end: {statuses}")
    return ok


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


async def main() -> int:
    quiet_logging()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"])
    parser.add_argument("--window", action="store_true", help="a moving one-second window")
    parser.add_argument("--rates", default="30,1000", help="which cases: 30, 1000 or both")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    kinds = database_kinds(["--db", args.db] if args.db else [], description=__doc__ or "")
    rates = {int(rate) for rate in args.rates.split(",")}
    results = []
    for kind in kinds:
        for case in CASES:
            if case.rate in rates:
                for _ in range(args.rounds):
                    results.append(await run_case(kind, case, args.window))
    print(f"all targets met: {'yes' if all(results) else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

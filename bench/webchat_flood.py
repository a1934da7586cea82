"""Web chat flood: is a resident still answered promptly while one page floods the server?

The real application (CoupDePouce without Telegram, its default web chat limits: 5 messages
a second and 60 a minute per socket) runs in a child process, so its CPU time can be read
from /proc. A second child process is the flooder: a visitor (a cookie from `GET /`) who
opens `/chat/ws` and sends 10,000 messages as fast as the socket takes them, reading the
answers meanwhile, then closes; a flood phase repeats such floods, each on a fresh socket
(what a script would do: a new socket starts a fresh window), for at least `--seconds`.
Per flood: its duration (first message sent to last answer received), how many messages
were answered (a flow ran) and how many refused (`{"type": "outcome", "refused": true}`),
and the server's CPU seconds (from opening the socket to closing it). A task in the server's
process records how late its event loop wakes a 10 ms sleep (`LoopWatch`).

Meanwhile a joined resident of the council (consent given over the socket, as the page
does), in this process, sends `/help` on their own socket 0.25 s after each answer (so the
server never sees two of theirs closer than that, and their per-second limit never applies
however late an answer comes) and times each answer (send to the `outcome` received); the
page is reloaded every 40 messages, so their per-minute limit (60) never applies either.
`/healthz` is timed every 0.25 s too. Baseline, in the same run: the same resident and
probe for `--seconds` without a flood, before each flood phase. Target: the resident's p95
during the flood < 2 x calm.

Variants: `/help` (5 bytes of text); a 64 KB text (the largest message the socket takes);
and, labelled apart, `/help` with the limits raised out of reach (so every message runs the
flow), with fewer messages per flood (`--raised-messages`, 300), which shows what the limits
buy. The three processes share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import aiohttp

from bench.child import Child, serve
from bench.common import (
    add_council,
    database_kinds,
    label,
    percentile,
    quiet_logging,
    scratch_database,
)
from bot.app import CoupDePouce
from bot.channels.webchat import COOKIE, MAX_MESSAGE_BYTES
from bot.settings import load_settings

FLOOD = 10_000  # messages per flood
EVERY = 0.25  # seconds between the resident's messages, and between health probes
RELOAD_EVERY = 40  # the resident's messages per socket (10 s: under 60 a minute)
HELP = json.dumps({"type": "text", "text": "/help"})
FLOODER_ADDRESS = "203.0.113.66"
RESIDENT_ADDRESS = "198.51.100.7"
SENTENCE = "Bonjour, je voudrais savoir quand a lieu la prochaine réunion du conseil. "
RAISED = 1_000_000  # messages a second and a minute, when the limits are raised
TARGET = 2.0  # the resident's p95 during a flood / calm


def large_message() -> str:
    """A text message as close to the socket's limit as fits."""
    text = SENTENCE * (MAX_MESSAGE_BYTES // len(SENTENCE.encode()))
    while len(body := json.dumps({"type": "text", "text": text}).encode()) > MAX_MESSAGE_BYTES:
        text = text[:-16]
    return body.decode()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (every thread of it)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the application, in a child process ---------------------------------------------------


class AppProcess(Child):
    def __init__(self) -> None:
        super().__init__(_app_child, "coup-de-pouce")
        self.port = 0
        self.pid = 0

    async def launch(self, url: str, **settings: Any) -> None:
        await self.start()
        self.port = int(await self.ask("start_app", url, settings))
        self.pid = int(await self.ask("pid"))

    async def stalls(self) -> list[tuple[float, float]]:
        """The event loop's stalls over 50 ms since the last call: (seconds late, the main
        thread's CPU seconds meanwhile)."""
        result: list[tuple[float, float]] = await self.ask("stalls")
        return result


def _app_child(connection: Connection) -> None:
    quiet_logging()
    asyncio.run(_serve_app(connection))


class LoopWatch:
    """How late the application's event loop wakes a task that sleeps 10 ms: a long lateness
    is a stretch in which nothing else (another socket, /healthz) could run. The main
    thread's CPU time over the stretch tells a busy loop (code that does not yield) from a
    process waiting for a core (other processes on the machine)."""

    TICK = 0.01

    def __init__(self) -> None:
        self.stalls: list[tuple[float, float]] = []  # (seconds late, main thread's CPU)

    async def run(self) -> None:
        while True:
            asleep, cpu = time.monotonic(), time.thread_time()
            await asyncio.sleep(self.TICK)
            late = time.monotonic() - asleep - self.TICK
            if late > 0.05:
                self.stalls.append((late, time.thread_time() - cpu))

    def take(self) -> list[tuple[float, float]]:
        """The stalls over 50 ms since the last take."""
        stalls, self.stalls = self.stalls, []
        return stalls


async def _serve_app(connection: Connection) -> None:
    running: list[CoupDePouce] = []
    watch = LoopWatch()
    watching = asyncio.create_task(watch.run())

    async def start_app(url: str, overrides: dict[str, Any]) -> int:
        # Behind a proxy (this machine) that says who each client is: the flooder, the
        # resident and the health probe come from three addresses, as they would.
        settings = load_settings(
            database_url=url,
            http_host="127.0.0.1",
            http_port=0,
            trusted_proxy="127.0.0.1",
            **overrides,
        )
        app = CoupDePouce(settings, telegram=False)
        await app.start()
        running.append(app)
        assert app.port is not None
        return app.port

    async def stop() -> None:
        watching.cancel()
        for app in running:
            await app.stop()

    handlers: dict[str, Callable[..., Any]] = {
        "start_app": start_app,
        "pid": os.getpid,
        "stalls": watch.take,
    }
    await serve(connection, handlers, stop)


# --- the flooder, in another child process -------------------------------------------------


class Flooder(Child):
    def __init__(self) -> None:
        super().__init__(_flooder_child, "flooder")

    async def visit(self, base: str) -> None:
        """A new visitor: a cookie of their own."""
        await self.ask("visit", base)

    async def flood(self, base: str, count: int, body: str) -> dict[str, float]:
        result: dict[str, float] = await self.ask("flood", base, count, body)
        return result


def _flooder_child(connection: Connection) -> None:
    quiet_logging()
    asyncio.run(_serve_flooder(connection))


async def _serve_flooder(connection: Connection) -> None:
    clients: list[aiohttp.ClientSession] = []

    async def visit(base: str) -> None:
        client = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            headers={"Accept-Language": "fr", "X-Forwarded-For": FLOODER_ADDRESS},
        )
        async with client.get(f"{base}/") as response:
            response.raise_for_status()
            await response.read()
        clients.append(client)

    async def flood(base: str, count: int, body: str) -> dict[str, float]:
        cpu = time.process_time()
        opened = time.monotonic()
        try:
            socket = await clients[-1].ws_connect(f"{base}/chat/ws", max_msg_size=0)
        except aiohttp.WSServerHandshakeError:
            # Turned away (too many sockets opened from this address): a script tries again.
            await asyncio.sleep(0.05)
            return {
                "turned_away": 1,
                "history_bytes": 0,
                "history_seconds": 0.0,
                "started": opened,
                "sent": 0.0,
                "written": 0,
                "duration": 0.0,
                "answered": 0,
                "refused": 0,
                "other": 0,
                "closed": 0,
                "cpu": time.process_time() - cpu,
            }
        # The flooder's own kept conversation comes first, however long it grew.
        history = await socket.receive(timeout=300)
        history_seconds = time.monotonic() - opened
        history_bytes = len(history.data.encode()) if isinstance(history.data, str) else 0
        written = 0

        async def send_all() -> float:
            nonlocal written
            try:
                for _ in range(count):
                    await socket.send_str(body)
                    written += 1
            except (ConnectionError, RuntimeError):
                pass  # the server closed the socket
            return time.monotonic()

        started = time.monotonic()
        sender = asyncio.create_task(send_all())
        answered = refused = other = closed = 0
        last = started
        while answered + refused < count:
            message = await socket.receive(timeout=300)
            if message.type != aiohttp.WSMsgType.TEXT:
                closed = 1  # closed by the server
                last = time.monotonic()
                break
            data = json.loads(message.data)
            if data.get("type") != "outcome":
                other += 1
                continue
            if data.get("refused"):
                refused += 1
            else:
                answered += 1
            last = time.monotonic()
        sent = await sender
        await socket.close()
        return {
            "turned_away": 0,
            "history_bytes": history_bytes,
            "history_seconds": history_seconds,
            "started": started,
            "sent": sent - started,
            "written": written,
            "duration": last - started,
            "answered": answered,
            "refused": refused,
            "other": other,
            "closed": closed,
            "cpu": time.process_time() - cpu,
        }

    async def close() -> None:
        for client in clients:
            await client.close()

    await serve(connection, {"visit": visit, "flood": flood}, close)


# --- the resident and the health probe, in this process ------------------------------------


class Resident:
    """A joined resident with the page open, sending /help and timing each answer."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.client = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            headers={"Accept-Language": "fr", "X-Forwarded-For": RESIDENT_ADDRESS},
        )
        self.socket: aiohttp.ClientWebSocketResponse | None = None
        self.said = 0  # messages on the current socket
        self.refused = 0
        self.joined = False

    async def join(self) -> None:
        async with self.client.get(f"{self.base}/") as response:
            response.raise_for_status()
            await response.read()
            assert COOKIE in response.cookies
        socket = await self.reload()
        consent = await self.say(
            json.dumps({"type": "text", "text": "/start quartier-nord", "quiet": True})
        )
        [question] = consent["replies"]
        yes = question["choices"][0][0]
        await self.say(
            json.dumps({"type": "choice", "data": yes["data"], "message": question["id"]})
        )
        assert socket is self.socket
        self.joined = True

    async def reload(self) -> aiohttp.ClientWebSocketResponse:
        """A fresh page: the page, then its socket and the history."""
        if self.socket is not None:
            await self.socket.close()
        async with self.client.get(f"{self.base}/") as response:
            await response.read()
        self.socket = await self.client.ws_connect(f"{self.base}/chat/ws", max_msg_size=0)
        await self.socket.receive(timeout=60)
        self.said = 0
        return self.socket

    async def say(self, body: str) -> dict[str, Any]:
        assert self.socket is not None
        await self.socket.send_str(body)
        self.said += 1
        while True:
            answer: dict[str, Any] = await self.socket.receive_json(timeout=120)
            if answer.get("type") == "outcome":
                return answer

    async def taps(self, until: Callable[[], bool]) -> list[float]:
        """/help EVERY seconds after the previous answer until `until()`."""
        times: list[float] = []
        due = 0.0
        while not until():
            if self.socket is None or self.said >= RELOAD_EVERY:
                await self.reload()
            # EVERY seconds after the previous answer: the server never sees two messages
            # closer than that, so the resident stays under 5 a second whatever the delays.
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            sent = time.perf_counter()
            answer = await self.say(HELP)
            times.append(time.perf_counter() - sent)
            due = time.monotonic() + EVERY
            if answer.get("refused"):
                self.refused += 1
        return times

    async def leave(self) -> None:
        """Close the page (the server is about to go)."""
        if self.socket is not None:
            await self.socket.close()
            self.socket = None

    async def close(self) -> None:
        await self.leave()
        await self.client.close()


async def probe_health(base: str, until: Callable[[], bool]) -> list[float]:
    times: list[float] = []
    async with aiohttp.ClientSession() as client:
        started = time.monotonic()
        while not until():
            await asyncio.sleep(max(0.0, started + len(times) * EVERY - time.monotonic()))
            sent = time.perf_counter()
            async with client.get(f"{base}/healthz") as response:
                await response.read()
            times.append(time.perf_counter() - sent)
    return times


# --- phases --------------------------------------------------------------------------------


@dataclass
class Phase:
    replies: list[float] = field(default_factory=list)
    health: list[float] = field(default_factory=list)
    floods: list[dict[str, float]] = field(default_factory=list)
    server_cpu: float = 0.0
    seconds: float = 0.0
    stalls: list[tuple[float, float]] = field(default_factory=list)  # the server's loop


async def alongside(
    resident: Resident, base: str, work: Awaitable[Any], app: AppProcess
) -> tuple[Phase, Any]:
    """The resident's messages and the health probe while `work` runs."""
    await app.stalls()
    task = asyncio.ensure_future(work)
    cpu, started = cpu_seconds(app.pid), time.monotonic()
    replies, health = await asyncio.gather(resident.taps(task.done), probe_health(base, task.done))
    result = await task
    phase = Phase(replies, health, [], cpu_seconds(app.pid) - cpu, time.monotonic() - started)
    phase.stalls = await app.stalls()
    return phase, result


async def floods(
    app: AppProcess, flooder: Flooder, base: str, count: int, body: str, seconds: float
) -> list[dict[str, float]]:
    """Floods one after the other, each on a fresh socket, for at least `seconds`."""
    done: list[dict[str, float]] = []
    started = time.monotonic()
    while not done or time.monotonic() - started < seconds:
        cpu = cpu_seconds(app.pid)
        result = await flooder.flood(base, count, body)
        result["server_cpu"] = cpu_seconds(app.pid) - cpu
        done.append(result)
    return done


@dataclass(frozen=True)
class Variant:
    name: str
    count: int
    body: str
    settings: dict[str, Any]


@dataclass
class Outcome:
    variant: Variant
    calm: list[Phase] = field(default_factory=list)
    flooded: list[Phase] = field(default_factory=list)
    refused_resident: int = 0


async def run_variant(
    url: str, variant: Variant, resident: Resident, rounds: int, seconds: float
) -> Outcome:
    """A fresh application with the variant's settings; the same resident (their cookie)
    and a new flooder."""
    app = AppProcess()
    flooder = Flooder()
    await app.launch(url, **variant.settings)
    await flooder.start()
    base = f"http://127.0.0.1:{app.port}"
    outcome = Outcome(variant)
    try:
        resident.base = base
        if not resident.joined:
            await resident.join()
        await flooder.visit(base)
        await resident.reload()
        for _ in range(3):  # warm-up, paced as the taps are
            await resident.say(HELP)
            await asyncio.sleep(EVERY)
        refused = resident.refused
        for _ in range(rounds):
            calm, _ = await alongside(resident, base, asyncio.sleep(seconds), app)
            outcome.calm.append(calm)
            flooded, results = await alongside(
                resident,
                base,
                floods(app, flooder, base, variant.count, variant.body, seconds),
                app,
            )
            flooded.floods = results
            outcome.flooded.append(flooded)
        outcome.refused_resident = resident.refused - refused
    finally:
        await resident.leave()
        await flooder.stop()
        await app.stop()
    return outcome


# --- the report ----------------------------------------------------------------------------


def summary(values: Sequence[float]) -> str:
    if not values:
        return "no samples"
    return (
        f"p50 {percentile(values, 0.5) * 1e3:.1f} ms, p95 {percentile(values, 0.95) * 1e3:.1f} "
        f"ms, max {max(values) * 1e3:.1f} ms ({len(values)})"
    )


def stalls(values: Sequence[tuple[float, float]]) -> str:
    if not values:
        return "never"
    late = [value for value, _ in values]
    busy = sum(cpu for _, cpu in values) / sum(late)
    return (
        f"{len(values)} times, {sum(late):.2f} s in all, the longest {max(late):.2f} s, "
        f"running {busy:.0%} of it"
    )


def span(values: Sequence[float], fmt: str = ".2f") -> str:
    low, high = min(values), max(values)
    return f"{low:{fmt}}" if f"{low:{fmt}}" == f"{high:{fmt}}" else f"{low:{fmt}} to {high:{fmt}}"


def report(name: str, outcome: Outcome) -> None:
    variant = outcome.variant
    tries = [flood for phase in outcome.flooded for flood in phase.floods]
    turned_away = sum(int(flood["turned_away"]) for flood in tries)
    each = [flood for flood in tries if not flood["turned_away"]]
    print(
        f"[{name}] {variant.name}: {len(each)} floods of up to {variant.count:,} messages "
        f"({turned_away} more sockets turned away at the door)"
    )
    answered = sum(flood["answered"] for flood in each)
    refused = sum(flood["refused"] for flood in each)
    closed = sum(int(flood["closed"]) for flood in each)
    print(
        f"[{name}]   per flood: {span([f['duration'] for f in each])} s from the first message "
        f"to the last answer; answered {span([f['answered'] for f in each], '.0f')}, refused "
        f"{span([f['refused'] for f in each], '.0f')} (in all {answered:,.0f} answered, "
        f"{refused:,.0f} refused, {sum(f['other'] for f in each):,.0f} other); "
        f"{closed} of {len(each)} sockets closed by the server"
    )
    print(
        f"[{name}]   server CPU per flood {span([f['server_cpu'] for f in each])} s = "
        f"{span([f['server_cpu'] / max(f['answered'] + f['refused'], 1) * 1e6 for f in each], ',.0f')}"  # noqa: E501
        " µs per message read (socket opening included); the flooder's own CPU "
        f"{span([f['cpu'] for f in each])} s"
    )
    print(
        f"[{name}]   the flooder's history at each socket opening: "
        f"{span([f['history_bytes'] / 1e3 for f in each], ',.1f')} kB, given in "
        f"{span([f['history_seconds'] * 1e3 for f in each], ',.0f')} ms"
    )
    for calm, flooded in zip(outcome.calm, outcome.flooded, strict=True):
        share = flooded.server_cpu / flooded.seconds
        print(
            f"[{name}]   server CPU: calm {calm.server_cpu / calm.seconds:.0%} of a core, "
            f"flood phase {share:.0%} ({flooded.seconds:.1f} s); its event loop stalled > 50 ms: "
            f"calm {stalls(calm.stalls)}, flood {stalls(flooded.stalls)}"
        )
    calm_replies = [value for phase in outcome.calm for value in phase.replies]
    flood_replies = [value for phase in outcome.flooded for value in phase.replies]
    print(f"[{name}]   resident's /help, calm:   {summary(calm_replies)}")
    print(f"[{name}]   resident's /help, flood:  {summary(flood_replies)}")
    ratios = [
        percentile(flooded.replies, 0.95) / percentile(calm.replies, 0.95)
        for calm, flooded in zip(outcome.calm, outcome.flooded, strict=True)
        if calm.replies and flooded.replies
    ]
    pooled = percentile(flood_replies, 0.95) / percentile(calm_replies, 0.95)
    verdict = "yes" if pooled < TARGET else "NO"
    print(
        f"[{name}]   ratio flood/calm: p50 "
        f"{percentile(flood_replies, 0.5) / percentile(calm_replies, 0.5):.2f}, p95 "
        f"{pooled:.2f} (per round {span(ratios)}); p95 < {TARGET:.0f}x calm: {verdict}"
    )
    if outcome.refused_resident:
        print(f"[{name}]   the resident was refused {outcome.refused_resident} times")
    calm_health = [value for phase in outcome.calm for value in phase.health]
    flood_health = [value for phase in outcome.flooded for value in phase.health]
    print(f"[{name}]   /healthz, calm:  {summary(calm_health)}")
    print(f"[{name}]   /healthz, flood: {summary(flood_health)}")


# --- the run -------------------------------------------------------------------------------


async def run(kind: str, parsed: argparse.Namespace) -> None:
    name = label(kind)
    variants = [Variant("/help, default limits", FLOOD, HELP, {})]
    if not parsed.no_large:
        variants.append(Variant("64 KB texts, default limits", FLOOD, large_message(), {}))
    if not parsed.no_raised:
        variants.append(
            Variant(
                "LIMITS RAISED (not what residents get): /help",
                parsed.raised_messages,
                HELP,
                {
                    "webchat_messages_per_second": RAISED,
                    "webchat_messages_per_minute": RAISED,
                    "webchat_messages_per_address": RAISED,
                    "webchat_sockets_per_minute": RAISED,
                },
            )
        )
    print(
        f"[{name}] the resident sends /help {EVERY} s after each answer; {parsed.rounds} rounds of "
        f"{parsed.seconds:.0f} s calm then >= {parsed.seconds:.0f} s of floods, per variant"
    )
    async with scratch_database(kind) as url:
        await add_council(url)
        resident = Resident("")
        try:
            for variant in variants:
                outcome = await run_variant(url, variant, resident, parsed.rounds, parsed.seconds)
                report(name, outcome)
        finally:
            await resident.close()


def arguments(argv: Sequence[str] | None = None) -> tuple[list[str], argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2, help="calm + flood phases per variant")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each phase")
    parser.add_argument("--no-large", action="store_true", help="leave out the 64 KB variant")
    parser.add_argument("--no-raised", action="store_true", help="leave out the raised limits")
    parser.add_argument("--raised-messages", type=int, default=300)
    parsed, rest = parser.parse_known_args(argv)
    if parsed.rounds < 1 or parsed.seconds <= 0 or parsed.raised_messages < 1:
        parser.error("--rounds, --seconds and --raised-messages take a positive number")
    return database_kinds(rest, description=__doc__ or ""), parsed


async def main() -> int:
    quiet_logging()
    kinds, parsed = arguments(sys.argv[1:])
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load} at the start")
    for kind in kinds:
        await run(kind, parsed)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

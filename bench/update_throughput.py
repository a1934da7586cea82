"""Figure 9: how many updates a second does the bot handle, against a bare python-telegram-bot
application?

A burst: `--residents` (1,000) residents each send "/help" at once (all pushed to the
emulator's getUpdates queue in one go), and the bot answers them all. Rate: updates / (first
push to the last reply the emulator read). Two scenarios:

(a) no network delay; the bot unpaced (`dispatch_rate=10000`), against a bare
    python-telegram-bot `Application` handling updates one at a time (its default);
(b) every Bot API round trip delayed by `--delay` (0.05 s): the emulator answers each call
    that long after processing it, getUpdates and the start-up calls included (the
    emulator's default delays only the methods acting on a chat); the bot still unpaced,
    against the bare application with `concurrent_updates(64)`.

The residents are members who consented and joined the council (`common.add_residents`, the
plain INSERTs equivalent to tests/factories.py) and never wrote to the bot before: each
"/help" is their first message (the engine creates their conversation row and writes
`persons.last_seen_at`). `--newcomers` adds a pass of first-time visitors (no person, no
membership). Each bot pass uses residents of its own, so every pass does the same work.

The bare application (library defaults: its Updater polling getUpdates, HTTPXRequest, no
database) answers "/help" with a CommandHandler sending the same text the bot sends (read
from the bot's answer to a first probe). Each pass starts its application afresh, sends 20
unmeasured "/help" first, and stops it once the emulator saw every update confirmed.

Measured per pass: updates/s; the bot's CPU per update (this process holds the bot alone:
the emulator runs in a child process, whose CPU is reported apart; `time.process_time`
covers every thread, aiosqlite's too, and the event loop's thread is shown apart); SQL
statements per update (SQLAlchemy's `before_cursor_execute` on the application's engine, so
also what the dispatcher and the scheduler ran meanwhile: by task), commits per update (its
`commit` event); and on SQLite the thread handoffs per update: every call that aiosqlite
0.22 hands to its connection's worker thread goes through `aiosqlite.Connection._execute`
(the cursor's methods call it too), which puts the call on the thread's queue and awaits a
future that the thread resolves with `call_soon_threadsafe`: one round trip between the
event loop and the thread. It is wrapped for the measured burst only (a counter and a call,
well under 1 % of the CPU per update). The application makes no other thread hop on this
path (no `to_thread`). PostgreSQL (asyncpg) has none.

Each scenario is repeated `--rounds` times (2), the bare application first in odd rounds and
the bot first in even ones; ratios per round and their spread are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from telegram import Update
from telegram.ext import Application, ApplicationBuilder, CommandHandler, ContextTypes

from bench.child import Child, serve
from bench.common import (
    TOKEN,
    add_council,
    add_residents,
    database_kinds,
    label,
    quiet_logging,
    scratch_database,
    start_app,
)
from bench.remote_emulator import ROUND_TRIPS
from tests.emulator import SLOW_METHODS, BotApiEmulator, Call

RESIDENTS = 1_000
ROUNDS = 2
DELAY = 0.05
WARMUP = 20  # unmeasured "/help" per pass
BARE_CONCURRENCY = 64
REPLY_WAIT = 300.0  # seconds for a burst's replies before giving up
TEXT = "/help"
PROBE = 60_000_001  # the member whose answer gives the text the bare application sends
MEMBERS_FIRST = 60_000_101
NEWCOMERS_FIRST = 70_000_001
BARE_FIRST = 80_000_001
# The targets, ratio of the bot's rate to the bare application's: (scenario, database)
TARGETS = {("a", "sqlite"): 0.8, ("a", "postgresql"): 0.6, ("b", "sqlite"): 0.7}
TARGETS[("b", "postgresql")] = 0.7


# --- the emulator and the residents, in a child process ------------------------------------


@dataclass(frozen=True)
class Burst:
    """What the emulator saw of one burst (times are time.monotonic() in the child)."""

    updates: int
    first_push: float
    last_push: float
    replies: list[float]  # per chat answered: when its first reply was read
    messages: int  # successful sendMessage calls to the burst's chats
    refused: int  # calls to the burst's chats answered with an error
    methods: dict[str, int]  # every call made during the burst, by method
    emulator_cpu: float  # CPU seconds of the child during the burst

    @property
    def answered(self) -> int:
        return len(self.replies)

    @property
    def span(self) -> float:
        return max(self.replies) - self.first_push if self.replies else 0.0

    @property
    def rate(self) -> float:
        return self.answered / self.span if self.span > 0 else 0.0


class BurstEmulator(Child):
    """The Bot API emulator, and residents who all send "/help" at once, in a child process."""

    def __init__(self) -> None:
        super().__init__(_child, "bot-api-emulator")
        self.url = ""

    async def start(self) -> None:
        await super().start()
        self.url = str(await self.ask("url"))

    async def delay(self, seconds: float) -> None:
        """Answer every round trip `seconds` late (0: answer at once)."""
        methods = ROUND_TRIPS if seconds > 0 else SLOW_METHODS
        await self.ask("configure", response_delay=seconds, slow_methods=methods)

    async def burst(self, chats: range, timeout: float = REPLY_WAIT) -> Burst:  # noqa: ASYNC109
        """Push "/help" from every chat at once; return when each got a reply."""
        result: dict[str, Any] = await self.ask("burst", chats.start, chats.stop, timeout)
        return Burst(**result)

    async def settle(self) -> int:
        """Wait until getUpdates confirmed every update; return how many are still pending."""
        return int(await self.ask("settle"))

    async def texts(self, chat: int) -> list[str]:
        result: list[str] = await self.ask("texts", chat)
        return result


def _child(connection: Connection) -> None:
    quiet_logging()
    asyncio.run(_serve(connection))


async def _serve(connection: Connection) -> None:
    emulator = BotApiEmulator()
    await emulator.start()

    def configure(**attributes: Any) -> None:
        for name, value in attributes.items():
            if not hasattr(emulator, name):
                raise AttributeError(f"the emulator has no {name}")
            setattr(emulator, name, value)

    async def burst(first: int, stop: int, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
        chats = range(first, stop)
        users = [emulator.resident(chat, language_code="fr") for chat in chats]
        calls = emulator.calls
        cursor = len(calls)
        replies: dict[int, float] = {}
        messages = refused = 0
        methods: Counter[str] = Counter()
        cpu = time.process_time()
        first_push = time.monotonic()
        for user in users:
            user.send(TEXT)
        last_push = time.monotonic()
        deadline = first_push + timeout
        while len(replies) < len(chats) and time.monotonic() < deadline:
            with contextlib.suppress(AssertionError):
                await emulator.wait_until(_longer_than(calls, cursor), 1.0)
            while cursor < len(calls):
                call = calls[cursor]
                if call.response is None:  # still being answered
                    await asyncio.sleep(0.001)
                    break
                cursor += 1
                methods[call.method] += 1
                chat = _chat(call)
                if chat not in chats:
                    continue
                if not call.ok:
                    refused += 1
                elif call.method == "sendMessage":
                    messages += 1
                    replies.setdefault(chat, call.at)
        return {
            "updates": len(chats),
            "first_push": first_push,
            "last_push": last_push,
            "replies": list(replies.values()),
            "messages": messages,
            "refused": refused,
            "methods": dict(methods),
            "emulator_cpu": time.process_time() - cpu,
        }

    async def settle() -> int:
        with contextlib.suppress(AssertionError):
            await emulator.wait_until_consumed(timeout=10.0)
        return emulator.pending_updates

    def texts(chat: int) -> list[str]:
        return [message.plain_text or "" for message in emulator.messages(chat)]

    handlers: dict[str, Callable[..., Any]] = {
        "url": lambda: emulator.url,
        "configure": configure,
        "burst": burst,
        "settle": settle,
        "texts": texts,
    }
    await serve(connection, handlers, emulator.stop)


def _longer_than(calls: list[Call], seen: int) -> Callable[[], bool | None]:
    return lambda: len(calls) > seen or None


def _chat(call: Call) -> int:
    try:
        return int(call.params.get("chat_id", 0))
    except (TypeError, ValueError):
        return 0


# --- counting what the bot does -----------------------------------------------------------


@dataclass
class Counts:
    """Statements, commits and aiosqlite thread handoffs while a burst was handled."""

    statements: Counter[str] = field(default_factory=Counter)  # by first keyword
    tasks: Counter[str] = field(default_factory=Counter)  # statements by the task running them
    commits: int = 0
    hops: Counter[str] = field(default_factory=Counter)  # aiosqlite calls by function


@contextlib.contextmanager
def counting(database: AsyncEngine) -> Iterator[Counts]:
    counts = Counts()
    engine = database.sync_engine

    def on_statement(*args: Any) -> None:
        statement = str(args[2])
        counts.statements[statement.split(None, 1)[0].upper() if statement else "?"] += 1
        task = asyncio.current_task()
        name = task.get_name() if task is not None else "no task"
        counts.tasks["unnamed tasks" if name.startswith("Task-") else name] += 1

    def on_commit(*_args: Any) -> None:
        counts.commits += 1

    original = aiosqlite.Connection._execute

    def handed_over(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        counts.hops[getattr(fn, "__name__", "?")] += 1
        return original(self, fn, *args, **kwargs)

    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "commit", on_commit)
    aiosqlite.Connection._execute = handed_over  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        aiosqlite.Connection._execute = original  # type: ignore[method-assign]
        event.remove(engine, "commit", on_commit)
        event.remove(engine, "before_cursor_execute", on_statement)


# --- the passes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pass:
    """One burst handled by one application, measured."""

    who: str
    burst: Burst
    cpu: float  # CPU seconds of this process, every thread
    loop_cpu: float  # CPU seconds of this process's main thread (the event loop)
    counts: Counts | None = None  # the bot's database work
    left: int = 0  # updates still unconfirmed when the application stopped

    def per_update(self, value: float) -> float:
        return value / max(self.burst.answered, 1)


async def measured(
    who: str, emulator: BurstEmulator, chats: range, counts: Counts | None = None
) -> Pass:
    cpu, loop_cpu = time.process_time(), time.thread_time()
    burst = await emulator.burst(chats)
    cpu, loop_cpu = time.process_time() - cpu, time.thread_time() - loop_cpu
    return Pass(who, burst, cpu, loop_cpu, counts)


async def bot_pass(
    who: str, url: str, emulator: BurstEmulator, warmup: range, chats: range
) -> Pass:
    app = await start_app(url, emulator.url, rate=10_000, chat_interval=0)
    try:
        await app.scheduler.caught_up()
        await emulator.burst(warmup)
        await asyncio.sleep(0.5)
        with counting(app.database) as counts:
            done = await measured(who, emulator, chats, counts)
        left = await emulator.settle()
    finally:
        await app.stop()
    return Pass(done.who, done.burst, done.cpu, done.loop_cpu, done.counts, left)


async def bare_pass(
    who: str, emulator: BurstEmulator, text: str, concurrency: int, warmup: range, chats: range
) -> Pass:
    """A bare Application answering "/help" with the bot's text, no database."""

    async def on_help(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat = update.effective_chat
        assert chat is not None
        await context.bot.send_message(chat.id, text)

    builder = (
        ApplicationBuilder()
        .token(TOKEN)
        .base_url(f"{emulator.url}/bot")
        .base_file_url(f"{emulator.url}/file/bot")
    )
    if concurrency > 1:
        builder = builder.concurrent_updates(concurrency)
    application: Application[Any, Any, Any, Any, Any, Any] = builder.build()
    application.add_handler(CommandHandler("help", on_help))
    await application.initialize()
    await application.start()
    updater = application.updater
    assert updater is not None
    await updater.start_polling(poll_interval=0.0, allowed_updates=["message"])
    try:
        await emulator.burst(warmup)
        await asyncio.sleep(0.5)
        done = await measured(who, emulator, chats)
        left = await emulator.settle()
    finally:
        await updater.stop()
        await application.stop()
        await application.shutdown()
    return Pass(done.who, done.burst, done.cpu, done.loop_cpu, None, left)


async def probe(url: str, emulator: BurstEmulator) -> str:
    """The bot's answer to "/help" from a member (in French), for the bare application."""
    app = await start_app(url, emulator.url, rate=10_000, chat_interval=0)
    try:
        await app.scheduler.caught_up()
        await emulator.burst(range(PROBE, PROBE + 1), timeout=30)
        await emulator.settle()
    finally:
        await app.stop()
    texts = await emulator.texts(PROBE)
    if len(texts) != 1:
        raise RuntimeError(f"the bot answered /help with {len(texts)} messages, not 1")
    return texts[0]


# --- showing -------------------------------------------------------------------------------


def show(prefix: str, done: Pass) -> None:
    burst = done.burst
    missing = burst.updates - burst.answered
    extra = burst.messages - burst.answered
    print(
        f"{prefix} {done.who}: {burst.answered:,} of {burst.updates:,} answered, "
        f"{burst.rate:,.0f} updates/s (first push to last reply, {burst.span:.2f} s; pushing "
        f"took {(burst.last_push - burst.first_push) * 1e3:.0f} ms)"
        + (f"; UNANSWERED {missing}" if missing else "")
        + (f"; {extra} more messages than chats" if extra else "")
        + (f"; {burst.refused} calls refused" if burst.refused else "")
        + (f"; {done.left} updates left unconfirmed" if done.left else "")
    )
    print(
        f"{prefix} {done.who}: CPU {done.per_update(done.cpu) * 1e3:.2f} ms/update in this "
        f"process ({done.cpu / burst.span if burst.span else 0:.0%} of a core; event loop "
        f"thread {done.per_update(done.loop_cpu) * 1e3:.2f}), emulator "
        f"{done.per_update(burst.emulator_cpu) * 1e3:.2f} ms/update in its own; Bot API calls "
        f"per update: {_per_update(done, burst.methods)}"
    )
    counts = done.counts
    if counts is None:
        return
    total = sum(counts.statements.values())
    print(
        f"{prefix} {done.who}: {done.per_update(total):.2f} statements/update "
        f"({_per_update(done, counts.statements)}), {done.per_update(counts.commits):.2f} "
        f"commits/update; statements by task: {_per_update(done, counts.tasks)}"
    )
    if counts.hops:
        hops = sum(counts.hops.values())
        print(
            f"{prefix} {done.who}: {done.per_update(hops):.1f} aiosqlite thread handoffs/update "
            f"({_per_update(done, counts.hops)})"
        )


def _per_update(done: Pass, counter: Counter[str] | dict[str, int]) -> str:
    ordered = sorted(counter.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{name} {done.per_update(count):.2f}" for name, count in ordered)


def spread(values: list[float], digits: int = 0) -> str:
    low, high = min(values), max(values)
    if f"{low:,.{digits}f}" == f"{high:,.{digits}f}":
        return f"{low:,.{digits}f}"
    return f"{low:,.{digits}f} to {high:,.{digits}f}"


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# --- the run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    residents: int
    rounds: int
    delay: float
    scenarios: str
    newcomers: bool


@dataclass
class Blocks:
    """Chat ids: a fresh block for every pass (members seeded for the bot's passes)."""

    size: int
    members: int = MEMBERS_FIRST
    newcomers: int = NEWCOMERS_FIRST
    bare: int = BARE_FIRST

    def take(self, kind: str) -> tuple[range, range]:
        first: int = getattr(self, kind)
        setattr(self, kind, first + self.size)
        return range(first, first + WARMUP), range(first + WARMUP, first + self.size)


async def run(kind: str, options: Options) -> None:
    name = label(kind)
    blocks = Blocks(WARMUP + options.residents)
    bot_passes = options.rounds * len(options.scenarios)
    started = time.monotonic()
    print(
        f'[{name}] {options.residents:,} updates a burst ("{TEXT}" from distinct residents '
        f"at once), {options.rounds} rounds; load average at the start {load_average()} "
        f"(2-core machine: other work competes)"
    )
    async with scratch_database(kind) as url:
        council_id = await add_council(url)
        await add_residents(url, council_id, [PROBE])
        await add_residents(
            url, council_id, list(range(MEMBERS_FIRST, MEMBERS_FIRST + bot_passes * blocks.size))
        )
        emulator = BurstEmulator()
        await emulator.start()
        results: dict[str, list[tuple[Pass, ...]]] = {}
        try:
            text = await probe(url, emulator)
            for scenario in options.scenarios:
                delay = options.delay if scenario == "b" else 0.0
                concurrency = BARE_CONCURRENCY if scenario == "b" else 1
                bare_who = (
                    f"bare Application, concurrent_updates({concurrency})"
                    if concurrency > 1
                    else "bare Application, one update at a time"
                )
                await emulator.delay(delay)
                for number in range(1, options.rounds + 1):
                    prefix = f"[{name}] ({scenario}) round {number}"
                    bare: Pass | None = None
                    bot: Pass | None = None
                    for step in ("bare", "bot") if number % 2 else ("bot", "bare"):
                        if step == "bare":
                            bare = await bare_pass(
                                bare_who, emulator, text, concurrency, *blocks.take("bare")
                            )
                            show(prefix, bare)
                        else:
                            bot = await bot_pass(
                                "Coup de pouce, members", url, emulator, *blocks.take("members")
                            )
                            show(prefix, bot)
                    assert bare is not None and bot is not None
                    passes: tuple[Pass, ...] = (bare, bot)
                    if options.newcomers:
                        newcomers = await bot_pass(
                            "Coup de pouce, first-time visitors",
                            url,
                            emulator,
                            *blocks.take("newcomers"),
                        )
                        show(prefix, newcomers)
                        passes = (*passes, newcomers)
                    print(
                        f"{prefix}: ratio Coup de pouce/bare: rate "
                        f"{bot.burst.rate / bare.burst.rate:.2f}, CPU per update "
                        f"{bot.per_update(bot.cpu) / bare.per_update(bare.cpu):.1f}"
                    )
                    results.setdefault(scenario, []).append(passes)
        finally:
            await emulator.stop()
    summary(name, kind, options, results)
    print(
        f"[{name}] {time.monotonic() - started:.0f} s in all; load average at the end "
        f"{load_average()}"
    )


def summary(
    name: str, kind: str, options: Options, results: dict[str, list[tuple[Pass, ...]]]
) -> None:
    for scenario, rounds in results.items():
        what = (
            "no delay, bot unpaced vs bare one update at a time"
            if scenario == "a"
            else f"every round trip {options.delay * 1e3:.0f} ms, bot unpaced vs bare "
            f"concurrent_updates({BARE_CONCURRENCY})"
        )
        bare = [passes[0] for passes in rounds]
        bot = [passes[1] for passes in rounds]
        ratios = [b.burst.rate / a.burst.rate for a, b in zip(bare, bot, strict=True)]
        target = TARGETS[(scenario, kind)]
        print(f"[{name}] ({scenario}) {what}, {len(rounds)} rounds:")
        print(
            f"[{name}] ({scenario})   updates/s: Coup de pouce "
            f"{spread([p.burst.rate for p in bot])}, bare {spread([p.burst.rate for p in bare])}"
        )
        print(
            f"[{name}] ({scenario})   CPU ms/update: Coup de pouce "
            f"{spread([p.per_update(p.cpu) * 1e3 for p in bot], 1)}, bare "
            f"{spread([p.per_update(p.cpu) * 1e3 for p in bare], 1)}"
        )
        counts = [p.counts for p in bot if p.counts is not None]
        statements = [bot[i].per_update(sum(c.statements.values())) for i, c in enumerate(counts)]
        line = (
            f"[{name}] ({scenario})   Coup de pouce per update: statements "
            f"{spread(statements, 1)}, commits "
            f"{spread([bot[i].per_update(c.commits) for i, c in enumerate(counts)], 1)}"
        )
        if any(c.hops for c in counts):
            hops = [bot[i].per_update(sum(c.hops.values())) for i, c in enumerate(counts)]
            line += f", aiosqlite thread handoffs {spread(hops, 1)}"
        print(line)
        if len(rounds[0]) > 2:
            visitors = [passes[2] for passes in rounds]
            shares = [v.burst.rate / a.burst.rate for a, v in zip(bare, visitors, strict=True)]
            print(
                f"[{name}] ({scenario})   first-time visitors: "
                f"{spread([p.burst.rate for p in visitors])} updates/s, ratio to bare "
                f"{spread(shares, 2)}"
            )
        verdict = "yes" if min(ratios) >= target else "NO"
        print(
            f"[{name}] ({scenario})   ratio Coup de pouce/bare, rate: {spread(ratios, 2)} "
            f"(target >= {target}): {verdict}"
        )


async def main() -> int:
    quiet_logging()
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--residents", type=int, default=RESIDENTS)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--delay", type=float, default=DELAY)
    parser.add_argument("--scenarios", choices=["a", "b", "ab"], default="ab")
    parser.add_argument("--newcomers", action="store_true")
    chosen, rest = parser.parse_known_args()
    options = Options(
        chosen.residents, chosen.rounds, chosen.delay, chosen.scenarios, chosen.newcomers
    )
    for kind in database_kinds(rest, description=__doc__ or ""):
        await run(kind, options)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

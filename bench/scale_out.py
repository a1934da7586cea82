"""Figure 10: does the work spread over processes on one PostgreSQL (`coupdepouce run --role`)?

PostgreSQL only (`BENCH_POSTGRES_URL`): roles need it. Every process of the bot is a real
`python -m bot run --role ROLE` started as a deployment would (environment variables, its
own port), as tests/test_scale_out.py does; the Bot API emulator runs in a child process
(`remote_emulator.py`) and so do the webhook posters (`remote_posters.py`).

(1) Updates per second with 1 and with 2 `web` workers. `--residents` (1,000) members (the
    plain INSERTs of `common.add_residents`) each send "/help": the update Telegram would
    post, with the secret header, posted by `--concurrency` (32) concurrent posters round
    robin over the workers' ports. The emulator answers every round trip `--delay` (0.05 s)
    late (`response_delay`, `slow_methods` = `remote_emulator.ROUND_TRIPS`), as Telegram
    from France would. DISPATCH_RATE=10000: the shared pace (one statement for the replies
    waiting at that moment) is still taken, but never waited for, so what is measured is
    handling, not the rate.
    Rate = updates / (first post to the last reply the emulator read). CPU per update of
    the bot's processes (utime + stime from /proc/PID/stat before and after), and beside
    it where the rest of the machine's CPU went meanwhile: the PostgreSQL server (its
    processes, and the backends that ended meanwhile through the postmaster's cutime and
    cstime; every database, so other work's too), the emulator, the posters, and what
    else ran on the machine (/proc/stat's busy time minus all those). Each pass starts its
    processes afresh and warms them up with `WARMUP` posts per process. A third pass, as a
    reference (`--no-reference` leaves it out): one `run --role all` process, the rest
    alike. `--profile` adds a pass of one web
    worker under cProfile (`bench/worker.py`, switched on for the burst alone by SIGUSR1):
    the own time of its functions by package, the most costly functions, and a few counts
    per update (PostgreSQL connections opened, among others). `--pool-size N` runs the
    processes of (1) with a database pool of N connections (`bench/worker.py` again)
    instead of SQLAlchemy's 5 and 10 in overflow.

(2) A broadcast at 30 messages a second with 2 dispatchers: the emulator enforcing
    Telegram's limits (`enforce_limits()`: 30/s bot-wide in a bucket of one second, 1/s
    per chat) and answering each send 50 ms late; `--broadcast` (600) members queued in
    the outbox (`start_broadcast`, as a flow does); two `run --role dispatcher` processes
    with DISPATCH_RATE=30. Variants, in the same run:
    - baseline: one `run --role all` process (today's single process);
    - 2 dispatchers;
    - 2 dispatchers and a `web` worker answering "/help" from other residents meanwhile
      (`--help-rate`, 3 a second, posted from this process): the replies and the broadcast
      keep to 30/s together through the shared pace;
    - with `--window` left on (the default), the baseline and the 2 dispatchers again
      against a strict moving one-second window (at most 30 in any second) instead of
      the bucket.
    Each process gets a token of its own (the emulator serves any token; the token is
    only in the request's URL), so the emulator tells which process sent each message.
    Achieved rate = delivered / first to last delivery on the emulator's receive times,
    against 30 (target >= 0.95), and with the replies counted in; 429 refusals, lost and
    duplicated messages (target 0); messages sent by each process (one dispatcher should
    send, the other stand by); busiest one-second and two-second windows of all sends;
    the CPU of each process. Ratio of achieved rates against the baseline, per round.

    A broadcast during which one of the processes stopped (a dispatcher that lost its
    lease exits with an error: another program on the server ended its connection) is
    shown, marked as disturbed and run again once; only the second counts.

Each part runs `--rounds` (2) rounds, the order of its passes reversed in even rounds, and
prints the spread. Before each pass and each broadcast it waits (up to `--quiet-wait`, 20
minutes) for the machine's one-minute load average to fall below `--max-load` (1.5), and it
prints the load average at the start and the end of each, and of each round. `--only`
picks some of (2)'s broadcasts (all, dispatchers, web, all-window, dispatchers-window).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import pstats
import secrets
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiohttp
from sqlalchemy import func, select, update

from bench.common import (
    BROADCAST_TEXT,
    TOKEN,
    add_council,
    add_residents,
    bench_reply,
    max_in_window,
    percentile,
    postgres_url,
    quiet_logging,
    rate_between,
    scratch_database,
    tally,
)
from bench.remote_emulator import ROUND_TRIPS, RemoteEmulator, Send
from bench.remote_posters import Post, RemotePosters, Request
from bench.whatsapp_webhook import SECRET, TELEGRAM_PATH, WEBHOOK_URL, telegram_requests
from flows.broadcasts.service import members, start_broadcast
from storage import db
from storage.models import Council, OutboxMessage, OutboxStatus

RESIDENTS = 1_000
CONCURRENCY = 32
DELAY = 0.05
ROUNDS = 2
WARMUP = 20  # posts per worker before measuring
BROADCAST = 600
RATE = 30
HELP_RATE = 3.0
TARGET = 0.95
MAX_LOAD = 1.5
QUIET_WAIT = 1200.0
REPLY_WAIT = 120.0  # seconds after the last post before giving up on replies
DEADLINE_SLACK = 60.0  # seconds beyond the broadcast's expected time before giving up
UNPACED = "10000"
FIRST_WEB_ID = 90_000_001
FIRST_BROADCAST_ID = 91_000_001
FIRST_HELP_ID = 92_000_001
TICK = os.sysconf("SC_CLK_TCK")


# --- the machine -----------------------------------------------------------------------------


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


async def wait_quiet(max_load: float, longest: float) -> None:
    """Wait until the one-minute load average is below `max_load` (at most `longest` s)."""
    started = time.monotonic()
    said = False
    while os.getloadavg()[0] >= max_load:
        waited = time.monotonic() - started
        if waited >= longest:
            print(
                f"  load average still {load_average()} after {waited / 60:.0f} min: "
                f"measuring anyway (the figures are from a loaded machine)"
            )
            return
        if not said:
            print(
                f"  waiting for a one-minute load average below {max_load} (now {load_average()})"
            )
            said = True
        await asyncio.sleep(10)
    if said:
        print(f"  quiet after {(time.monotonic() - started) / 60:.1f} min")


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()  # fields from the third (state) on


def process_cpu(pid: int) -> float:
    """CPU seconds of a process so far (utime + stime, every thread); NaN once it is gone."""
    try:
        fields = _stat_fields(pid)
    except (OSError, ValueError):
        return math.nan
    return (int(fields[11]) + int(fields[12])) / TICK


def backends_cpu(database: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to `database` (by the
    process title, "postgres: ... USER DATABASE HOST(PORT) ...")."""
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres:") and f" {database} " in title:
            cpu = process_cpu(int(entry.name))
            if not math.isnan(cpu):
                found[int(entry.name)] = cpu
    return found


def server_cpu() -> float:
    """CPU seconds so far of the PostgreSQL server, every database: its processes, and the
    backends that ended (counted in the postmaster's cutime and cstime once it reaped
    them, so that connections opened and closed meanwhile count too)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if title.startswith("postgres:"):
                cpu = process_cpu(int(entry.name))
                total += 0.0 if math.isnan(cpu) else cpu
            elif "bin/postgres " in title:  # the postmaster
                fields = _stat_fields(int(entry.name))
                total += sum(int(value) for value in fields[11:15]) / TICK
        except (OSError, ValueError):
            continue
    return total


def machine_busy() -> float:
    """CPU seconds the machine's cores spent busy so far (every process)."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    return (user + nice + system + irq + softirq + steal) / TICK


@dataclass(frozen=True)
class Sample:
    """CPU counters at one moment."""

    at: float
    workers: dict[int, float]
    backends: dict[int, float]
    server: float
    busy: float
    emulator: float
    posters: float
    own: float


@dataclass(frozen=True)
class Usage:
    """CPU seconds used between two samples, by whom."""

    wall: float
    workers: dict[int, float]  # by process id
    backends: float  # PostgreSQL backends of the bench's database, still connected
    server: float  # the PostgreSQL server, every database (other work's too)
    emulator: float
    posters: float
    own: float  # this process (the residents posting "/help" in (2), the polling)
    busy: float  # the whole machine

    @property
    def known(self) -> float:
        workers = sum(cpu for cpu in self.workers.values() if not math.isnan(cpu))
        return workers + self.server + self.emulator + self.posters + self.own

    @property
    def others(self) -> float:
        """What else ran on the machine meanwhile."""
        return max(0.0, self.busy - self.known)


class Meter:
    """Samples the CPU of the bot's processes, the database's backends, the children."""

    def __init__(self, database: str, emulator: RemoteEmulator, posters: RemotePosters) -> None:
        self.database = database
        self.emulator = emulator
        self.posters = posters

    async def sample(self, pids: Sequence[int]) -> Sample:
        emulator = await self.emulator.cpu()
        posters = await self.posters.cpu()
        return Sample(
            time.monotonic(),
            {pid: process_cpu(pid) for pid in pids},
            backends_cpu(self.database),
            server_cpu(),
            machine_busy(),
            emulator,
            posters,
            time.process_time(),
        )

    @staticmethod
    def between(before: Sample, after: Sample) -> Usage:
        return Usage(
            wall=after.at - before.at,
            workers={pid: cpu - before.workers.get(pid, 0.0) for pid, cpu in after.workers.items()},
            # A backend that ended meanwhile is not counted (the pools keep their connections).
            backends=sum(
                cpu - before.backends.get(pid, 0.0) for pid, cpu in after.backends.items()
            ),
            server=after.server - before.server,
            emulator=after.emulator - before.emulator,
            posters=after.posters - before.posters,
            own=after.own - before.own,
            busy=after.busy - before.busy,
        )


# --- the bot's processes ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def token_of(name: str) -> str:
    """A process's own token: the emulator serves any, and tells the senders apart by it."""
    return f"{TOKEN}-{name}"


class Worker:
    """`python -m bot run --role ROLE` as a real process, with a token of its own."""

    def __init__(
        self, role: str, name: str, process: asyncio.subprocess.Process, port: int, log: Path
    ) -> None:
        self.role, self.name, self.process, self.port, self.log = role, name, process, port, log
        self.token = token_of(name)

    @classmethod
    async def start(
        cls,
        role: str,
        name: str,
        url: str,
        api_url: str,
        folder: Path,
        profile: Path | None = None,
        **env: str,
    ) -> Worker:
        """Start it and wait until it is ready. With `profile`, or BENCH_POOL_SIZE in `env`,
        through `bench.worker`: SIGUSR1 and SIGUSR2 start and stop cProfile, which writes
        its stats to `profile`; the database pool holds BENCH_POOL_SIZE connections."""
        port = free_port()
        log = folder / f"{name}-{secrets.token_hex(3)}.log"
        if profile is not None:
            env = {**env, "BENCH_PROFILE": str(profile)}
        with log.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.worker" if profile is not None or "BENCH_POOL_SIZE" in env else "bot",
                "run",
                "--role",
                role,
                env={
                    **os.environ,
                    "DATABASE_URL": url,
                    "TELEGRAM_BOT_TOKEN": token_of(name),
                    "TELEGRAM_API_URL": api_url,
                    "WEBHOOK_URL": WEBHOOK_URL,
                    "WEBHOOK_SECRET": SECRET,
                    "HTTP_PORT": str(port),
                    "LOG_LEVEL": "WARNING",
                    **env,
                },
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
            )
        worker = cls(role, name, process, port, log)
        await worker.ready()
        return worker

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def hook(self) -> str:
        return f"http://127.0.0.1:{self.port}{TELEGRAM_PATH}"

    async def ready(self, timeout: float = 60) -> None:  # noqa: ASYNC109
        """Wait until /readyz says 200."""
        async with aiohttp.ClientSession() as client:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.process.returncode is not None:
                    raise RuntimeError(f"{self.role} exited: {self.said()}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with client.get(f"http://127.0.0.1:{self.port}/readyz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.role} not ready after {timeout} s: {self.said()}")

    def said(self) -> str:
        try:
            return self.log.read_text()[-2000:]
        except OSError:
            return ""

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    async def stop(self) -> int:
        """SIGTERM; its exit code (killed after 60 s)."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), 60)
        except TimeoutError:
            self.process.kill()
            return await self.process.wait()


@contextlib.asynccontextmanager
async def workers(
    roles: Sequence[str],
    url: str,
    api_url: str,
    folder: Path,
    profile: Path | None = None,
    **env: str,
) -> AsyncIterator[list[Worker]]:
    """Start the processes (at once), stop them all at the end; a process that exits with
    an error is reported. With `profile` (a folder), each runs under cProfile and writes
    NAME.prof there when it stops."""
    names = [f"{role}{index + 1}" for index, role in enumerate(roles)]
    started = await asyncio.gather(
        *(
            Worker.start(
                role, name, url, api_url, folder, profile and profile / f"{name}.prof", **env
            )
            for role, name in zip(roles, names, strict=True)
        ),
        return_exceptions=True,
    )
    running = [worker for worker in started if isinstance(worker, Worker)]
    try:
        failed = [error for error in started if isinstance(error, BaseException)]
        if failed:
            raise failed[0]
        yield running
    finally:
        codes = await asyncio.gather(*(worker.stop() for worker in running))
        for worker, code in zip(running, codes, strict=True):
            if code != 0:
                print(f"  {worker.role} process {worker.pid} exited with {code}: {worker.said()}")


# --- (1) updates per second with 1 and 2 web workers ----------------------------------------


@dataclass(frozen=True)
class WebPass:
    """One burst of "/help" posted to the processes of `roles`, measured."""

    roles: tuple[str, ...]
    posts: list[Post]
    replies: dict[int, list[float]]  # each chat's replies, when the emulator read them
    chats: Sequence[int]
    usage: Usage
    load: tuple[str, str]  # load average before and after

    @property
    def label(self) -> str:
        return label_of(self.roles)

    @property
    def first(self) -> float:
        return min(post.start for post in self.posts)

    @property
    def last_reply(self) -> float:
        return max((times[-1] for times in self.replies.values() if times), default=self.first)

    @property
    def span(self) -> float:
        return self.last_reply - self.first

    @property
    def answered(self) -> int:
        return sum(1 for chat in self.chats if self.replies.get(chat))

    @property
    def rate(self) -> float:
        return self.answered / self.span if self.span > 0 else 0.0

    @property
    def lost(self) -> int:
        return len(self.chats) - self.answered

    @property
    def duplicated(self) -> int:
        return sum(1 for chat in self.chats if len(self.replies.get(chat, [])) > 1)

    def per_update(self, seconds: float) -> float:
        return seconds / max(self.answered, 1) * 1e3  # ms

    @property
    def workers_cpu(self) -> float:
        return sum(self.usage.workers.values())

    def answer(self, fraction: float) -> float:
        return percentile([post.end - post.start for post in self.posts], fraction)


class SendLog:
    """What the emulator received, fetched a little at a time (`RemoteEmulator.sends`)."""

    def __init__(self, emulator: RemoteEmulator) -> None:
        self.emulator = emulator
        self.start = 0
        self.sends: list[Send] = []

    async def update(self) -> list[Send]:
        self.start, new = await self.emulator.sends(self.start)
        self.sends += new
        return self.sends

    async def since(self, moment: float) -> list[Send]:
        return [send for send in await self.update() if send.at >= moment]


async def replies_of(log: SendLog, chats: set[int], since: float) -> dict[int, list[float]]:
    """When each of the chats was sent a message, from `since` on."""
    replies: dict[int, list[float]] = {}
    for send in await log.since(since):
        if send.error == 0 and send.chat in chats:
            replies.setdefault(send.chat, []).append(send.at)
    return replies


async def wait_replies(
    log: SendLog,
    chats: Sequence[int],
    since: float,
    timeout: float,  # noqa: ASYNC109
) -> dict[int, list[float]]:
    wanted = set(chats)
    deadline = time.monotonic() + timeout
    while True:
        replies = await replies_of(log, wanted, since)
        if len(replies) >= len(wanted) or time.monotonic() > deadline:
            return replies
        await asyncio.sleep(0.25)


@dataclass
class WebSetup:
    url: str
    folder: Path
    emulator: RemoteEmulator
    posters: RemotePosters
    meter: Meter
    concurrency: int
    residents: int
    env: dict[str, str]  # more environment variables for the processes
    next_id: int = FIRST_WEB_ID

    def __post_init__(self) -> None:
        self.log = SendLog(self.emulator)

    def take(self, count: int) -> list[int]:
        ids = list(range(self.next_id, self.next_id + count))
        self.next_id += count
        return ids

    async def web_pass(self, roles: tuple[str, ...], profile: Path | None = None) -> WebPass:
        """The processes started afresh, warmed up, then the burst; with `profile` (a
        folder), they run under cProfile during the burst alone."""
        load_before = load_average()
        async with workers(
            roles,
            self.url,
            self.emulator.url,
            self.folder,
            profile,
            DISPATCH_RATE=UNPACED,
            **self.env,
        ) as running:
            hooks = [worker.hook for worker in running]
            warmup = self.take(WARMUP * len(roles))
            since = time.monotonic()
            await self.posters.post(hooks, telegram_requests(warmup), self.concurrency)
            await wait_replies(self.log, warmup, since, REPLY_WAIT)
            await asyncio.sleep(0.5)
            chats = self.take(self.residents)
            requests: list[Request] = telegram_requests(chats)
            pids = [worker.pid for worker in running]
            if profile is not None:
                for worker in running:
                    worker.signal(signal.SIGUSR1)
            before = await self.meter.sample(pids)
            posts = await self.posters.post(hooks, requests, self.concurrency)
            replies = await wait_replies(self.log, chats, before.at, REPLY_WAIT)
            after = await self.meter.sample(pids)
            if profile is not None:
                for worker in running:
                    worker.signal(signal.SIGUSR2)
            await asyncio.sleep(0.5)  # room for a late duplicate to show up
            replies = await replies_of(self.log, set(chats), before.at)
            if any(post.status != 200 for post in posts):  # what the processes said of it
                for worker in running:
                    said = " / ".join(worker.said().strip().splitlines()[-3:])
                    print(f"  {worker.name} said: {said or 'nothing'}")
        return WebPass(
            roles,
            posts,
            replies,
            chats,
            Meter.between(before, after),
            (load_before, load_average()),
        )


def show_web(prefix: str, done: WebPass) -> None:
    usage = done.usage
    refused = Counter(post.status for post in done.posts if post.status != 200)
    print(
        f"{prefix} {done.label}: {done.answered:,} of {len(done.chats):,} "
        f"answered, {done.rate:,.0f} updates/s (first post to last reply {done.span:.2f} s); "
        f"webhook answered p50 {done.answer(0.5) * 1e3:.0f} ms, p95 "
        f"{done.answer(0.95) * 1e3:.0f} ms; not 200: {sum(refused.values())}"
        f"{f' {dict(refused)}' if refused else ''}; lost {done.lost}, duplicated "
        f"{done.duplicated}; load average {done.load[0]} -> {done.load[1]}"
    )
    each = ", ".join(
        f"{done.per_update(cpu):.2f} ({cpu / usage.wall:.0%} of a core)"
        for cpu in usage.workers.values()
    )
    print(
        f"{prefix} {done.label}: CPU ms/update: the bot's processes "
        f"{done.per_update(done.workers_cpu):.2f} (each: {each}); PostgreSQL "
        f"{done.per_update(usage.server):.2f} (the bench's database's backends still "
        f"connected: {done.per_update(usage.backends):.2f}), emulator "
        f"{done.per_update(usage.emulator):.2f}, "
        f"posters {done.per_update(usage.posters):.2f}, bench {done.per_update(usage.own):.2f}, "
        f"other work on the machine {done.per_update(usage.others):.2f}; machine busy "
        f"{usage.busy / usage.wall / (os.cpu_count() or 1):.0%} of its "
        f"{os.cpu_count()} cores"
    )


# Where a profiled function's time is counted, by the path of its file.
GROUPS = (
    ("sqlalchemy", "SQLAlchemy"),
    ("asyncpg", "asyncpg"),
    ("aiohttp", "aiohttp, yarl, multidict"),
    ("yarl", "aiohttp, yarl, multidict"),
    ("multidict", "aiohttp, yarl, multidict"),
    ("telegram", "python-telegram-bot"),
    ("/asyncio/", "asyncio"),
    ("/json/", "json"),
    ("/bot/", "the bot (bot/)"),
    ("/flows/", "the bot (flows/, storage/)"),
    ("/storage/", "the bot (flows/, storage/)"),
)
# Counted per update (synchronous functions: a coroutine's every resumption counts as a
# call in cProfile, and its cumulative time is not to be trusted): (file's tail, function).
COUNTS = (
    ("asyncpg/connect_utils.py", "_parse_connect_arguments", "PostgreSQL connections opened"),
    ("sqlalchemy/pool/impl.py", "_dec_overflow", "pool connections closed as overflow"),
    ("~", "<method 'connect' of '_socket.socket' objects>", "sockets connected"),
    ("bot/channels/telegram.py", "_decode", "updates decoded"),
)


def show_profile(prefix: str, files: Sequence[Path], updates: int) -> None:
    """What the workers' profiles say, per update: the packages the time was spent in (own
    time of their functions) and a few stages of the handling (cumulative time)."""
    stats = pstats.Stats(*(str(path) for path in files))
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in entries.values())
    groups: Counter[str] = Counter()
    for (path, _line, _name), entry in entries.items():
        group = "C functions (builtins, socket, select...)" if path == "~" else "other"
        for part, label in GROUPS:
            if part in path:
                group = label
                break
        groups[group] += entry[2]
    print(
        f"{prefix} profile (cProfile, {len(files)} worker(s), the burst alone; it slows the "
        f"worker down, so shares matter, not times): {total / updates * 1e3:.2f} ms/update "
        f"profiled, own time by package:"
    )
    for group, seconds in groups.most_common():
        print(f"{prefix}   {group}: {seconds / total:.0%}")
    for tail, function, what in COUNTS:
        calls = sum(
            entry[1]
            for (path, _line, name), entry in entries.items()
            if path.endswith(tail) and name == function
        )
        print(f"{prefix}   {what}: {calls / updates:.2f} per update")
    ordered = sorted(entries.items(), key=lambda item: -item[1][2])[:12]
    print(f"{prefix}   most own time:")
    for (path, line, name), entry in ordered:
        where = "/".join(Path(path).parts[-2:]) if path != "~" else ""
        print(f"{prefix}     {entry[2] / total:.1%} {name} {where}:{line}")


ONE = ("web",)
TWO = ("web", "web")
REFERENCE = ("all",)  # one process doing everything


def label_of(roles: tuple[str, ...]) -> str:
    if roles == REFERENCE:
        return "1 process --role all"
    return "1 web worker" if roles == ONE else f"{len(roles)} web workers"


def cpu_ratio(two: WebPass, one: WebPass) -> float:
    """Workers' CPU per update, 2 workers against 1."""
    return two.per_update(two.workers_cpu) / one.per_update(one.workers_cpu)


def busy_share(usage: Usage) -> float:
    """How busy the machine's cores were, in %."""
    return usage.busy / usage.wall / (os.cpu_count() or 1) * 100


def spread(values: Sequence[float], digits: int = 0) -> str:
    low, high = min(values), max(values)
    if f"{low:,.{digits}f}" == f"{high:,.{digits}f}":
        return f"{low:,.{digits}f}"
    return f"{low:,.{digits}f} to {high:,.{digits}f}"


async def part_one(url: str, folder: Path, options: Options) -> None:
    print(
        f'(1) {options.residents:,} members each post "/help" to the webhook, '
        f"{options.concurrency} posters round robin over the web workers' ports; every Bot API "
        f"round trip answered {options.delay * 1e3:.0f} ms late; DISPATCH_RATE={UNPACED}; "
        f"{options.rounds} round(s)"
        + (
            f"; database pools of {options.pool_size} connections (bench.worker)"
            if options.pool_size
            else ""
        )
    )
    council_id = await add_council(url)
    passes = [ONE, TWO, REFERENCE] if options.reference else [ONE, TWO]
    count = options.rounds * sum(WARMUP * len(roles) + options.residents for roles in passes)
    if options.profile:
        count += WARMUP + options.residents
    await add_residents(url, council_id, list(range(FIRST_WEB_ID, FIRST_WEB_ID + count)))
    emulator, posters = RemoteEmulator(), RemotePosters()
    await asyncio.gather(emulator.start(), posters.start())
    rounds: list[dict[tuple[str, ...], WebPass]] = []
    profiled: WebPass | None = None
    profiles = folder / "profiles"
    try:
        await emulator.residents(range(FIRST_WEB_ID, FIRST_WEB_ID + count))
        await emulator.configure(response_delay=options.delay, slow_methods=ROUND_TRIPS)
        database = url.rsplit("/", 1)[1]
        setup = WebSetup(
            url,
            folder,
            emulator,
            posters,
            Meter(database, emulator, posters),
            options.concurrency,
            options.residents,
            {"BENCH_POOL_SIZE": str(options.pool_size)} if options.pool_size else {},
        )
        for number in range(1, options.rounds + 1):
            prefix = f"(1) round {number}"
            print(f"{prefix}: load average at the start {load_average()}")
            results: dict[tuple[str, ...], WebPass] = {}
            for roles in passes if number % 2 else passes[::-1]:
                await wait_quiet(options.max_load, options.quiet_wait)
                results[roles] = await setup.web_pass(roles)
                show_web(prefix, results[roles])
            print(
                f"{prefix}: ratio 2 workers / 1 worker: updates/s "
                f"{results[TWO].rate / results[ONE].rate:.2f}, workers' CPU per update "
                f"{cpu_ratio(results[TWO], results[ONE]):.2f}; load average at the end "
                f"{load_average()}"
            )
            rounds.append(results)
        if options.profile:  # not counted in the figures above
            profiles.mkdir()
            await wait_quiet(options.max_load, options.quiet_wait)
            profiled = await setup.web_pass(ONE, profiles)
    finally:
        await asyncio.gather(emulator.stop(), posters.stop())
    print(f"(1) over {len(rounds)} round(s):")
    for roles in passes:
        done = [results[roles] for results in rounds]
        print(
            f"(1)   {label_of(roles)}: {spread([p.rate for p in done])} updates/s; the bot's "
            f"CPU {spread([p.per_update(p.workers_cpu) for p in done], 2)} ms/update; "
            f"PostgreSQL {spread([p.per_update(p.usage.server) for p in done], 2)}, emulator "
            f"{spread([p.per_update(p.usage.emulator) for p in done], 2)}, posters "
            f"{spread([p.per_update(p.usage.posters) for p in done], 2)}, other work "
            f"{spread([p.per_update(p.usage.others) for p in done], 2)} ms/update; machine "
            f"busy {spread([busy_share(p.usage) for p in done])} %"
        )
    ratios = [results[TWO].rate / results[ONE].rate for results in rounds]
    print(f"(1)   ratio 2 workers / 1 worker, updates/s: {spread(ratios, 2)}")
    if profiled is not None:
        show_web("(1) profiled", profiled)
        show_profile("(1) profiled", sorted(profiles.glob("*.prof")), profiled.answered)


# --- (2) a broadcast at 30/s with 2 dispatchers ---------------------------------------------


@dataclass(frozen=True)
class Variant:
    key: str  # as `--only` names it
    name: str
    roles: tuple[str, ...]
    window: bool = False
    traffic: bool = False  # "/help" posted to the web worker meanwhile

    @property
    def label(self) -> str:
        return f"{self.name}{', strict window' if self.window else ''}"


BASELINE = Variant("all", "one process (--role all)", ("all",))
DISPATCHERS = Variant("dispatchers", "2 dispatchers", ("dispatcher", "dispatcher"))
WITH_WEB = Variant(
    "web",
    "2 dispatchers + a web worker answering /help",
    ("dispatcher", "dispatcher", "web"),
    traffic=True,
)


@dataclass(frozen=True)
class Broadcast:
    """One broadcast sent by `variant`'s processes, measured."""

    variant: Variant
    audience: Sequence[int]
    sends: list[Send]  # every sendMessage read by the emulator from the enqueue on
    tokens: dict[str, str]  # token -> process name
    committed: float
    usage: Usage
    pids: dict[int, str]  # process id -> process name
    statuses: dict[str, int]
    helps: dict[int, float]  # /help posted: chat -> when
    load: tuple[str, str]
    exited: list[str]  # processes that stopped during the broadcast, and why

    @property
    def disturbed(self) -> bool:
        return bool(self.exited)

    @property
    def delivered_times(self) -> list[float]:
        wanted = set(self.audience)
        return [
            send.at
            for send in self.sends
            if send.error == 0 and send.text == BROADCAST_TEXT and send.chat in wanted
        ]

    @property
    def all_times(self) -> list[float]:
        return [send.at for send in self.sends if send.error == 0]

    @property
    def rate(self) -> float:
        return rate_between(self.delivered_times)

    @property
    def combined_rate(self) -> float:
        """Every message the emulator accepted between the broadcast's first and last
        delivery (the replies too), per second."""
        times = self.delivered_times
        if len(times) < 2:
            return 0.0
        first, last = min(times), max(times)
        inside = [at for at in self.all_times if first <= at <= last]
        return len(inside) / (last - first)

    @property
    def refusals(self) -> Counter[str]:
        return Counter(
            self.tokens.get(send.token, send.token) for send in self.sends if send.error == 429
        )

    @property
    def by_process(self) -> Counter[str]:
        return Counter(
            self.tokens.get(send.token, send.token) for send in self.sends if send.error == 0
        )

    @property
    def senders(self) -> list[str]:
        """The processes that sent some of the broadcast."""
        wanted = set(self.audience)
        return sorted(
            {
                self.tokens.get(send.token, send.token)
                for send in self.sends
                if send.error == 0 and send.text == BROADCAST_TEXT and send.chat in wanted
            }
        )

    def replies(self) -> tuple[list[float], int, int]:
        """Each /help's time from its post to its reply; lost, duplicated."""
        got: dict[int, list[float]] = {}
        for send in self.sends:
            if send.error == 0 and send.chat in self.helps:
                got.setdefault(send.chat, []).append(send.at)
        latencies = [got[chat][0] - at for chat, at in self.helps.items() if got.get(chat)]
        lost = sum(1 for chat in self.helps if not got.get(chat))
        doubled = sum(1 for times in got.values() if len(times) > 1)
        return latencies, lost, doubled


async def enqueue(url: str, council_id: int) -> None:
    """The broadcast to the council's members, queued as a flow queues it."""
    engine = db.create_engine(url)
    try:
        async with db.session_scope(db.session_factory(engine)) as session:
            council = await session.get_one(Council, council_id)
            await start_broadcast(
                session,
                council=council,
                kind="bench",
                audience=members(council),
                render=bench_reply,
            )
    finally:
        await engine.dispose()


async def outbox_statuses(url: str) -> dict[str, int]:
    engine = db.create_engine(url)
    try:
        async with db.session_scope(db.session_factory(engine)) as session:
            rows = await session.execute(
                select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
            )
            return {str(OutboxStatus(status).value): int(count) for status, count in rows}
    finally:
        await engine.dispose()


async def clear_unsent(url: str) -> None:
    """Whatever a broadcast left unsent is cancelled, so the next one starts clean."""
    engine = db.create_engine(url)
    try:
        async with db.session_scope(db.session_factory(engine)) as session:
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.status.in_([OutboxStatus.PENDING, OutboxStatus.SENDING]))
                .values(status=OutboxStatus.CANCELLED)
            )
    finally:
        await engine.dispose()


@dataclass
class BroadcastSetup:
    url: str
    folder: Path
    emulator: RemoteEmulator
    posters: RemotePosters
    meter: Meter
    size: int
    help_rate: float
    help_council: int
    next_broadcast: int = FIRST_BROADCAST_ID
    next_help: int = FIRST_HELP_ID
    councils: int = 0
    help_ids: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.log = SendLog(self.emulator)

    async def prepare(self) -> None:
        """Enough /help residents for every variant with traffic."""
        self.help_ids = list(range(FIRST_HELP_ID, FIRST_HELP_ID + 2_000))
        await add_residents(self.url, self.help_council, self.help_ids)
        await self.emulator.residents(range(self.help_ids[0], self.help_ids[-1] + 1))

    async def audience(self) -> tuple[int, list[int]]:
        self.councils += 1
        council_id = await add_council(self.url, slug=f"bench-{self.councils}")
        ids = list(range(self.next_broadcast, self.next_broadcast + self.size))
        self.next_broadcast += self.size
        await add_residents(self.url, council_id, ids)
        await self.emulator.residents(range(ids[0], ids[-1] + 1))
        return council_id, ids

    async def run(self, variant: Variant) -> Broadcast:
        council_id, ids = await self.audience()
        load_before = load_average()
        async with workers(
            variant.roles, self.url, self.emulator.url, self.folder, DISPATCH_RATE=str(RATE)
        ) as running:
            await asyncio.sleep(1.5)  # the second dispatcher has tried the lease and stands by
            await self.emulator.enforce_limits(
                global_per_second=RATE, per_chat_per_second=1, window=variant.window
            )
            names = {worker.pid: worker.name for worker in running}
            tokens = {worker.token: worker.name for worker in running}
            pids = list(names)
            before = await self.meter.sample(pids)
            await enqueue(self.url, council_id)
            committed = time.monotonic()
            helps: dict[int, float] = {}
            web = [worker for worker in running if worker.role == "web"]
            traffic = (
                asyncio.create_task(self.post_helps(web[0].hook, helps))
                if variant.traffic and web
                else None
            )
            deadline = committed + self.size / RATE * 1.2 + DEADLINE_SLACK
            audience = set(ids)
            try:
                while time.monotonic() < deadline:
                    sends = await self.log.since(committed)
                    got = {
                        s.chat
                        for s in sends
                        if s.error == 0 and s.chat in audience and s.at >= committed
                    }
                    if len(got) >= len(audience):
                        break
                    await asyncio.sleep(0.5)
                while time.monotonic() < deadline:  # every message recorded as sent
                    statuses = await outbox_statuses(self.url)
                    if not statuses.get("pending") and not statuses.get("sending"):
                        break
                    await asyncio.sleep(0.25)
            finally:
                if traffic is not None:
                    traffic.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await traffic
            if helps:
                await wait_replies(self.log, list(helps), committed, 10)
            await asyncio.sleep(1.0)  # room for a late duplicate to show up
            after = await self.meter.sample(pids)
            exited = [
                f"{worker.name} exited with {worker.process.returncode}: "
                + " / ".join(worker.said().strip().splitlines()[:2])
                for worker in running
                if worker.process.returncode is not None
            ]
        statuses = await outbox_statuses(self.url)
        await clear_unsent(self.url)
        sends = await self.log.since(before.at)
        return Broadcast(
            variant,
            ids,
            sends,
            tokens,
            committed,
            Meter.between(before, after),
            names,
            statuses,
            helps,
            (load_before, load_average()),
            exited,
        )

    async def post_helps(self, hook: str, posted: dict[int, float]) -> None:
        """/help from a new resident every 1/help_rate seconds, until cancelled."""
        headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}
        async with aiohttp.ClientSession() as client:
            start = time.monotonic()
            for number, chat in enumerate(list(self.help_ids)):
                self.help_ids.remove(chat)
                moment = start + number / self.help_rate
                await asyncio.sleep(max(0.0, moment - time.monotonic()))
                body, _headers = telegram_requests([chat])[0]
                posted[chat] = time.monotonic()
                async with client.post(hook, data=body, headers=headers) as response:
                    await response.read()


def show_broadcast(prefix: str, done: Broadcast) -> None:
    counted = tally(
        [(s.chat, s.text) for s in done.sends if s.error == 0], done.audience, BROADCAST_TEXT
    )
    times = done.delivered_times
    span = max(times) - min(times) if len(times) > 1 else 0.0
    fraction = done.rate / RATE
    verdict = "OK" if fraction >= TARGET else "BELOW TARGET"
    all_times = done.all_times
    print(
        f"{prefix} {done.variant.label}: delivered {counted.delivered:,} of {counted.audience:,} "
        f"in {span:.2f} s, {done.rate:.2f}/s = {fraction:.3f} x {RATE} (target >= {TARGET}): "
        f"{verdict}; first delivery {min(times, default=done.committed) - done.committed:.2f} s "
        f"after the commit; load average {done.load[0]} -> {done.load[1]}"
    )
    refusals = done.refusals
    refused_at = [send.at for send in done.sends if send.error == 429]
    first = min(times, default=done.committed)
    when = (
        f" in {episodes(refused_at)} burst(s), the first {min(refused_at) - first:.1f} s after "
        f"the first delivery"
        if refused_at
        else ""
    )
    print(
        f"{prefix} {done.variant.label}: 429 refusals {sum(refusals.values())}"
        f"{f' {dict(refusals)}' if refusals else ''}{when}; lost {counted.lost}, duplicated "
        f"{counted.duplicated}, outside the audience {counted.strays}; busiest 1 s window "
        f"{max_in_window(all_times, 1.0)}, 2 s window {max_in_window(all_times, 2.0)} (every "
        f"message); outbox at the end {done.statuses}"
    )
    cpu = ", ".join(
        f"{done.pids[pid]} " + ("exited" if math.isnan(seconds) else f"{seconds:.2f} s")
        for pid, seconds in sorted(done.usage.workers.items())
    )
    print(
        f"{prefix} {done.variant.label}: messages accepted by process: {dict(done.by_process)}; "
        f"CPU during the broadcast: {cpu}, PostgreSQL {done.usage.server:.2f} s "
        f"(over {done.usage.wall:.1f} s)"
    )
    if done.helps:
        latencies, lost, doubled = done.replies()
        print(
            f"{prefix} {done.variant.label}: {len(done.helps)} /help answered meanwhile: post to "
            f"reply p50 {percentile(latencies, 0.5) * 1e3:.0f} ms, p95 "
            f"{percentile(latencies, 0.95) * 1e3:.0f} ms, max "
            f"{max(latencies, default=0) * 1e3:.0f} ms; lost {lost}, duplicated {doubled}; "
            f"every message accepted between the "
            f"broadcast's first and last delivery: {done.combined_rate:.2f}/s = "
            f"{done.combined_rate / RATE:.3f} x {RATE}"
        )


def baseline_of(results: dict[Variant, Broadcast], variant: Variant) -> Broadcast | None:
    """The baseline's broadcast of the same round, against the same limit."""
    return next(
        (b for v, b in results.items() if v.name == BASELINE.name and v.window == variant.window),
        None,
    )


def episodes(times: Sequence[float], gap: float = 1.0) -> int:
    """Groups of moments, each more than `gap` after the previous one."""
    ordered = sorted(times)
    return sum(1 for i, at in enumerate(ordered) if i == 0 or at - ordered[i - 1] > gap)


async def part_two(url: str, folder: Path, options: Options) -> None:
    variants = [BASELINE, DISPATCHERS, WITH_WEB]
    if options.window:
        variants += [replace(BASELINE, key="all-window", window=True)]
        variants += [replace(DISPATCHERS, key="dispatchers-window", window=True)]
    if options.only:
        variants = [variant for variant in variants if variant.key in options.only]
    print(
        f"(2) a broadcast to {options.broadcast:,} members at DISPATCH_RATE={RATE}, the emulator "
        f"enforcing {RATE}/s bot-wide and 1/s per chat, answering sends "
        f"{options.delay * 1e3:.0f} ms late; /help at {options.help_rate:g}/s to the web worker "
        f"where there is one; {options.rounds} round(s) of {len(variants)} broadcasts"
    )
    help_council = await add_council(url, slug="bench-help")
    emulator, posters = RemoteEmulator(), RemotePosters()
    await asyncio.gather(emulator.start(), posters.start())
    rounds: list[dict[Variant, Broadcast]] = []
    disturbed: list[Broadcast] = []
    try:
        await emulator.configure(response_delay=options.delay, slow_methods=ROUND_TRIPS)
        database = url.rsplit("/", 1)[1]
        setup = BroadcastSetup(
            url,
            folder,
            emulator,
            posters,
            Meter(database, emulator, posters),
            options.broadcast,
            options.help_rate,
            help_council,
        )
        await setup.prepare()
        for number in range(1, options.rounds + 1):
            prefix = f"(2) round {number}"
            print(f"{prefix}: load average at the start {load_average()}")
            results: dict[Variant, Broadcast] = {}
            for variant in variants if number % 2 else variants[::-1]:
                for _attempt in range(2):  # a disturbed broadcast is run again, once
                    await wait_quiet(options.max_load, options.quiet_wait)
                    done = await setup.run(variant)
                    show_broadcast(prefix, done)
                    if not done.disturbed:
                        break
                    disturbed.append(done)
                    print(f"{prefix} {variant.label}: DISTURBED, not counted: {done.exited}")
                results[variant] = done
            for variant, done in results.items():
                baseline = baseline_of(results, variant)
                if variant.name == BASELINE.name or baseline is None:
                    continue
                print(
                    f"{prefix}: ratio {variant.label} / {baseline.variant.label}: achieved rate "
                    f"{done.rate / baseline.rate:.3f}"
                    + (
                        f" (with the replies: {done.combined_rate / baseline.rate:.3f})"
                        if done.helps
                        else ""
                    )
                )
            print(f"{prefix}: load average at the end {load_average()}")
            rounds.append(results)
    finally:
        await asyncio.gather(emulator.stop(), posters.stop())
    print(
        f"(2) over {len(rounds)} round(s)"
        + (
            f" ({len(disturbed)} disturbed broadcast(s) run again, not counted)"
            if disturbed
            else ""
        )
        + ":"
    )
    for variant in variants:
        done = [results[variant] for results in rounds if not results[variant].disturbed]
        if not done:
            print(f"(2)   {variant.label}: every broadcast disturbed")
            continue
        counted = [
            tally([(s.chat, s.text) for s in b.sends if s.error == 0], b.audience, BROADCAST_TEXT)
            for b in done
        ]
        senders = sorted({name for b in done for name in b.senders})
        ratio = [
            results[variant].rate / base.rate
            for results in rounds
            if (base := baseline_of(results, variant)) is not None
            and not base.disturbed
            and not results[variant].disturbed
        ]
        with_replies = (
            f" (with the replies {spread([b.combined_rate / RATE for b in done], 3)})"
            if variant.traffic
            else ""
        )
        print(
            f"(2)   {variant.label}: achieved/{RATE} {spread([b.rate / RATE for b in done], 3)}"
            f"{with_replies}, against the baseline {spread(ratio, 3) if ratio else '-'}, "
            f"429 {spread([sum(b.refusals.values()) for b in done])}, lost "
            f"{spread([c.lost for c in counted])}, duplicated "
            f"{spread([c.duplicated for c in counted])}, "
            f"busiest 1 s {spread([max_in_window(b.all_times, 1.0) for b in done])}, 2 s "
            f"{spread([max_in_window(b.all_times, 2.0) for b in done])}; sending processes per "
            f"broadcast {spread([len(b.senders) for b in done])} "
            f"({', '.join(senders)})"
        )


# --- the run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    parts: str
    residents: int
    concurrency: int
    delay: float
    rounds: int
    broadcast: int
    help_rate: float
    window: bool
    max_load: float
    quiet_wait: float
    profile: bool
    reference: bool
    pool_size: int | None
    only: frozenset[str]


async def main() -> int:
    quiet_logging()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parts", choices=["1", "2", "12"], default="12")
    parser.add_argument("--residents", type=int, default=RESIDENTS)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--delay", type=float, default=DELAY)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--broadcast", type=int, default=BROADCAST)
    parser.add_argument("--help-rate", type=float, default=HELP_RATE)
    parser.add_argument("--no-window", dest="window", action="store_false")
    parser.add_argument("--max-load", type=float, default=MAX_LOAD)
    parser.add_argument("--quiet-wait", type=float, default=QUIET_WAIT)
    parser.add_argument("--profile", action="store_true", help="(1): a pass under cProfile")
    parser.add_argument("--no-reference", dest="reference", action="store_false")
    parser.add_argument("--pool-size", type=int, help="(1): the processes' database pool")
    parser.add_argument(
        "--only",
        default="",
        help="(2): some broadcasts only, e.g. all,dispatchers (also web, all-window, "
        "dispatchers-window)",
    )
    chosen = parser.parse_args()
    options = Options(
        chosen.parts,
        chosen.residents,
        chosen.concurrency,
        chosen.delay,
        chosen.rounds,
        chosen.broadcast,
        chosen.help_rate,
        chosen.window,
        chosen.max_load,
        chosen.quiet_wait,
        chosen.profile,
        chosen.reference,
        chosen.pool_size,
        frozenset(filter(None, chosen.only.split(","))),
    )
    if postgres_url() is None:
        print(
            "scale_out needs PostgreSQL (the roles run on one PostgreSQL): set "
            "BENCH_POSTGRES_URL=postgresql+asyncpg://USER:PASS@HOST/DB; nothing measured"
        )
        return 0
    started = time.monotonic()
    print(f"{os.cpu_count()} cores; load average at the start {load_average()}")
    with tempfile.TemporaryDirectory(prefix="cdp-scale-") as folder:
        if "1" in options.parts:
            async with scratch_database("postgresql") as url:
                await part_one(url, Path(folder), options)
        if "2" in options.parts:
            async with scratch_database("postgresql") as url:
                await part_two(url, Path(folder), options)
    print(f"{time.monotonic() - started:.0f} s in all; load average at the end {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

"""Figure 6b: can 10,000 residents answer a consultation within a minute?

A council of 10,000 residents (no neighbourhoods, so nobody is asked where they live) and a
consultation made with `flows.consultations.service.create`: open now, anonymous, every
member, 3 questions (one choice out of 3, a 1 to 5 scale, one choice out of 2). The
dispatcher sends the 10,000 invitations before the load (not measured). Then each resident
taps "Answer" on the invitation (callback data `cons:<id>`) and one option per question (the
data `c:<prompt>:o<n>` read from the message the bot sent or edited last): 4 callback queries
each, 40,000 in all. Open loop: resident i starts at i * 60 s / 10,000 whatever happened
before, and sends their next tap as soon as the bot's answer to the previous one arrived.

The emulator and the residents run in a child process (so this process's CPU time is the
bot's; the emulator's is reported apart). Per tap, latency runs from push_update to the
emulator reading the bot's reply that carries the next question (the new message for
"Answer", the edited message for a question, the thanks after the last one): Call.at minus
the push time, both time.monotonic() in the child. The time to answerCallbackQuery is shown
too. Rate: taps answered / first push to last reply. Then whether the database holds 10,000
complete ballots (30,000 responses).

On a 2-core machine the bot handles about 30 updates/s, so the 40,000 taps would take some
20 minutes: by default the load is cut 90 s after the first tap (30 s after the last
resident started), which measures the rate the bot sustains when saturated and how latency
grows; taps still waiting then count with their wait so far (the percentiles are lower
bounds). `--cut 0` runs to the end; `--residents N --seconds S` changes the load.
`--delay 0.05` answers every Bot API call 50 ms late (network latency: getUpdates,
answerCallbackQuery, editMessageText, sendMessage… all of them), for the bot, the baseline
and the invitations alike.

Baseline in the same run, same emulator, same load on 10,000 other chats: a bare
python-telegram-bot `Application` (library defaults: getUpdates through its Updater,
HTTPXRequest, updates handled one at a time like the bot's polling loop) with one trivial
CallbackQueryHandler that answers the query and edits the message into the next question
(same buttons), without a database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import logging
import multiprocessing
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from multiprocessing.connection import Connection
from typing import Any

from sqlalchemy import func, select
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import Application, ApplicationBuilder, CallbackQueryHandler, ContextTypes

from bench.common import (
    TOKEN,
    add_council,
    add_residents,
    database_kinds,
    label,
    percentile,
    quiet_logging,
    scratch_database,
    sent_count,
    start_app,
)
from bench.remote_emulator import ROUND_TRIPS
from bot.app import CoupDePouce
from flows.broadcasts.service import ReportTo
from flows.consultations import service
from flows.consultations.buttons import AnswerButton
from flows.consultations.service import Audience, NewConsultation, NewQuestion
from storage import db
from storage.models import Ballot, Council, Question, QuestionKind, Response, utcnow
from tests.emulator import BotApiEmulator, Call, FakeUser, SentMessage

RESIDENTS = 10_000
SECONDS = 60.0  # the residents' starts are spread over this
TAPS = 4  # "Answer", then one option for each of the 3 questions
QUESTIONS = (
    NewQuestion(
        QuestionKind.SINGLE,
        "Que faire du square Pasteur ?",
        ["Un jardin partagé", "Une aire de jeux", "Des bancs"],
    ),
    NewQuestion(QuestionKind.SCALE, "Vous sentez-vous en sécurité le soir ?"),
    NewQuestion(QuestionKind.SINGLE, "Faut-il fermer le square la nuit ?", ["Oui", "Non"]),
)
BOT_FIRST = 30_000_001
BASELINE_FIRST = 31_000_001
ORGANISER = 29_999_999  # gets the invitations' progress report
CUT = 90.0  # seconds after the first tap when the load is cut (0: never), to stay short
SEED = 6
OPTION_DATA = re.compile(r"c:\d+:o\d+")
REPLY_METHODS = frozenset({"sendMessage", "editMessageText"})
WATCHED = REPLY_METHODS | {"answerCallbackQuery", "editMessageReplyMarkup"}
CONCURRENCY = 32  # the baseline sends its invitations like the dispatcher: 32 in flight


# --- the residents, in the emulator's process ----------------------------------------------


@dataclass
class Tap:
    chat: int
    index: int  # 0: "Answer", then the questions
    pushed: float
    answered: float | None = None  # answerCallbackQuery read
    replied: float | None = None  # the message carrying what comes next read


@dataclass
class Residents:
    """Taps for the residents of `chats` and follows the bot's answers in `emulator.calls`."""

    emulator: BotApiEmulator
    chats: range
    first_data: str
    seconds: float
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))
    taps: list[Tap] = field(default_factory=list)
    current: dict[int, Tap] = field(default_factory=dict)
    queries: dict[str, Tap] = field(default_factory=dict)
    problems: Counter[str] = field(default_factory=Counter)
    done: int = 0
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    start_lag: float = 0.0
    cursor: int = 0  # next call of emulator.calls to read
    query_ids: int = 5_000_000_000_000_000_001

    def tap(self, chat: int, index: int, data: str, message: SentMessage) -> None:
        query_id = str(self.query_ids)
        self.query_ids += 1
        user: FakeUser = self.emulator.resident(chat)
        update = {
            "callback_query": {
                "id": query_id,
                "from": user.user,
                "message": self.emulator.message_json(message),
                "chat_instance": str(chat * 7919),
                "data": data,
            }
        }
        tap = Tap(chat, index, time.monotonic())
        self.emulator.push_update(update)
        self.taps.append(tap)
        self.current[chat] = tap
        self.queries[query_id] = tap

    def invitation(self, chat: int) -> SentMessage | None:
        for message in reversed(self.emulator.messages(chat)):
            for row in message.buttons:
                if any(button.callback_data == self.first_data for button in row):
                    return message
        return None

    async def run(self, limit: float) -> dict[str, Any]:
        """Start everyone on schedule; stop at the end, or `limit` s after the first tap."""
        invitations = {chat: self.invitation(chat) for chat in self.chats}
        missing = [chat for chat, message in invitations.items() if message is None]
        if missing:
            raise RuntimeError(f"{len(missing)} residents have no invitation to tap")
        cpu = time.process_time()
        watcher = asyncio.create_task(self.watch())
        started = time.monotonic()
        try:
            every = self.seconds / len(self.chats)
            for number, chat in enumerate(self.chats):
                due = started + number * every
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                self.start_lag = max(self.start_lag, time.monotonic() - due)
                message = invitations[chat]
                assert message is not None
                self.tap(chat, 0, self.first_data, message)
            left = started + limit - time.monotonic() if limit > 0 else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.finished.wait(), timeout=left)
        finally:
            watcher.cancel()
        stopped = time.monotonic()
        replied = [tap.replied - tap.pushed for tap in self.taps if tap.replied is not None]
        waiting = [stopped - tap.pushed for tap in self.taps if tap.replied is None]
        return {
            "pushed": len(self.taps),
            "replies": replied,
            "waiting": waiting,
            "answers": [tap.answered - tap.pushed for tap in self.taps if tap.answered is not None],
            "first_push": started,
            "last_reply": max((tap.replied or 0.0 for tap in self.taps), default=0.0),
            "stopped": stopped,
            "complete": self.done,
            "start_lag": self.start_lag,
            "problems": dict(self.problems),
            "cpu": time.process_time() - cpu,
        }

    async def watch(self) -> None:
        """Read the bot's requests as the emulator records them, and tap on at once."""
        calls = self.emulator.calls
        self.cursor = len(calls)
        while True:
            try:
                await self.emulator.wait_until(lambda: len(calls) > self.cursor or None, 1.0)
            except AssertionError:
                continue
            while self.cursor < len(calls):
                call = calls[self.cursor]
                if call.method in WATCHED and call.response is None:
                    await asyncio.sleep(0.001)  # still being answered
                    break
                self.cursor += 1
                if call.method in WATCHED:
                    self.see(call)

    def see(self, call: Call) -> None:
        if not call.ok:
            description = (call.response or {}).get("description", "?")
            self.problems[f"{call.method} refused: {description}"] += 1
            return
        if call.method == "answerCallbackQuery":
            tap = self.queries.pop(str(call.params.get("callback_query_id")), None)
            if tap is not None:
                tap.answered = call.at
            return
        if call.method not in REPLY_METHODS:
            return
        chat = int(call.params.get("chat_id", 0))
        tap = self.current.get(chat)
        if tap is None or tap.replied is not None or call.at < tap.pushed:
            return
        tap.replied = call.at
        if tap.index + 1 == TAPS:
            self.done += 1
            if self.done == len(self.chats):
                self.finished.set()
            return
        message = self.sent(chat, call)
        options = [
            button.callback_data
            for row in (message.buttons if message else [])
            for button in row
            if button.callback_data and OPTION_DATA.fullmatch(button.callback_data)
        ]
        if message is None or not options:
            text = (message.plain_text or "")[:40] if message else "?"
            self.problems[f"reply without options to tap {tap.index + 1}: {text!r}"] += 1
            return
        self.tap(chat, tap.index + 1, self.rng.choice(options), message)

    def sent(self, chat: int, call: Call) -> SentMessage | None:
        result = (call.response or {}).get("result")
        message_id = result.get("message_id") if isinstance(result, dict) else None
        for message in reversed(self.emulator.messages(chat)):
            if message.message_id == message_id:
                return message
        return None


def _child(connection: Connection) -> None:
    quiet_logging()
    asyncio.run(_serve(connection))


async def _serve(connection: Connection) -> None:
    emulator = BotApiEmulator()
    await emulator.start()

    def residents(first: int, stop: int) -> None:
        for user_id in range(first, stop):
            emulator.resident(user_id, language_code="fr")

    async def load(first: int, stop: int, data: str, seconds: float, limit: float) -> Any:
        return await Residents(emulator, range(first, stop), data, seconds).run(limit)

    def delay(seconds: float) -> None:
        emulator.response_delay = seconds
        emulator.slow_methods = ROUND_TRIPS

    handlers: dict[str, Callable[..., Any]] = {
        "url": lambda: emulator.url,
        "residents": residents,
        "load": load,
        "delay": delay,
        "cpu": time.process_time,
    }
    loop = asyncio.get_running_loop()
    while True:
        op, args, kwargs = await loop.run_in_executor(None, connection.recv)
        if op == "stop":
            await emulator.stop()
            connection.send(("ok", None))
            return
        try:
            result = handlers[op](*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            connection.send(("ok", result))
        except Exception as error:
            connection.send(("error", f"{type(error).__name__}: {error}"))


class LoadEmulator:
    """The emulator and the residents tapping, in a child process (as remote_emulator.py)."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, self._child_end = context.Pipe()
        self._process = context.Process(
            target=_child, args=(self._child_end,), name="bot-api-emulator", daemon=True
        )
        self._lock = asyncio.Lock()
        self.url = ""

    async def start(self) -> None:
        self._process.start()
        self._child_end.close()
        self.url = str(await self._ask("url"))

    async def stop(self) -> None:
        if self._process.is_alive():
            await self._ask("stop")
        await asyncio.to_thread(self._process.join, 10)

    async def residents(self, ids: range) -> None:
        await self._ask("residents", ids.start, ids.stop)

    async def cpu(self) -> float:
        return float(await self._ask("cpu"))

    async def delay(self, seconds: float) -> None:
        """Answer every Bot API call `seconds` late (after processing it)."""
        await self._ask("delay", seconds)

    async def load(self, chats: range, first_data: str, seconds: float, cut: float) -> Load:
        result = await self._ask("load", chats.start, chats.stop, first_data, seconds, cut)
        return Load(**result, residents=len(chats))

    async def _ask(self, op: str, *args: Any) -> Any:
        async with self._lock:
            return await asyncio.to_thread(self._round_trip, (op, args, {}))

    def _round_trip(self, message: tuple[str, tuple[Any, ...], dict[str, Any]]) -> Any:
        self._connection.send(message)
        status, result = self._connection.recv()
        if status != "ok":
            raise RuntimeError(f"emulator process: {result}")
        return result


# --- measuring -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """What the residents saw (times from the emulator's process)."""

    residents: int
    pushed: int  # taps sent
    replies: list[float]  # per answered tap: push to the reply carrying what comes next
    waiting: list[float]  # per tap still unanswered when the load stopped: its wait so far
    answers: list[float]  # per tap: push to answerCallbackQuery
    first_push: float
    last_reply: float
    stopped: float
    complete: int  # residents whose 4 taps were all answered
    start_lag: float  # worst delay of a resident's start behind its schedule
    problems: dict[str, int]
    cpu: float  # the emulator's process (emulator and residents)
    bot_cpu: float = 0.0  # this process

    @property
    def span(self) -> float:
        return self.last_reply - self.first_push

    @property
    def rate(self) -> float:
        return len(self.replies) / self.span if self.span > 0 else 0.0

    @property
    def cut(self) -> bool:
        return self.complete < self.residents

    def p(self, fraction: float) -> float:
        """Latency percentile over every tap sent; one still waiting counts its wait so far,
        so when the load was cut this is a lower bound."""
        return percentile(self.replies + self.waiting, fraction)

    def latency(self) -> str:
        at_least = ">= " if self.waiting else ""
        return ", ".join(
            f"{name} {at_least}{self.p(q):,.2f} s"
            for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))
        )

    def answered(self) -> str:
        values = self.answers
        return ", ".join(
            f"{name} {percentile(values, q):,.2f} s" for name, q in (("p50", 0.5), ("p99", 0.99))
        )

    def cpu_per_update(self) -> float:
        return self.bot_cpu / max(len(self.replies), 1)


def with_cpu(load: Load, cpu: float) -> Load:
    return Load(**{**load.__dict__, "bot_cpu": cpu})


async def baseline(emulator: LoadEmulator, chats: range, seconds: float, cut: float) -> Load:
    """A bare Application: answer the query, edit the message into the next question."""

    async def on_tap(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None and query.data is not None
        await query.answer()
        number = int(query.data.split(":")[1]) if query.data.startswith("c:") else 0
        if number == len(QUESTIONS):
            await query.edit_message_text("Merci ! Vos réponses sont enregistrées.")
            return
        await query.edit_message_text(
            f"{number + 1}/{len(QUESTIONS)} · {QUESTIONS[number].text}",
            reply_markup=question_keyboard(number + 1),
        )

    application: Application[Any, Any, Any, Any, Any, Any] = (
        ApplicationBuilder()
        .token(TOKEN)
        .base_url(f"{emulator.url}/bot")
        .base_file_url(f"{emulator.url}/file/bot")
        .build()
    )
    application.add_handler(CallbackQueryHandler(on_tap))
    await application.initialize()
    invite = InlineKeyboardMarkup([[InlineKeyboardButton("✏️ Répondre", callback_data="cons:1")]])
    numbers = iter(chats)

    async def inviter() -> None:
        for chat in numbers:
            await application.bot.send_message(chat, "📝 Votre avis (bench)", reply_markup=invite)

    await asyncio.gather(*(inviter() for _ in range(CONCURRENCY)))
    await application.start()
    updater = application.updater
    assert updater is not None
    await updater.start_polling(poll_interval=0.0, allowed_updates=["callback_query"])
    try:
        cpu = time.process_time()
        load = await emulator.load(chats, "cons:1", seconds, cut)
        cpu = time.process_time() - cpu
    finally:
        # If the load was cut, the updater is stopped with updates still coming: it says so
        # at CRITICAL level, and they are dropped on purpose.
        logging.getLogger("telegram.ext.Updater").setLevel(logging.CRITICAL + 1)
        await updater.stop()
        # What the updater fetched and the application has not handled yet (the load was
        # cut): dropped, or stop() would handle it all first.
        while not application.update_queue.empty():
            application.update_queue.get_nowait()
            application.update_queue.task_done()
        await application.stop()
        await application.shutdown()
    return with_cpu(load, cpu)


def question_keyboard(number: int) -> InlineKeyboardMarkup:
    """The buttons the bot shows for question `number` (1-based), prompt number `number`."""
    question = QUESTIONS[number - 1]
    if question.kind is QuestionKind.SCALE:
        rows = [[(str(v), f"o{v}") for v in service.SCALE]]
    else:
        rows = [[(label, f"o{i}")] for i, label in enumerate(question.options)]
    last = [("Passer ⏭", "skip")]
    if number > 1:
        last.insert(0, ("◀ Retour", "back"))
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(text, callback_data=f"c:{number}:{value}") for text, value in row]
            for row in [*rows, last]
        ]
    )


@dataclass(frozen=True)
class Ballots:
    ballots: int
    complete: int  # ballots with an answer to every question
    responses: int


async def consultation(app: CoupDePouce, council_id: int) -> tuple[int, int]:
    """Create it as an organiser would, opening now: the invitations are queued."""
    now = utcnow()
    new = NewConsultation(
        title="Le square Pasteur (bench)",
        questions=list(QUESTIONS),
        opens_at=now,
        closes_at=now + timedelta(days=7),
        audience=Audience.ALL,
        anonymous=True,
    )
    async with db.session_scope(app.sessions) as session:
        council = await session.get_one(Council, council_id)
        report_to = ReportTo("telegram", str(ORGANISER), "fr")
        created = await service.create(session, council, new, None, report_to, now)
        ids = (created.id, created.broadcast_id or 0)
    app.dispatcher.wake()
    return ids


async def ballots(url: str, consultation_id: int) -> Ballots:
    engine = db.create_engine(url)
    try:
        async with db.session_scope(db.session_factory(engine)) as session:
            per_ballot = (
                select(Response.ballot_id, func.count().label("answers"))
                .join(Ballot, Ballot.id == Response.ballot_id)
                .where(Ballot.consultation_id == consultation_id)
                .group_by(Response.ballot_id)
                .subquery()
            )
            complete = await session.scalar(
                select(func.count())
                .select_from(per_ballot)
                .where(per_ballot.c.answers == len(QUESTIONS))
            )
            made = await session.scalar(
                select(func.count())
                .select_from(Ballot)
                .where(Ballot.consultation_id == consultation_id)
            )
            responses = await session.scalar(
                select(func.count())
                .select_from(Response)
                .join(Question, Question.id == Response.question_id)
                .where(Question.consultation_id == consultation_id)
            )
    finally:
        await engine.dispose()
    return Ballots(int(made or 0), int(complete or 0), int(responses or 0))


@dataclass(frozen=True)
class Subject:
    load: Load
    invitations: int
    invitation_seconds: float
    ballots: Ballots


async def subject(
    url: str, council_id: int, emulator: LoadEmulator, chats: range, seconds: float, cut: float
) -> Subject:
    app = await start_app(url, emulator.url, rate=10_000, chat_interval=0)
    try:
        sending = time.monotonic()
        consultation_id, broadcast_id = await consultation(app, council_id)
        sent = 0
        while time.monotonic() < sending + 600:
            sent = await sent_count(app, broadcast_id)
            if sent >= len(chats):
                break
            await asyncio.sleep(0.2)
        sending = time.monotonic() - sending
        await asyncio.sleep(1.0)  # the progress report's last edit
        data = AnswerButton(consultation_id).pack()
        cpu = time.process_time()
        load = await emulator.load(chats, data, seconds, cut)
        cpu = time.process_time() - cpu
    finally:
        await app.stop()  # if the load was cut, updates still queued are left unhandled
    counted = await ballots(url, consultation_id)
    return Subject(with_cpu(load, cpu), sent, sending, counted)


def show(name: str, what: str, load: Load) -> None:
    taps = load.residents * TAPS
    print(
        f"[{name}] {what}: {len(load.replies):,} of {taps:,} taps answered, "
        f"{load.complete:,} residents through; {load.rate:,.0f} updates/s "
        f"(first push to last reply, {load.span:.1f} s)"
    )
    if load.cut:
        waiting = len(load.waiting)
        print(
            f"[{name}] {what}: load cut {load.stopped - load.first_push:.0f} s after the first "
            f"tap: {waiting:,} taps waiting for an answer (oldest "
            f"{max(load.waiting, default=0.0):.0f} s), {taps - load.pushed:,} not sent yet"
        )
    print(f"[{name}] {what}: latency to the next question / thanks: {load.latency()}")
    print(f"[{name}] {what}: latency to answerCallbackQuery (answered taps): {load.answered()}")
    print(
        f"[{name}] {what}: CPU {load.cpu_per_update() * 1e3:.1f} ms/update in this process "
        f"({load.bot_cpu:.0f} s), emulator and residents "
        f"{load.cpu / max(len(load.replies), 1) * 1e3:.1f} ms/update in theirs; "
        f"worst start behind schedule {load.start_lag * 1e3:.0f} ms"
    )
    for problem, count in sorted(load.problems.items()):
        print(f"[{name}] {what}: problem x{count}: {problem}")


def verdict(name: str, what: str, load: Load, seconds: float) -> None:
    offered = load.residents * TAPS / seconds
    if not load.cut and load.p(0.99) < 1.0:
        print(f"[{name}] {what}: keeps up (all answered, p99 < 1 s): yes")
        return
    print(
        f"[{name}] {what}: keeps up (p99 < 1 s): NO; saturated, it sustains about "
        f"{load.rate:,.0f} updates/s = {load.rate / TAPS * 60:,.0f} residents answering "
        f"a minute ({offered:,.0f} updates/s offered)"
    )


async def run(kind: str, residents: int, seconds: float, cut: float, delay: float) -> None:
    name = label(kind)
    bot_chats = range(BOT_FIRST, BOT_FIRST + residents)
    bare_chats = range(BASELINE_FIRST, BASELINE_FIRST + residents)
    async with scratch_database(kind) as url:
        council_id = await add_council(url)
        await add_residents(url, council_id, list(bot_chats))
        emulator = LoadEmulator()
        await emulator.start()
        try:
            if delay > 0:
                await emulator.delay(delay)
            await emulator.residents(bot_chats)
            await emulator.residents(bare_chats)
            await emulator.residents(range(ORGANISER, ORGANISER + 1))
            bare = await baseline(emulator, bare_chats, seconds, cut)
            bot = await subject(url, council_id, emulator, bot_chats, seconds, cut)
        finally:
            await emulator.stop()
    print(
        f"[{name}] {residents:,} residents x {TAPS} taps = {residents * TAPS:,} callback "
        f"queries, starts spread over {seconds:.0f} s ({residents / seconds:,.0f} residents/s, "
        f"{residents * TAPS / seconds:,.0f} updates/s offered if answered at once); emulator "
        f"and residents in a child process, no flood limits"
        + (f"; load cut {cut:.0f} s after the first tap" if cut > 0 else "")
        + (f"; every Bot API call answered {delay * 1e3:.0f} ms late" if delay > 0 else "")
    )
    print(
        f"[{name}] invitations: {bot.invitations:,} sent by the dispatcher in "
        f"{bot.invitation_seconds:.1f} s, before the load (not measured)"
    )
    show(name, "baseline bare Application", bare)
    show(name, "Coup de pouce", bot.load)
    counted, load = bot.ballots, bot.load
    expected = residents * len(QUESTIONS)
    if load.cut:
        ok = counted.complete >= load.complete
        print(
            f"[{name}] database: {counted.ballots:,} ballots, {counted.complete:,} complete, "
            f"{counted.responses:,} responses; every resident thanked has a complete ballot "
            f"({load.complete:,}): {'yes' if ok else 'NO'} (all {residents:,} complete: NO, "
            f"the load was cut)"
        )
    else:
        ok = counted.complete == residents and counted.responses == expected
        print(
            f"[{name}] database: {counted.ballots:,} ballots, {counted.complete:,} complete, "
            f"{counted.responses:,} responses (expected {expected:,}): all complete "
            f"{'yes' if ok else 'NO'}"
        )
    print(
        f"[{name}] ratio Coup de pouce/baseline: rate {load.rate / bare.rate:.2f}, "
        f"p95 latency {load.p(0.95) / bare.p(0.95):.1f}, "
        f"p99 latency {load.p(0.99) / bare.p(0.99):.1f}, "
        f"CPU per update {load.cpu_per_update() / bare.cpu_per_update():.1f}"
    )
    for what, measured in (("baseline", bare), ("Coup de pouce", load)):
        at_least = ">= " if measured.waiting else ""
        print(
            f"[{name}] {what}: {measured.rate:,.1f} taps/s, p95 latency {at_least}"
            f"{measured.p(0.95):,.2f} s"
        )
    verdict(name, "baseline", bare, seconds)
    verdict(name, "Coup de pouce", load, seconds)


async def main() -> int:
    quiet_logging()
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--residents", type=int, default=RESIDENTS)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--cut", type=float, default=CUT)
    parser.add_argument("--delay", type=float, default=0.0)
    chosen, rest = parser.parse_known_args()
    for kind in database_kinds(rest, description=__doc__ or ""):
        await run(kind, chosen.residents, chosen.seconds, chosen.cut, chosen.delay)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

"""The outbox dispatcher: sends queued messages at the rate the channel allows.

- one global token bucket per channel (shared with interactive replies, which go first);
- about one message per second into one chat, twenty a minute into a group;
- a 429 pauses its scope (that chat; everything when several chats are refused at once);
- a 403 marks the person unreachable and cancels what is queued for them;
- a 400 fails the message; network errors retry with a capped backoff;
- claims are short leases in the database: after a crash, what a dead dispatcher held goes
  back to the queue, and several dispatchers on PostgreSQL share the work (SKIP LOCKED).

At most the messages in flight when the process dies can go out twice: those sent but not yet
recorded, that is at most `concurrency` requests plus one recording interval of sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import heapq
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.lease import Lease
from bot.ratelimit import RateLimiter
from flows.broadcasts import report
from flows.broadcasts.quiet import next_allowed_at
from flows.broadcasts.service import from_payload
from flows.engine import Reply
from flows.i18n import Translator
from storage.db import session_scope
from storage.models import Broadcast, BroadcastStatus, Council, Priority, utcnow
from storage.queries import outbox
from storage.queries.outbox import TEMPLATE_REFUSED, Claimed, Counts

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
REPLY_ATTEMPTS = 3  # a reply to someone waiting: a few tries, then give up
REPLY_BACKOFF = 1.0
GLOBAL_429_CHATS = 3  # refusals from this many chats within a second mean a global limit


class DeliveryKind(enum.Enum):
    SENT = "sent"
    RETRY_AFTER = "retry_after"  # 429: wait, then try again
    BLOCKED = "blocked"  # 403: the person blocked the bot or deleted their account
    REJECTED = "rejected"  # 400: this message will never go through
    NETWORK = "network"  # timeout or connection error: try again later
    CANCELLED = "cancelled"  # not sent: its broadcast was stopped meanwhile


@dataclass(frozen=True)
class Delivery:
    kind: DeliveryKind
    message_id: str | None = None
    retry_after: float = 0.0
    error: str = ""
    everyone: bool = False  # RETRY_AFTER: the whole channel must wait, not this chat alone
    template: str | None = None  # SENT as this template (WhatsApp, outside its window)
    # SENT to a mailbox nothing announces (a web chat page closed, no notification possible):
    # it waits there until the person comes.
    unannounced: bool = False
    # A reply too long for one message goes as several: how many of them went (all, when
    # SENT); a retry starts after them.
    parts_sent: int = 0


@dataclass(frozen=True)
class Envelope:
    """What the dispatcher knows of a queued message beside its text."""

    outbox_id: int
    locale: str | None = None  # the recipient's language
    last_inbound_at: datetime | None = None  # when the recipient last wrote on this channel
    parts_sent: int = 0  # a long message's parts sent at an earlier attempt: not sent again


class Sender(Protocol):
    """A channel as the dispatcher sees it."""

    channel: str
    limiter: RateLimiter
    edits: bool  # whether a sent message can be rewritten (a progress report)
    receipts: bool  # whether the channel reports delivery later, by message id
    window: timedelta | None  # how long after a person's message it may write freely

    async def deliver(
        self, chat_id: str, reply: Reply, *, paid: bool = False, envelope: Envelope | None = None
    ) -> Delivery: ...

    async def edit(self, chat_id: str, message_id: str, reply: Reply) -> Delivery: ...


async def answer(limiter: RateLimiter, send: Callable[[], Awaitable[Delivery]]) -> Delivery:
    """Send a reply to someone who is waiting: ahead of broadcasts (a priority token), a
    few retries, then give up (the person can ask again; a broadcast would retry later)."""
    for attempt in range(1, REPLY_ATTEMPTS + 1):
        await limiter.acquire(priority=True)
        delivery = await send()
        if delivery.kind is DeliveryKind.RETRY_AFTER:
            await asyncio.sleep(delivery.retry_after)
        elif delivery.kind is DeliveryKind.NETWORK and attempt < REPLY_ATTEMPTS:
            await asyncio.sleep(REPLY_BACKOFF * attempt)
        else:
            break
    return delivery


@dataclass(frozen=True)
class Limits:
    chat_interval: float = 1.0  # seconds between two messages into one private chat
    group_interval: float = 3.0  # 20 a minute into a group
    concurrency: int = 32  # requests in flight
    lease: float = 30.0  # a claim older than this belongs to a dead dispatcher
    poll_interval: float = 0.25
    record_interval: float = 0.05
    report_every: float = 3.0
    paid_broadcast: bool = False
    retry_base: float = 2.0  # network errors: retry after 2, 4, 8… seconds
    retry_cap: float = 300.0
    template_price: report.Price | None = None  # what a WhatsApp template costs, for the report


@dataclass(order=True)
class _Queued:
    ready_at: float
    priority: int
    id: int
    message: Claimed = field(compare=False)


class Dispatcher:
    """Sends the outbox; start() and stop() around the application's life."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        senders: Mapping[str, Sender],
        limits: Limits | None = None,
        *,
        name: str | None = None,
        reclaim_all_at_start: bool = False,
        lease: Lease | None = None,
        on_lease_lost: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        # Several dispatchers: one sends at a time, so the channel's limits hold as one.
        self.lease = lease
        self.on_lease_lost = on_lease_lost
        self.senders = dict(senders)
        self.limits = limits or Limits()
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.reclaim_all_at_start = reclaim_all_at_start
        self._clock = clock
        self._waiting: list[_Queued] = []  # claimed, ordered by when they may go
        self._chat_free_at: dict[tuple[str, str], float] = {}
        self._paces: dict[int, RateLimiter | None] = {}  # broadcasts smoothed over a duration
        self._texts: dict[int, dict[str, Any]] = {}  # each broadcast's message per language
        self._recent_429: deque[tuple[float, str]] = deque()
        self._quiet: dict[int, tuple[Council, float]] = {}
        self._interrupted: set[int] = set()  # broadcasts stopped by their coordinator
        self._in_flight: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(self.limits.concurrency)
        self._results: list[tuple[Claimed, Delivery]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._holding: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._wake_report = asyncio.Event()
        self._stopping = False
        # Channels whose receipts name their message ids: those ids are kept on the rows.
        self._receipted = {name for name, sender in self.senders.items() if sender.receipts}
        # Channels that write freely only for a while after the person's last message.
        self._windowed = {name for name, sender in self.senders.items() if sender.window}
        self.sent = 0  # messages sent by this dispatcher since it started

    # --- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start sending; with a lease, once this process holds it (standing by until then)."""
        if self.lease is None:
            await self._begin(self.reclaim_all_at_start)
        else:
            self._holding = asyncio.create_task(self._hold(self.lease), name="dispatcher-lease")

    async def _hold(self, lease: Lease) -> None:
        await lease.acquire()
        # A message queued by any process (a web worker's announcement, a scheduler's
        # reminder) wakes the holder at once, rather than at its next look.
        await lease.listen(outbox.QUEUED, self.wake)
        # Whatever is marked as being sent was held by the previous holder, gone or cut off.
        await self._begin(reclaim_all=True)
        await lease.lost()
        log.error("the dispatcher lost its lease: it stops sending, another takes over")
        if self.on_lease_lost is not None:
            self.on_lease_lost()

    async def _begin(self, reclaim_all: bool) -> None:
        async with session_scope(self.sessions) as session:
            cutoff = utcnow() + timedelta(days=1) if reclaim_all else self._lease_cutoff()
            reclaimed = await outbox.reclaim_abandoned(session, cutoff)
        if reclaimed:
            log.warning("%d message(s) claimed before a crash are queued again", reclaimed)
        self._tasks = [
            asyncio.create_task(self._send_loop(), name="dispatcher-send"),
            asyncio.create_task(self._record_loop(), name="dispatcher-record"),
            asyncio.create_task(self._report_loop(), name="dispatcher-report"),
        ]

    async def stop(self) -> None:
        """Stop claiming, let requests in flight finish, record them, release the rest, and
        then the lease."""
        self._stopping = True
        if self._holding is not None:
            self._holding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._holding
            self._holding = None
        self._wake.set()
        self._wake_report.set()
        for task in self._tasks:
            # The loops see _stopping and finish what they are doing; a send loop waiting out
            # a long 429 is cancelled (what it held goes back to the queue below).
            done, _pending = await asyncio.wait([task], timeout=5)
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._tasks = []
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=10)
        await self._record()
        if self._waiting:
            async with session_scope(self.sessions) as session:
                now = utcnow()
                for queued in self._waiting:
                    await outbox.release(session, queued.id, now, None, count_attempt=False)
            self._waiting = []
        if self.lease is not None:
            await self.lease.release()

    def wake(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._wake.set()

    # --- sending -------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        while not self._stopping:
            self._wake.clear()  # a wake() from now on cuts the coming wait short
            try:
                claimed = 0
                if len(self._waiting) < self.limits.concurrency * 4:
                    claimed = await self._claim()
                delay = await self._send_ready()
                if claimed and len(self._waiting) < self.limits.concurrency * 4:
                    delay = 0.0  # more may be due: claim again at once rather than poll
            except Exception:
                log.exception("dispatcher loop failed; retrying")
                delay = 1.0
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def _claim(self) -> int:
        """Take due messages into the local queue; return how many."""
        room = self.limits.concurrency * 8 - len(self._waiting)
        async with session_scope(self.sessions) as session:
            claimed = await outbox.claim(
                session, self.name, list(self.senders), room, utcnow(), self._windowed
            )
            unknown = {m.broadcast_id for m in claimed if m.broadcast_id is not None} - set(
                self._paces
            )
            details = await outbox.broadcast_details(session, unknown)
            for broadcast_id, (rate, texts) in details.items():
                self._paces[broadcast_id] = (
                    RateLimiter(rate, burst=0, clock=self._clock) if rate else None
                )
                self._texts[broadcast_id] = texts
        now = self._clock()
        for message in claimed:
            heapq.heappush(self._waiting, _Queued(now, message.priority, message.id, message))
        return len(claimed)

    async def _send_ready(self) -> float:
        """Send what may go now; return how long to sleep before the next one may."""
        deferred: list[_Queued] = []
        try:
            while self._waiting and not self._stopping:
                now = self._clock()
                head = self._waiting[0]
                if head.ready_at > now:
                    return min(head.ready_at - now, self.limits.poll_interval)
                heapq.heappop(self._waiting)
                message = head.message
                if message.broadcast_id in self._interrupted:
                    self._results.append((message, Delivery(DeliveryKind.CANCELLED)))
                    continue
                wait = self._must_wait(message, now)
                if wait > 0:
                    head.ready_at = now + wait
                    deferred.append(head)
                    continue
                if await self._quiet_now(message):
                    continue
                sender = self.senders[message.channel]
                try:
                    await sender.limiter.acquire(priority=message.priority <= Priority.REPLY)
                    await self._slots.acquire()
                except asyncio.CancelledError:
                    deferred.append(head)
                    raise
                self._chat_free_at[(message.channel, message.chat_id)] = (
                    self._clock() + self._interval(message.chat_id)
                )
                task = asyncio.create_task(self._send(sender, message))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
                if len(self._waiting) < self.limits.concurrency:
                    return 0.0  # top the queue up before it runs dry
            return 0.0 if self._waiting else self.limits.poll_interval
        finally:
            for queued in deferred:
                heapq.heappush(self._waiting, queued)

    def _must_wait(self, message: Claimed, now: float) -> float:
        """Seconds before this message may go: its chat's pace, its broadcast's pace."""
        chat_wait = self._chat_free_at.get((message.channel, message.chat_id), 0.0) - now
        if chat_wait > 0:
            return chat_wait
        pace = self._paces.get(message.broadcast_id) if message.broadcast_id else None
        return pace.try_acquire() if pace is not None else 0.0

    def _interval(self, chat_id: str) -> float:
        return self.limits.group_interval if chat_id.startswith("-") else self.limits.chat_interval

    async def _quiet_now(self, message: Claimed) -> bool:
        """Put a non-urgent broadcast message back until morning if it is quiet time."""
        if message.priority < Priority.BROADCAST or message.council_id is None:
            return False
        council = await self._council(message.council_id)
        if council is None:
            return False
        now = utcnow()
        resume = next_allowed_at(council.quiet_start, council.quiet_end, council.timezone, now)
        if resume <= now:
            return False
        async with session_scope(self.sessions) as session:
            await outbox.release(session, message.id, resume, None, count_attempt=False)
        return True

    async def _council(self, council_id: int) -> Council | None:
        cached = self._quiet.get(council_id)
        if cached is not None and self._clock() - cached[1] < 60:
            return cached[0]
        async with session_scope(self.sessions) as session:
            council = await session.get(Council, council_id)
            if council is not None:
                session.expunge(council)
        if council is not None:
            self._quiet[council_id] = (council, self._clock())
        return council

    async def _send(self, sender: Sender, message: Claimed) -> None:
        try:
            paid = self.limits.paid_broadcast and message.priority >= Priority.URGENT
            try:
                envelope = Envelope(
                    message.id, message.locale, message.last_inbound_at, message.parts_sent
                )
                delivery = await sender.deliver(
                    message.chat_id, self._reply(message), paid=paid, envelope=envelope
                )
            except Exception as error:  # a bug in rendering must not kill the dispatcher
                log.exception("could not send outbox message %s", message.id)
                delivery = Delivery(DeliveryKind.REJECTED, error=f"{type(error).__name__}: {error}")
            self._results.append((message, delivery))
            if delivery.kind is DeliveryKind.RETRY_AFTER:
                self._on_flood(message, delivery.retry_after, everyone=delivery.everyone)
            elif delivery.kind is DeliveryKind.SENT:
                self.sent += 1
                # The chat's next message waits its interval from now, when the messenger
                # has surely received this one: from when this one was let go, a loaded
                # machine could bring the two closer than the chat's limit at the other end.
                key = (message.channel, message.chat_id)
                free_at = self._clock() + self._interval(message.chat_id)
                self._chat_free_at[key] = max(self._chat_free_at.get(key, 0.0), free_at)
        finally:
            self._slots.release()

    def _reply(self, message: Claimed) -> Reply:
        """The message to send: its own, or its broadcast's in the recipient's language."""
        locale = message.payload.get(outbox.LOCALE_KEY)
        if locale is None or message.broadcast_id is None:
            return from_payload(message.payload)
        texts = self._texts[message.broadcast_id]
        return from_payload(texts.get(str(locale)) or next(iter(texts.values())))

    def _on_flood(self, message: Claimed, retry_after: float, *, everyone: bool = False) -> None:
        """A 429: pause that chat, and every chat if several were refused together (or if
        the channel said the whole account is over its rate)."""
        now = self._clock()
        key = (message.channel, message.chat_id)
        self._chat_free_at[key] = max(self._chat_free_at.get(key, 0.0), now + retry_after)
        self._recent_429.append((now, message.chat_id))
        while self._recent_429 and self._recent_429[0][0] < now - 1.0:
            self._recent_429.popleft()
        if everyone or len({chat for _, chat in self._recent_429}) >= GLOBAL_429_CHATS:
            log.warning("%s asks to slow down: pausing for %.0f s", message.channel, retry_after)
            self.senders[message.channel].limiter.pause(retry_after)
            self._recent_429.clear()

    # --- recording -----------------------------------------------------------------------

    async def _record_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.limits.record_interval)
            try:
                await self._record()
            except Exception:
                log.exception("could not record deliveries; will try again")

    async def _record(self) -> None:
        """Write what happened to the messages sent since the last time, in one transaction."""
        if not self._results:
            return
        results, self._results = self._results, []
        try:
            async with session_scope(self.sessions) as session:
                await self._apply(session, results)
        except Exception:
            self._results[:0] = results
            raise

    async def _apply(self, session: AsyncSession, results: list[tuple[Claimed, Delivery]]) -> None:
        now = utcnow()
        sent = [message.id for message, delivery in results if delivery.kind is DeliveryKind.SENT]
        if sent:
            await outbox.mark_sent(session, sent, now)
        for message, delivery in results:
            kind = delivery.kind
            if kind is DeliveryKind.SENT:
                if (
                    delivery.template is not None
                    or delivery.unannounced
                    or message.channel in self._receipted
                ):
                    await outbox.note_sent(
                        session,
                        message.id,
                        delivery.message_id,
                        delivery.template,
                        receipt=outbox.UNANNOUNCED if delivery.unannounced else None,
                    )
                continue
            if kind is DeliveryKind.CANCELLED:
                await outbox.cancel_message(session, message.id, "interrupted")
            elif kind is DeliveryKind.RETRY_AFTER:
                at = now + timedelta(seconds=delivery.retry_after)
                await outbox.release(
                    session,
                    message.id,
                    at,
                    "429",
                    count_attempt=False,
                    parts_sent=max(message.parts_sent, delivery.parts_sent),
                )
            elif kind is DeliveryKind.BLOCKED and message.person_id is not None:
                log.info("person %s blocked the bot: no more messages to them", message.person_id)
                await outbox.mark_unreachable(session, message.person_id, message.id)
            elif kind is DeliveryKind.REJECTED and delivery.error.startswith(TEMPLATE_REFUSED):
                log.warning("outbox message %s not sent: %s", message.id, delivery.error)
                await outbox.mark_failed(session, message.id, delivery.error)
            elif kind in (DeliveryKind.BLOCKED, DeliveryKind.REJECTED):
                log.warning("outbox message %s refused: %s", message.id, delivery.error)
                await outbox.mark_failed(session, message.id, delivery.error or kind.value)
            elif message.attempts + 1 >= MAX_ATTEMPTS:
                log.warning(
                    "outbox message %s failed %d times: %s",
                    message.id,
                    MAX_ATTEMPTS,
                    delivery.error,
                )
                await outbox.mark_failed(session, message.id, delivery.error or kind.value)
            else:
                backoff = min(self.limits.retry_base * 2**message.attempts, self.limits.retry_cap)
                at = now + timedelta(seconds=backoff)
                await outbox.release(
                    session,
                    message.id,
                    at,
                    delivery.error,
                    count_attempt=True,
                    parts_sent=max(message.parts_sent, delivery.parts_sent),
                )

    # --- progress reports ----------------------------------------------------------------

    async def _report_loop(self) -> None:
        while not self._stopping:
            self._wake_report.clear()
            try:
                await self._keep_claims()
                await self._report()
            except Exception:
                log.exception("could not report broadcast progress")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_report.wait(), timeout=self.limits.report_every)

    async def _report(self) -> None:
        """Update each running broadcast's report, and close those that are finished."""
        async with session_scope(self.sessions) as session:
            now = utcnow()
            due = await outbox.broadcasts_to_report(
                session, now, timedelta(seconds=self.limits.report_every)
            )
            progress: list[tuple[Broadcast, Counts, Council | None]] = []
            for broadcast in due:
                counts = await outbox.counts(session, broadcast.id)
                if counts.finished:
                    if broadcast.status != BroadcastStatus.INTERRUPTED:
                        broadcast.status = BroadcastStatus.DONE
                    broadcast.finished_at = now
                elif counts.sent and broadcast.status == BroadcastStatus.PENDING:
                    broadcast.status = BroadcastStatus.SENDING
                    broadcast.started_at = now
                broadcast.sent, broadcast.failed = counts.sent, counts.failed
                broadcast.unreachable, broadcast.cancelled = counts.unreachable, counts.cancelled
                council = await session.get(Council, broadcast.council_id)
                progress.append((broadcast, counts, council))
        for broadcast, counts, council in progress:
            await self._show_progress(broadcast, counts, council)

    async def _keep_claims(self) -> None:
        """Renew the lease on what this dispatcher holds; take back what dead ones held."""
        async with session_scope(self.sessions) as session:
            now = utcnow()
            await outbox.renew_claims(session, self.name, now)
            held = {queued.message.broadcast_id for queued in self._waiting} - {None}
            self._interrupted = await outbox.interrupted_among(session, held)
            reclaimed = await outbox.reclaim_abandoned(session, self._lease_cutoff())
        if reclaimed:
            log.warning("%d message(s) held by a stopped dispatcher are queued again", reclaimed)

    async def _show_progress(
        self, broadcast: Broadcast, counts: Counts, council: Council | None
    ) -> None:
        sender = self.senders.get(broadcast.report_channel or "")
        if sender is None or broadcast.report_chat_id is None:
            return
        t = Translator(broadcast.report_locale or "fr")
        waiting_for = broadcast.not_before if broadcast.not_before > utcnow() else None
        text = report.progress(
            t,
            counts,
            interrupted=broadcast.status == BroadcastStatus.INTERRUPTED,
            starts_at=waiting_for,
            timezone=council.timezone if council else "Europe/Paris",
            price=self.limits.template_price,
        )
        if text == broadcast.report_text:
            return
        running = broadcast.finished_at is None and broadcast.status != BroadcastStatus.INTERRUPTED
        if running and broadcast.report_message_id is not None and not sender.edits:
            return  # a channel that cannot edit gets the first report and the last, not each
        reply = report.message(t, broadcast.id, text, running)
        await sender.limiter.acquire(priority=True)
        if broadcast.report_message_id is None:
            delivery = await sender.deliver(broadcast.report_chat_id, reply)
        else:
            delivery = await sender.edit(
                broadcast.report_chat_id, broadcast.report_message_id, reply
            )
        if delivery.kind is not DeliveryKind.SENT:
            return
        async with session_scope(self.sessions) as session:
            stored = await session.get(Broadcast, broadcast.id)
            if stored is not None:
                stored.report_text = text
                stored.report_message_id = delivery.message_id or broadcast.report_message_id

    def _lease_cutoff(self) -> datetime:
        return utcnow() - timedelta(seconds=self.limits.lease)

"""One channel-wide rate for every process that sends: Telegram's 30 messages a second is the
bot's, whichever process sends them (the web workers answering, the dispatcher sending the
outbox).

Each message takes the next free moment of its channel from one row of `channel_paces`: the
row's `next_at` moves on by one interval per message, and the message waits until the
moment it took (the generic cell rate algorithm, kept in the database). PostgreSQL's clock
decides, so the machines' clocks need not agree; the row's lock orders the takers, so two
processes never take the same moment.

The moments are taken on a connection of the pace's own, outside any transaction: one
round trip per statement, no pool checkout, no BEGIN and COMMIT. Messages that want a
moment while a statement is on its way wait for the next one, which takes all their
moments at once, in order: under load a process asks the database a few times per round
trip, not once per message, and alone it asks at once.

A process takes a moment only after its own limiter let the message go (`RateLimiter`
keeps its priorities and its moving window): the shared pace only spaces what all of them
let go. A channel-wide 429 moves the shared moment on for everyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.ratelimit import WINDOW
from storage.db import unpooled

log = logging.getLogger(__name__)

# Moves the row on by `span` (an interval per message) and returns how long until the first
# message's moment.
TAKE = text(
    "INSERT INTO channel_paces AS pace (channel, next_at) "
    "VALUES (:channel, clock_timestamp() + make_interval(secs => :span)) "
    "ON CONFLICT (channel) DO UPDATE "
    "SET next_at = greatest(pace.next_at, clock_timestamp()) + make_interval(secs => :span) "
    "RETURNING extract(epoch FROM pace.next_at - clock_timestamp()) - :span"
)
HOLD = text(
    "INSERT INTO channel_paces AS pace (channel, next_at) "
    "VALUES (:channel, clock_timestamp() + make_interval(secs => :seconds)) "
    "ON CONFLICT (channel) DO UPDATE "
    "SET next_at = greatest(pace.next_at, clock_timestamp() + make_interval(secs => :seconds))"
)
UNREACHABLE = (DBAPIError, OperationalError, OSError)


class SharedPace:
    """The channel's next free moment, shared through PostgreSQL."""

    def __init__(self, database: AsyncEngine, channel: str, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.database = unpooled(database)  # its connection is its own, not the pool's
        self.channel = channel
        # Spaced over a little more than a second, like the limiter's moving window: the
        # messages reach the messenger a few milliseconds after their moment, never the same.
        self.step = WINDOW / rate
        self.statements = 0  # how many times the database was asked
        self._connection: AsyncConnection | None = None
        self._talking = asyncio.Lock()  # one statement at a time on the connection
        self._waiting: list[asyncio.Future[float]] = []
        self._taking: asyncio.Task[None] | None = None

    async def take(self) -> float:
        """Take the next free moment; return how long to wait for it (0: now). A database
        out of reach spaces this process alone, by one interval: sending goes on."""
        moment: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiting.append(moment)
        if self._taking is None:
            self._taking = asyncio.create_task(self._take_waiting(), name=f"pace-{self.channel}")
        return await moment

    async def hold(self, seconds: float) -> None:
        """Nobody sends on this channel for `seconds` (it answered: retry after)."""
        try:
            await self._execute(HOLD, {"channel": self.channel, "seconds": seconds})
        except UNREACHABLE as error:
            log.warning("shared pace of %s out of reach (%s)", self.channel, error)

    async def close(self) -> None:
        """Let the connection go (on stopping); a later take opens another."""
        if self._taking is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._taking)
        async with self._talking:
            await self._drop()

    async def _take_waiting(self) -> None:
        """Take the moments of every message waiting, in one statement, until none waits."""
        waiting: list[asyncio.Future[float]] = []
        try:
            while self._waiting:
                waiting, self._waiting = self._waiting, []
                try:
                    first = await self._execute(
                        TAKE, {"channel": self.channel, "span": self.step * len(waiting)}
                    )
                except UNREACHABLE as error:
                    log.warning("shared pace of %s out of reach (%s)", self.channel, error)
                    first = self.step
                first = float(first or 0.0)
                for position, moment in enumerate(waiting):
                    if not moment.done():  # its sender may have been cancelled meanwhile
                        moment.set_result(max(0.0, first + position * self.step))
        finally:
            self._taking = None
            # Only if this task itself was cancelled: nobody is left waiting for ever.
            for moment in (*waiting, *self._waiting):
                if not moment.done():
                    moment.set_result(self.step)
            self._waiting = []

    async def _execute(self, statement: TextClause, parameters: dict[str, object]) -> Any:
        async with self._talking:
            try:
                if self._connection is None:
                    connection = await self.database.connect()
                    self._connection = connection
                    # Outside any transaction: every statement commits as it ends.
                    await connection.execution_options(isolation_level="AUTOCOMMIT")
                self.statements += 1
                result = await self._connection.execute(statement, parameters)
                return result.scalar() if result.returns_rows else None
            except UNREACHABLE:
                await self._drop(broken=True)  # the next statement opens another connection
                raise

    async def _drop(self, *, broken: bool = False) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        with contextlib.suppress(*UNREACHABLE):
            if broken:
                await connection.invalidate()
            await connection.close()

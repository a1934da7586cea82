"""One channel-wide rate for every process that sends: Telegram's 30 messages a second is the
bot's, whichever process sends them (the web workers answering, the dispatcher sending the
outbox).

Each message takes the next free moment of its channel from one row of `channel_paces`, in
one statement: the row's `next_at` moves on by one interval, and the message waits until
the moment it took (the generic cell rate algorithm, kept in the database). PostgreSQL's
clock decides, so the machines' clocks need not agree; the row's lock orders the takers,
so two processes never take the same moment. A message costs one short statement; at 30
a second, that is nothing for the database.

A process takes a moment only after its own limiter let the message go (`RateLimiter`
keeps its priorities and its moving window): the shared pace only spaces what all of them
let go. A channel-wide 429 moves the shared moment on for everyone.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.ratelimit import WINDOW

log = logging.getLogger(__name__)

TAKE = text(
    "INSERT INTO channel_paces AS pace (channel, next_at) "
    "VALUES (:channel, clock_timestamp() + make_interval(secs => :step)) "
    "ON CONFLICT (channel) DO UPDATE "
    "SET next_at = greatest(pace.next_at, clock_timestamp()) + make_interval(secs => :step) "
    "RETURNING extract(epoch FROM pace.next_at - clock_timestamp()) - :step"
)
HOLD = text(
    "UPDATE channel_paces SET next_at = "
    "greatest(next_at, clock_timestamp() + make_interval(secs => :seconds)) "
    "WHERE channel = :channel"
)


class SharedPace:
    """The channel's next free moment, shared through PostgreSQL."""

    def __init__(self, database: AsyncEngine, channel: str, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.database = database
        self.channel = channel
        # Spaced over a little more than a second, like the limiter's moving window: the
        # messages reach the messenger a few milliseconds after their moment, never the same.
        self.step = WINDOW / rate

    async def take(self) -> float:
        """Take the next free moment; return how long to wait for it (0: now). A database
        out of reach spaces this process alone, by one interval: sending goes on."""
        try:
            async with self.database.begin() as connection:
                wait = await connection.scalar(TAKE, {"channel": self.channel, "step": self.step})
        except (DBAPIError, OperationalError, OSError) as error:
            log.warning("shared pace of %s out of reach (%s)", self.channel, error)
            return self.step
        return max(0.0, float(wait or 0.0))

    async def hold(self, seconds: float) -> None:
        """Nobody sends on this channel for `seconds` (it answered: retry after)."""
        try:
            async with self.database.begin() as connection:
                await connection.execute(HOLD, {"channel": self.channel, "seconds": seconds})
        except (DBAPIError, OperationalError, OSError) as error:
            log.warning("shared pace of %s out of reach (%s)", self.channel, error)

"""Pacing that serves waiting replies before broadcast traffic, and never lets a second hold
more than the messenger counts in one."""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.pace import SharedPace

# The moving window is a little over a second: a message reaches the messenger a few
# milliseconds after it was let go, and not always the same few.
WINDOW = 1.02
MIN_WAIT = 0.0005


class RateLimiter:
    """At most `rate` acquisitions per second: a token bucket holding `burst` seconds' worth
    spaces them evenly, and a moving window holds any `WINDOW` seconds to `rate` of them, so
    that an event loop that stalled catches up by the bucket's few tokens, never beyond what
    the messenger accepts in a second.

    Callers marked `priority` (someone is waiting for an answer) go first: while one
    waits, the others do not take tokens.

    With several processes sending on one channel, each limiter also takes its messages'
    moments from the channel's `shared` pace (`bot.pace`), so that the rate holds for them
    all together.
    """

    def __init__(
        self, rate: float, burst: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = max(1.0, rate * burst)
        self._clock = clock
        self._tokens = self.capacity
        self._updated = clock()
        self._priority_waiting = 0
        self._most = max(1, math.floor(rate))  # in any window
        self._recent: collections.deque[float] = collections.deque()  # let go
        self._gone: collections.deque[float] = collections.deque()  # gone, at their shared moment
        self.shared: SharedPace | None = None
        self._holding: set[asyncio.Task[None]] = set()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def _wait(self) -> float:
        """Seconds until one may go (0: now), by the bucket and by the window."""
        self._refill()
        bucket = max(0.0, (1 - self._tokens) / self.rate) if self._tokens < 1 else 0.0
        recent = self._recent
        while recent and recent[0] <= self._updated - WINDOW:
            recent.popleft()
        window = recent[0] + WINDOW - self._updated if len(recent) >= self._most else 0.0
        return max(bucket, window)

    def _take(self) -> None:
        self._tokens -= 1
        self._recent.append(self._updated)

    def try_acquire(self) -> float:
        """Take a token now and return 0, or return how long to wait for one."""
        wait = self._wait()
        if wait <= 0 and self._priority_waiting == 0:
            self._take()
            return 0.0
        return max(wait, MIN_WAIT)

    async def acquire(self, priority: bool = False) -> None:
        if priority:
            self._priority_waiting += 1
        try:
            while True:
                wait = self._wait()
                if wait <= 0 and (priority or self._priority_waiting == 0):
                    self._take()
                    break
                await asyncio.sleep(max(wait, MIN_WAIT))
        finally:
            if priority:
                self._priority_waiting -= 1
        if self.shared is not None:
            if (moment := await self.shared.take()) > 0:
                await asyncio.sleep(moment)
            await self._keep_window()

    async def _keep_window(self) -> None:
        """No more than the window allows by the moments messages actually go. A message
        waiting for its shared moment may wake late and bunch with the next: the messenger
        counts when they arrive, not when they were let go."""
        gone = self._gone
        while True:
            now = self._clock()
            while gone and gone[0] <= now - WINDOW:
                gone.popleft()
            if len(gone) < self._most:
                gone.append(now)
                return
            await asyncio.sleep(max(gone[0] + WINDOW - now, MIN_WAIT))

    def pause(self, seconds: float) -> None:
        """Take nothing for `seconds` (Telegram said: retry after)."""
        self._refill()
        self._tokens = min(self._tokens, 0.0) - seconds * self.rate
        if self.shared is not None:
            holding = asyncio.create_task(self.shared.hold(seconds))
            self._holding.add(holding)
            holding.add_done_callback(self._holding.discard)

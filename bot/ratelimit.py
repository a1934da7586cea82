"""A token bucket that serves waiting replies before broadcast traffic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class RateLimiter:
    """At most `rate` acquisitions per second, with bursts of `burst` seconds' worth.

    Callers marked `priority` (someone is waiting for an answer) go first: while one
    waits, the others do not take tokens.
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

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def try_acquire(self) -> float:
        """Take a token now and return 0, or return how long to wait for one."""
        self._refill()
        if self._tokens >= 1 and self._priority_waiting == 0:
            self._tokens -= 1
            return 0.0
        return max((1 - self._tokens) / self.rate, 0.0005)

    async def acquire(self, priority: bool = False) -> None:
        if priority:
            self._priority_waiting += 1
        try:
            while True:
                self._refill()
                if self._tokens >= 1 and (priority or self._priority_waiting == 0):
                    self._tokens -= 1
                    return
                await asyncio.sleep(max((1 - self._tokens) / self.rate, 0.0005))
        finally:
            if priority:
                self._priority_waiting -= 1

    def pause(self, seconds: float) -> None:
        """Take nothing for `seconds` (Telegram said: retry after)."""
        self._refill()
        self._tokens = min(self._tokens, 0.0) - seconds * self.rate

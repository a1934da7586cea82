"""Calls that arrive together are handled together: a webhook's updates become a unit of work.

Each caller hands in its item and waits for its own result. One consumer takes whatever
arrived within a few milliseconds of the first item (and whatever arrived while the previous
unit ran), up to a bound, handles them as one unit, and answers each caller: after the unit's
commit, so that a webhook is answered 200 only for an update that is safely kept. Units run
one after another, so a chat's updates are handled in the order they arrived."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Webhook calls that arrive within this many seconds of each other make one unit of work
# (Telegram makes up to 40 calls at once, Meta as many as it likes): a few milliseconds on
# each call's answer, against a transaction for each.
WINDOW = 0.005
MOST = 100  # events in a unit, as in a getUpdates batch


class Gathering(Generic[T, R]):
    def __init__(
        self,
        handle: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        window: float,
        most: int,
        name: str,
    ) -> None:
        self._handle = handle
        self._window = window
        self._most = most
        self._name = name
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._arrived = asyncio.Event()
        self._idle = asyncio.Event()  # nothing waiting, no unit running
        self._idle.set()
        self._consumer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Hand in an item; its result once the unit it joined is done (its error if the
        unit failed as a whole)."""
        if self._consumer is None:
            self._consumer = asyncio.create_task(self._consume(), name=self._name)
        result: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, result))
        self._arrived.set()
        self._idle.clear()
        return await result

    async def close(self) -> None:
        """Finish the units in hand, then stop."""
        await self._idle.wait()
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
            self._consumer = None

    async def _consume(self) -> None:
        while True:
            await self._arrived.wait()
            if len(self._waiting) < self._most:
                await asyncio.sleep(self._window)  # let those arriving together join
            unit, self._waiting = self._waiting[: self._most], self._waiting[self._most :]
            if not self._waiting:
                self._arrived.clear()
            await self._run([(item, result) for item, result in unit if not result.done()])
            if not self._waiting:
                self._idle.set()

    async def _run(self, unit: list[tuple[T, asyncio.Future[R]]]) -> None:
        if not unit:
            return
        try:
            results = await self._handle([item for item, _ in unit])
        except Exception as error:
            for _, result in unit:
                if not result.done():
                    result.set_exception(error)
            return
        for (_, result), value in zip(unit, results, strict=True):
            if not result.done():
                result.set_result(value)

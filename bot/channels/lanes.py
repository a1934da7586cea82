"""Replies in order within each chat, at once across chats, without holding the caller.

Once an update's flows have committed, what it answers is handed to its chat's lane and the
next update is read straight away: a slow round trip to the messenger holds up that chat's
later replies (which must follow it) and nothing else."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class ChatLanes:
    def __init__(self, name: str) -> None:
        self._name = name
        self._tails: dict[str, asyncio.Task[None]] = {}

    def __len__(self) -> int:
        """Chats with replies in hand."""
        return len(self._tails)

    def after(self, chat_id: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` once what this chat already has in hand is done."""
        previous = self._tails.get(chat_id)

        async def run() -> None:
            if previous is not None:
                await asyncio.wait([previous])  # whatever became of it
            try:
                await work()
            except Exception:
                log.exception("a reply to %s failed", chat_id)
            finally:
                if self._tails.get(chat_id) is task:
                    del self._tails[chat_id]

        task = asyncio.create_task(run(), name=f"{self._name}-{chat_id}")
        self._tails[chat_id] = task

    async def run(self, chat_id: str, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` in the chat's lane (after what it has in hand, before what comes next)
        and give back its result: a queued message keeps its place among the replies."""
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()

        async def step() -> None:
            try:
                result = await work()
            except Exception as error:
                if not done.done():
                    done.set_exception(error)
                return
            if not done.done():
                done.set_result(result)

        self.after(chat_id, step)
        return await done

    async def room(self, most: int) -> None:
        """Wait until fewer than `most` chats have replies in hand (bounded memory when the
        messenger is slower than the updates come)."""
        while len(self._tails) >= most:
            await asyncio.wait(list(self._tails.values()), return_when=asyncio.FIRST_COMPLETED)

    async def drain(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Let the replies in hand go (on stopping)."""
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        while self._tails:
            left = None if deadline is None else deadline - asyncio.get_running_loop().time()
            if left is not None and left <= 0:
                return
            await asyncio.wait(list(self._tails.values()), timeout=left)

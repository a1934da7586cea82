"""Webhook posters in a child process: they play Meta or Telegram posting to the bot.

The bodies are prepared by the benchmark; the child posts them from N concurrent tasks
through one aiohttp session (keep-alive, at most N connections) and times each post with
time.monotonic(), the same clock as the parent's and the emulators' on Linux. Posting from
another process keeps the posters' CPU out of the bot's process.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

import aiohttp

Request = tuple[bytes, dict[str, str]]  # body and headers
Message = tuple[str, tuple[Any, ...], dict[str, Any]]
TIMEOUT = aiohttp.ClientTimeout(total=120)


class Post(NamedTuple):
    start: float  # before the request was written
    end: float  # when the answer had been read
    status: int  # HTTP status, 0 when the bot could not be reached


class RemotePosters:
    """Concurrent webhook posters served by a child process."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, self._child_end = context.Pipe()
        self._process = context.Process(
            target=_child, args=(self._child_end,), name="webhook-posters", daemon=True
        )
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._process.start()
        self._child_end.close()
        await self._ask("ping")

    async def stop(self) -> None:
        if self._process.is_alive():
            await self._ask("stop")
        await asyncio.to_thread(self._process.join, 10)

    async def post(self, url: str, requests: Sequence[Request], concurrency: int) -> list[Post]:
        """POST every request to `url`, `concurrency` at a time; each one's timing, in order."""
        result: list[Post] = await self._ask("post", url, list(requests), concurrency)
        return result

    async def cpu(self) -> float:
        return float(await self._ask("cpu"))

    async def _ask(self, op: str, *args: Any, **kwargs: Any) -> Any:
        async with self._lock:
            return await asyncio.to_thread(self._round_trip, (op, args, kwargs))

    def _round_trip(self, message: Message) -> Any:
        self._connection.send(message)
        status, result = self._connection.recv()
        if status != "ok":
            raise RuntimeError(f"posters process: {result}")
        return result


def _child(connection: Connection) -> None:
    asyncio.run(_serve(connection))


async def _serve(connection: Connection) -> None:
    loop = asyncio.get_running_loop()
    while True:
        op, args, kwargs = await loop.run_in_executor(None, connection.recv)
        try:
            if op == "stop":
                connection.send(("ok", None))
                return
            if op == "ping":
                result: Any = None
            elif op == "post":
                result = await post_all(*args, **kwargs)
            elif op == "cpu":
                result = time.process_time()
            else:
                raise KeyError(op)
            connection.send(("ok", result))
        except Exception as error:
            connection.send(("error", f"{type(error).__name__}: {error}"))


async def post_all(url: str, requests: list[Request], concurrency: int) -> list[Post]:
    results: list[Post | None] = [None] * len(requests)
    indexes = itertools.count()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:

        async def poster() -> None:
            while (index := next(indexes)) < len(requests):
                body, headers = requests[index]
                start = time.monotonic()
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        status = response.status
                except (aiohttp.ClientError, TimeoutError):
                    status = 0
                results[index] = Post(start, time.monotonic(), status)

        await asyncio.gather(*(poster() for _ in range(concurrency)))
    return [post for post in results if post is not None]

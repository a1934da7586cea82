"""Webhook posters in a child process: they play Meta or Telegram posting to the bot.

The bodies are prepared by the benchmark; the child posts them from N concurrent tasks
through one aiohttp session (keep-alive, at most N connections), to one URL or round robin
over several (request i to URL i mod their number), and times each post with
time.monotonic(), the same clock as the parent's and the emulators' on Linux. Posting from
another process keeps the posters' CPU out of the bot's process.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import NamedTuple

import aiohttp

from bench.child import Child, serve

Request = tuple[bytes, dict[str, str]]  # body and headers
TIMEOUT = aiohttp.ClientTimeout(total=120)


class Post(NamedTuple):
    start: float  # before the request was written
    end: float  # when the answer had been read
    status: int  # HTTP status, 0 when the bot could not be reached


class RemotePosters(Child):
    """Concurrent webhook posters served by a child process."""

    def __init__(self) -> None:
        super().__init__(_child, "webhook-posters")

    async def post(
        self, url: str | Sequence[str], requests: Sequence[Request], concurrency: int
    ) -> list[Post]:
        """POST every request to `url` (round robin when several), `concurrency` at a time;
        each one's timing, in order."""
        urls = [url] if isinstance(url, str) else list(url)
        result: list[Post] = await self.ask("post", urls, list(requests), concurrency)
        return result


def _child(connection: Connection) -> None:
    asyncio.run(_serve(connection))


async def _serve(connection: Connection) -> None:
    await serve(connection, {"post": post_all})


async def post_all(urls: list[str], requests: list[Request], concurrency: int) -> list[Post]:
    results: list[Post | None] = [None] * len(requests)
    indexes = itertools.count()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:

        async def poster() -> None:
            while (index := next(indexes)) < len(requests):
                body, headers = requests[index]
                start = time.monotonic()
                try:
                    url = urls[index % len(urls)]
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        status = response.status
                except (aiohttp.ClientError, TimeoutError):
                    status = 0
                results[index] = Post(start, time.monotonic(), status)

        await asyncio.gather(*(poster() for _ in range(concurrency)))
    return [post for post in results if post is not None]

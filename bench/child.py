"""A server in a child process, asked questions over a pipe.

Benchmarks run the emulators and the webhook posters in child processes, so that the
benchmark's own process holds the bot alone and its CPU time is the bot's. The child
answers named questions (`ask("url")`); its own CPU time is one of them. Times measured in
the child are time.monotonic(), the same clock as the parent's on Linux (CLOCK_MONOTONIC is
system-wide).
"""

from __future__ import annotations

import asyncio
import inspect
import multiprocessing
import time
from collections.abc import Awaitable, Callable, Mapping
from multiprocessing.connection import Connection
from typing import Any

Message = tuple[str, tuple[Any, ...], dict[str, Any]]
Handler = Callable[..., Any]  # what a question runs in the child; it may return an awaitable


class Child:
    """The parent's side: start the child, ask it questions, stop it."""

    def __init__(self, target: Callable[[Connection], None], name: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, self._child_end = context.Pipe()
        self._process = context.Process(
            target=target, args=(self._child_end,), name=name, daemon=True
        )
        self._lock = asyncio.Lock()
        self.name = name

    async def start(self) -> None:
        self._process.start()
        self._child_end.close()  # so that a dead child makes recv() fail instead of hang
        await self.ask("ping")

    async def stop(self) -> None:
        if self._process.is_alive():
            await self.ask("stop")
        await asyncio.to_thread(self._process.join, 10)

    async def cpu(self) -> float:
        """CPU seconds the child process used so far."""
        return float(await self.ask("cpu"))

    async def ask(self, op: str, *args: Any, **kwargs: Any) -> Any:
        async with self._lock:
            return await asyncio.to_thread(self._round_trip, (op, args, kwargs))

    def _round_trip(self, message: Message) -> Any:
        self._connection.send(message)
        status, result = self._connection.recv()
        if status != "ok":
            raise RuntimeError(f"{self.name} process: {result}")
        return result


async def serve(
    connection: Connection,
    handlers: Mapping[str, Handler],
    on_stop: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """The child's side: answer questions until asked to stop."""
    known: dict[str, Handler] = {"ping": lambda: None, "cpu": time.process_time, **handlers}
    loop = asyncio.get_running_loop()
    while True:
        op, args, kwargs = await loop.run_in_executor(None, connection.recv)
        if op == "stop":
            if on_stop is not None:
                await on_stop()
            connection.send(("ok", None))
            return
        try:
            result = known[op](*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            connection.send(("ok", result))
        except Exception as error:
            connection.send(("error", f"{type(error).__name__}: {error}"))

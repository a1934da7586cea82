"""The Bot API emulator (tests/emulator.py) in a child process.

The benchmark's process then holds the bot alone, so its CPU time is the bot's; the
emulator's own CPU time is asked from the child. Receive times are time.monotonic() in the
child, which on Linux is the same clock as in the parent (CLOCK_MONOTONIC is system-wide).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from tests.emulator import BotApiEmulator

Message = tuple[str, tuple[Any, ...], dict[str, Any]]


class RemoteEmulator:
    """A BotApiEmulator served by a child process; a few questions can be asked of it."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, self._child_end = context.Pipe()
        self._process = context.Process(
            target=_child, args=(self._child_end,), name="bot-api-emulator", daemon=True
        )
        self._lock = asyncio.Lock()
        self.url = ""

    async def start(self) -> None:
        self._process.start()
        self._child_end.close()  # so that a dead child makes recv() fail instead of hang
        self.url = str(await self._ask("url"))

    async def stop(self) -> None:
        if self._process.is_alive():
            await self._ask("stop")
        await asyncio.to_thread(self._process.join, 10)

    async def residents(self, ids: range) -> None:
        """Register private chats, or the emulator answers "chat not found"."""
        await self._ask("residents", ids.start, ids.stop)

    async def enforce_limits(self, **limits: Any) -> None:
        await self._ask("enforce_limits", **limits)

    async def configure(self, **attributes: Any) -> None:
        """Set emulator attributes, such as response_delay."""
        await self._ask("configure", **attributes)

    async def delivered_count(self) -> int:
        return int(await self._ask("delivered_count"))

    async def deliveries(self) -> list[tuple[int, str]]:
        """(chat_id, text) of every message delivered, duplicates kept."""
        result: list[tuple[int, str]] = await self._ask("deliveries")
        return result

    async def receive_times(self, text: str) -> list[float]:
        """When each successful sendMessage carrying `text` was read (time.monotonic())."""
        result: list[float] = await self._ask("receive_times", text)
        return result

    async def send_times(self) -> list[tuple[int, float]]:
        """(chat_id, when it was read) of every successful sendMessage, in order."""
        result: list[tuple[int, float]] = await self._ask("send_times")
        return result

    async def flood_refusals(self) -> int:
        return int(await self._ask("flood_refusals"))

    async def calls(self) -> int:
        return int(await self._ask("calls"))

    async def cpu(self) -> float:
        """CPU seconds the child process used so far."""
        return float(await self._ask("cpu"))

    async def _ask(self, op: str, *args: Any, **kwargs: Any) -> Any:
        async with self._lock:
            return await asyncio.to_thread(self._round_trip, (op, args, kwargs))

    def _round_trip(self, message: Message) -> Any:
        self._connection.send(message)
        status, result = self._connection.recv()
        if status != "ok":
            raise RuntimeError(f"emulator process: {result}")
        return result


def _child(connection: Connection) -> None:
    from bench.common import quiet_logging

    quiet_logging()
    asyncio.run(_serve(connection))


async def _serve(connection: Connection) -> None:
    emulator = BotApiEmulator()
    await emulator.start()

    def residents(first: int, stop: int) -> None:
        for user_id in range(first, stop):
            emulator.resident(user_id, language_code="fr")

    def receive_times(text: str) -> list[float]:
        return [
            call.at
            for call in emulator.calls
            if call.method == "sendMessage" and call.ok and call.params.get("text") == text
        ]

    def enforce_limits(**limits: Any) -> None:
        emulator.enforce_limits(**limits)

    def configure(**attributes: Any) -> None:
        for name, value in attributes.items():
            if not hasattr(emulator, name):
                raise AttributeError(f"the emulator has no {name}")
            setattr(emulator, name, value)

    def send_times() -> list[tuple[int, float]]:
        return [
            (int(call.params["chat_id"]), call.at)
            for call in emulator.calls
            if call.method == "sendMessage" and call.ok
        ]

    handlers: dict[str, Callable[..., Any]] = {
        "url": lambda: emulator.url,
        "residents": residents,
        "enforce_limits": enforce_limits,
        "configure": configure,
        "send_times": send_times,
        "delivered_count": lambda: len(emulator.delivered_texts()),
        "deliveries": emulator.delivered_texts,
        "receive_times": receive_times,
        "flood_refusals": lambda: len(emulator.flood_refusals),
        "calls": lambda: len(emulator.calls),
        "cpu": time.process_time,
    }
    loop = asyncio.get_running_loop()
    while True:
        op, args, kwargs = await loop.run_in_executor(None, connection.recv)
        if op == "stop":
            await emulator.stop()
            connection.send(("ok", None))
            return
        try:
            connection.send(("ok", handlers[op](*args, **kwargs)))
        except Exception as error:
            connection.send(("error", f"{type(error).__name__}: {error}"))

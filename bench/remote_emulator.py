"""The Bot API emulator (tests/emulator.py) in a child process.

The benchmark's process then holds the bot alone, so its CPU time is the bot's; the
emulator's own CPU time is asked from the child. Receive times are time.monotonic() in the
child, which on Linux is the same clock as in the parent (CLOCK_MONOTONIC is system-wide).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

from bench.child import Child, serve
from tests.emulator import SLOW_METHODS, BotApiEmulator

# Every Bot API method the bots here call, each a round trip to Telegram. A benchmark that
# adds network latency (`response_delay`) sets the emulator's `slow_methods` to these: by
# default the emulator delays only the methods acting on a chat (SLOW_METHODS), not
# getUpdates nor the start-up calls.
ROUND_TRIPS = SLOW_METHODS | {
    "getUpdates",
    "getMe",
    "deleteWebhook",
    "setWebhook",
    "getWebhookInfo",
    "setMyCommands",
    "deleteMyCommands",
    "getMyCommands",
    "setChatMenuButton",
    "getChatMenuButton",
    "close",
    "logOut",
}


class Send(NamedTuple):
    """One sendMessage as the emulator read it."""

    token: str  # the token in its URL: which process sent it, when each has its own
    chat: int
    at: float  # when it was read (time.monotonic())
    text: str
    error: int  # 0 when delivered, else the error code answered (429: a flood refusal)


class RemoteEmulator(Child):
    """A BotApiEmulator served by a child process; a few questions can be asked of it."""

    def __init__(self) -> None:
        super().__init__(_child, "bot-api-emulator")
        self.url = ""

    async def start(self) -> None:
        await super().start()
        self.url = str(await self.ask("url"))

    async def residents(self, ids: range) -> None:
        """Register private chats, or the emulator answers "chat not found"."""
        await self.ask("residents", ids.start, ids.stop)

    async def enforce_limits(self, **limits: Any) -> None:
        await self.ask("enforce_limits", **limits)

    async def configure(self, **attributes: Any) -> None:
        """Set emulator attributes, such as response_delay."""
        await self.ask("configure", **attributes)

    async def delivered_count(self) -> int:
        return int(await self.ask("delivered_count"))

    async def deliveries(self) -> list[tuple[int, str]]:
        """(chat_id, text) of every message delivered, duplicates kept."""
        result: list[tuple[int, str]] = await self.ask("deliveries")
        return result

    async def receive_times(self, text: str) -> list[float]:
        """When each successful sendMessage carrying `text` was read (time.monotonic())."""
        result: list[float] = await self.ask("receive_times", text)
        return result

    async def send_times(self) -> list[tuple[int, float]]:
        """(chat_id, when it was read) of every successful sendMessage, in order."""
        result: list[tuple[int, float]] = await self.ask("send_times")
        return result

    async def sends(self, start: int = 0) -> tuple[int, list[Send]]:
        """The sendMessage calls answered among the emulator's calls from number `start` on,
        delivered or refused, in arrival order; and where to start next time (the first
        call not answered yet). Asking for the new ones only keeps each question short: a
        long answer would hold the emulator's event loop, and its receive times with it."""
        result: tuple[int, list[Send]] = await self.ask("sends", start)
        return result

    async def flood_refusals(self) -> int:
        return int(await self.ask("flood_refusals"))

    async def calls(self) -> int:
        return int(await self.ask("calls"))


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

    def sends(start: int) -> tuple[int, list[Send]]:
        calls = emulator.calls
        found: list[Send] = []
        index = start
        while index < len(calls) and calls[index].response is not None:
            call = calls[index]
            index += 1
            if call.method == "sendMessage":
                found.append(
                    Send(
                        call.token,
                        int(call.params.get("chat_id", 0)),
                        call.at,
                        str(call.params.get("text", "")),
                        0 if call.ok else int((call.response or {}).get("error_code", -1)),
                    )
                )
        return index, found

    handlers: dict[str, Callable[..., Any]] = {
        "url": lambda: emulator.url,
        "sends": sends,
        "residents": residents,
        "enforce_limits": enforce_limits,
        "configure": configure,
        "send_times": send_times,
        "delivered_count": lambda: len(emulator.delivered_texts()),
        "deliveries": emulator.delivered_texts,
        "receive_times": receive_times,
        "flood_refusals": lambda: len(emulator.flood_refusals),
        "calls": lambda: len(emulator.calls),
    }
    await serve(connection, handlers, emulator.stop)

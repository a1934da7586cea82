"""Abuse limits of the web chat, which anyone can open: new conversations per address, messages
per socket, open sockets per address, and the sites allowed to open its socket.

The rates are moving windows kept in memory by the `limits` library, per process (a worker
that restarts forgets them, which only gives an abuser a fresh minute). With several web
workers, the proxy in front sends each address to one of them (deploy/Caddyfile), so an
address's limits hold across all.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlsplit

from limits import RateLimitItemPerHour, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter


@dataclass(frozen=True)
class WebChatLimits:
    new_chats_per_hour: int = 60  # per address: a community centre's wifi is one address
    messages_per_second: int = 5  # per socket
    messages_per_minute: int = 60  # per socket
    sockets_per_address: int = 30  # open at once: a family's phones and tabs, a meeting room
    messages_per_address: int = 10  # a second, every page of an address together
    sockets_per_address_per_minute: int = 30  # opened: pages reconnect now and then, not more


class Guard:
    """Says whether the next new chat, socket or message from somewhere is within limits."""

    def __init__(self, limits: WebChatLimits) -> None:
        self.limits = limits
        self._windows = MovingWindowRateLimiter(MemoryStorage())
        self._new_chats = RateLimitItemPerHour(limits.new_chats_per_hour)
        self._per_second = RateLimitItemPerSecond(limits.messages_per_second)
        self._per_minute = RateLimitItemPerMinute(limits.messages_per_minute)
        self._per_address = RateLimitItemPerSecond(limits.messages_per_address)
        self._opened = RateLimitItemPerMinute(limits.sockets_per_address_per_minute)
        self._open: Counter[str] = Counter()

    async def new_chat(self, address: str) -> bool:
        """A visitor without a chat gets one (a cookie), unless too many came from there."""
        return await self._windows.hit(self._new_chats, "new", address)

    async def open_socket(self, address: str) -> bool:
        """A page opens its socket: not past the open ones, nor a reconnecting loop."""
        if self._open[address] >= self.limits.sockets_per_address:
            return False
        if not await self._windows.hit(self._opened, "opened", address):
            return False
        self._open[address] += 1
        return True

    def close_socket(self, address: str) -> None:
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]

    async def message(self, socket: str, address: str) -> bool:
        """One more message from a socket: its windows and its address's must have room (a
        refused message does not count, so a pause is enough to be heard again)."""
        windows = (
            (self._per_second, "second", socket),
            (self._per_minute, "minute", socket),
            (self._per_address, "address", address),
        )
        for item, *key in windows:
            if not await self._windows.test(item, *key):
                return False
        for item, *key in windows:
            await self._windows.hit(item, *key)
        return True


def origin_of(url: str) -> str:
    """scheme://host[:port] of an address, as a browser's Origin header writes it."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()

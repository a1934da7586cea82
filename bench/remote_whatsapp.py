"""The Cloud API emulator (tests/whatsapp_emulator.py) in a child process, with the bot's
templates approved (as the `whatsapp` fixture of tests/conftest.py does).

As with remote_emulator.py: the benchmark's process then holds the bot alone, so its CPU time
is the bot's, and the emulator's work (validating each send, posting the status webhooks)
does not delay the bot's event loop. Send times are the emulator's `SentMessage.at`,
time.monotonic() in the child, the same clock as the parent's on Linux.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

from bench.child import Child, serve
from bench.whatsapp_common import ACCOUNT_ID, APP_SECRET, PHONE_NUMBER_ID, WA_TOKEN
from tests.whatsapp_emulator import CloudApiEmulator


class Send(NamedTuple):
    """One request the bot made to the messages endpoint, as the emulator saw it."""

    wa_id: str
    type: str  # "text", "template", "interactive"…
    template: str | None  # the template's name
    at: float  # when the emulator read it (time.monotonic())
    accepted: bool  # answered 200 with a wamid
    error_code: int | None  # refused (130429…) or failed afterwards by webhook (131047…)

    @property
    def delivered(self) -> bool:
        """Accepted and not failed afterwards: the person sees it."""
        return self.accepted and self.error_code is None


class RemoteWhatsApp(Child):
    """A CloudApiEmulator served by a child process; a few questions can be asked of it."""

    def __init__(self) -> None:
        super().__init__(_child, "cloud-api-emulator")
        self.url = ""

    async def start(self) -> None:
        await super().start()
        self.url = str(await self.ask("url"))

    async def people(self, wa_ids: Sequence[str], wrote_ago: Sequence[float]) -> None:
        """Set when each person last wrote (seconds ago), which opens or closes their
        24-hour window for the emulator."""
        await self.ask("people", list(wa_ids), list(wrote_ago))

    async def configure(self, **attributes: Any) -> None:
        """Set emulator attributes: response_delay, send_statuses, webhook_url…"""
        await self.ask("configure", **attributes)

    async def enforce_rate(self, **limits: Any) -> None:
        await self.ask("enforce_rate", **limits)

    async def status_posters(self, count: int) -> None:
        """Post status webhooks from `count` concurrent tasks, as Meta does, instead of the
        emulator's one at a time (which reaches some 80 a second against this bot, half of
        the 160 a broadcast at 80 messages/s brings)."""
        await self.ask("status_posters", count)

    async def sends(self) -> list[Send]:
        """Every request to the messages endpoint, in the order read."""
        result: list[Send] = await self.ask("sends")
        return result

    async def accepted_count(self) -> int:
        return int(await self.ask("accepted_count"))

    async def refusals(self) -> Counter[int]:
        """Sends refused by the enforced rate, by Graph error code (130429, 131056)."""
        result: Counter[int] = await self.ask("refusals")
        return result

    async def max_rate(self, window: float = 1.0) -> float:
        """Most accepted sends in any `window` seconds, per second."""
        return float(await self.ask("max_rate", window))

    async def webhook_posts(self) -> Counter[tuple[str, str]]:
        """Webhooks the emulator posted to the bot, by kind and outcome (HTTP status or
        "unanswered")."""
        result: Counter[tuple[str, str]] = await self.ask("webhook_posts")
        return result

    async def flush(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until every status webhook due so far was posted; False if some still wait."""
        return bool(await self.ask("flush", timeout))


def _child(connection: Connection) -> None:
    from bench.common import quiet_logging

    quiet_logging()
    asyncio.run(_serve(connection))


async def _serve(connection: Connection) -> None:
    from bot.channels.whatsapp import templates

    emulator = CloudApiEmulator(
        phone_number_id=PHONE_NUMBER_ID, waba_id=ACCOUNT_ID, token=WA_TOKEN, app_secret=APP_SECRET
    )
    await emulator.start()
    for definition in templates.definitions():
        body, buttons = definition["components"]
        emulator.add_template(
            definition["name"],
            definition["language"],
            body["text"],
            buttons=[button["text"] for button in buttons["buttons"]],
        )

    extra: list[asyncio.Task[None]] = []

    def status_posters(count: int) -> None:
        # More consumers of the emulator's status queue, beside its own worker.
        while len(extra) < count - 1:
            extra.append(asyncio.create_task(emulator._post_statuses()))

    def people(wa_ids: list[str], wrote_ago: list[float]) -> None:
        now = time.time()
        for wa_id, ago in zip(wa_ids, wrote_ago, strict=True):
            emulator.user(wa_id, name="Habitante").last_inbound_at = now - ago

    def configure(**attributes: Any) -> None:
        for name, value in attributes.items():
            if not hasattr(emulator, name):
                raise AttributeError(f"the emulator has no {name}")
            setattr(emulator, name, value)

    def sends() -> list[Send]:
        return [
            Send(
                message.wa_id,
                message.type,
                message.template,
                message.at,
                message.accepted,
                message.error_code,
            )
            for message in emulator.sent
        ]

    def webhook_posts() -> Counter[tuple[str, str]]:
        return Counter(
            (post.kind, str(post.status) if post.status is not None else "unanswered")
            for post in emulator.webhook_posts
        )

    async def flush(timeout: float) -> bool:  # noqa: ASYNC109
        try:
            await emulator.flush(timeout)
        except AssertionError:
            return False
        return True

    handlers: dict[str, Callable[..., Any]] = {
        "url": lambda: emulator.url,
        "people": people,
        "configure": configure,
        "enforce_rate": emulator.enforce_rate,
        "status_posters": status_posters,
        "sends": sends,
        "accepted_count": lambda: sum(1 for message in emulator.sent if message.accepted),
        "refusals": lambda: Counter(message.error_code for message in emulator.refusals),
        "max_rate": emulator.max_rate,
        "webhook_posts": webhook_posts,
        "flush": flush,
    }

    async def stop() -> None:
        for task in extra:
            task.cancel()
        await asyncio.gather(*extra, return_exceptions=True)
        await emulator.stop()

    await serve(connection, handlers, stop)

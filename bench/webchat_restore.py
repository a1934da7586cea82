"""Web chat restore: what does giving back the kept conversation cost a page load?

A page load is what a reload, a second tab or a new visit does: `GET /` (the cookie is sent,
the page rendered in the person's language with their council's name), then the WebSocket
`/chat/ws` opened until its first message, `{"type": "history", "messages": [...]}`, is
received (the socket is then closed, outside the timing). Milliseconds per page load,
p50/p95, for:

- a resident with 50 kept messages, made through the real application over the socket as
  the page would: `/start quartier-nord` (the consent question and its buttons), the tap on
  "yes" (the welcome), then `/help`, `/language` (a question with buttons) and `/mydata` (a
  JSON file of a few KB, kept in the conversation as base64) until 50 messages are kept;
- baseline, in the same run: a resident of the same council with nothing kept (person,
  identity and membership in plain INSERTs, as `webchat_delivery` makes them);
- at the cap: a resident with 300 kept messages (the 50 above copied six times in plain
  INSERTs), of which the history gives the last 100.

The page loads of the three alternate, after a warm-up, in `--rounds` rounds of `--loads`
each; the spread is over the rounds. Also printed: the history message's size in bytes, and
the server's own part (the history's query and its rendering, `WebChatChannel._history`,
timed in the process). The application and the pages share one process and event loop (as
in the tests), so the page's own work (HTTP, WebSocket handshake, JSON decoding) is in the
figures; the ratios compare like with like.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from sqlalchemy import func, insert, select

from bench.common import (
    add_council,
    database_kinds,
    label,
    percentile,
    quiet_logging,
    scratch_database,
)
from bench.webchat_delivery import add_web_residents
from bot.app import CoupDePouce
from bot.channels.webchat import COOKIE, HISTORY
from bot.settings import load_settings
from storage import db
from storage.models import WebMessage

KEPT = 50  # messages in the subject's conversation
AT_CAP = 300  # messages kept by the resident at the cap
MYDATA_AT = (20, 40)  # /mydata when the conversation holds this many messages (a file each)
LANGUAGE_AT = (10, 30)  # /language (a question with buttons) at these
PACE = 0.21  # seconds between two messages while building: under 5 a second, the default
WARM_UP = 10  # page loads per resident before measuring


# --- a page --------------------------------------------------------------------------------


class Page:
    """One browser: its cookie jar, so every page load is a reload of the same chat."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.client = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Accept-Language": "fr"}
        )
        self.chat_id = ""

    async def first_visit(self) -> str:
        async with self.client.get(f"{self.base}/") as response:
            response.raise_for_status()
            await response.read()
            self.chat_id = response.cookies[COOKIE].value.rpartition(".")[0]
        return self.chat_id

    async def load(self) -> tuple[float, int, list[dict[str, Any]]]:
        """One page load: seconds to the history, its size in bytes and its messages."""
        started = time.perf_counter()
        async with self.client.get(f"{self.base}/") as response:
            response.raise_for_status()
            await response.read()
        socket = await self.client.ws_connect(f"{self.base}/chat/ws")
        message = await socket.receive(timeout=30)
        elapsed = time.perf_counter() - started
        await socket.close()
        if message.type != aiohttp.WSMsgType.TEXT:
            raise RuntimeError(f"the chat socket gave {message.type!r} instead of the history")
        history = json.loads(message.data)
        if history.get("type") != "history":
            raise RuntimeError(f"unexpected first message on the chat socket: {history}")
        messages: list[dict[str, Any]] = history["messages"]
        return elapsed, len(message.data.encode()), messages

    async def close(self) -> None:
        await self.client.close()


async def say(socket: aiohttp.ClientWebSocketResponse, message: dict[str, Any]) -> dict[str, Any]:
    """Send as the page does and wait for the outcome (messages shown meanwhile are skipped)."""
    await socket.send_json(message)
    while True:
        answer: dict[str, Any] = await socket.receive_json(timeout=30)
        if answer.get("type") == "outcome":
            if answer.get("refused"):
                raise RuntimeError("a message was refused while building the conversation")
            await asyncio.sleep(PACE)
            return answer


async def kept(app: CoupDePouce, chat_id: str) -> int:
    async with db.session_scope(app.sessions) as session:
        count = await session.scalar(
            select(func.count()).select_from(WebMessage).where(WebMessage.chat_id == chat_id)
        )
    return int(count or 0)


async def build_conversation(app: CoupDePouce, page: Page) -> None:
    """Join and talk through the socket until KEPT messages are kept."""
    async with page.client.ws_connect(f"{page.base}/chat/ws") as socket:
        await socket.receive_json(timeout=30)  # the (empty) history
        consent = await say(socket, {"type": "text", "text": "/start quartier-nord", "quiet": True})
        [question] = consent["replies"]
        yes = question["choices"][0][0]  # "✅ Yes, I agree"
        await say(socket, {"type": "choice", "data": yes["data"], "message": question["id"]})
        while (count := await kept(app, page.chat_id)) < KEPT:
            if count in MYDATA_AT or count + 1 in MYDATA_AT:
                text = "/mydata"
            elif count in LANGUAGE_AT or count + 1 in LANGUAGE_AT:
                text = "/language"
            else:
                text = "/help"
            await say(socket, {"type": "text", "text": text})


async def copy_conversation(app: CoupDePouce, source: str, target: str, count: int) -> None:
    """`count` messages for `target`, copies of `source`'s in order, in plain INSERTs."""
    async with db.session_scope(app.sessions) as session:
        rows = list(
            await session.scalars(
                select(WebMessage).where(WebMessage.chat_id == source).order_by(WebMessage.id)
            )
        )
    copies = [
        {
            "chat_id": target,
            "author": row.author,
            "mailed": row.mailed,
            "spent": row.spent,
            "payload": row.payload,
            "created_at": row.created_at,
            "delivered_at": row.delivered_at,
        }
        for _ in range(count // len(rows) + 1)
        for row in rows
    ][:count]
    async with app.database.begin() as connection:
        await connection.execute(insert(WebMessage), copies)


# --- measuring -----------------------------------------------------------------------------


@dataclass
class Resident:
    name: str
    page: Page
    loads: list[list[float]]  # seconds per page load, per round
    history: list[list[float]]  # seconds of the server's history query and rendering
    size: int = 0
    shown: list[dict[str, Any]] = field(default_factory=list)  # the last history given

    @property
    def messages(self) -> int:
        return len(self.shown)

    def composition(self) -> str:
        """What the history holds: files and their bytes, and what it gives beyond HISTORY."""
        files = [m["attachment"] for m in self.shown if isinstance(m.get("attachment"), dict)]
        text = (
            f"{len(files)} files ({sum(len(f['base64']) for f in files):,} bytes of base64), "
            f"{sum(1 for m in self.shown if m.get('choices'))} with buttons"
        )
        beyond = self.shown[: max(0, self.messages - HISTORY)]
        if beyond:
            mine = sum(1 for m in beyond if m["author"] == "me")
            text += (
                f"; {len(beyond)} beyond the last {HISTORY}, {mine} of them the person's own "
                f"(never marked delivered, so kept in every history)"
            )
        return text

    def summary(self, values: Sequence[float]) -> str:
        return (
            f"p50 {percentile(values, 0.5) * 1e3:.1f} ms, p95 {percentile(values, 0.95) * 1e3:.1f}"
            f" ms"
        )


async def server_history(app: CoupDePouce, chat_id: str) -> float:
    started = time.perf_counter()
    await app.webchat._history(chat_id)
    return time.perf_counter() - started


async def measure(app: CoupDePouce, residents: list[Resident], loads: int, rounds: int) -> None:
    for resident in residents:
        for _ in range(WARM_UP):
            await resident.page.load()
    for _ in range(rounds):
        for resident in residents:
            resident.loads.append([])
            resident.history.append([])
        for _ in range(loads):
            for resident in residents:  # in turn, so that a noisy moment hits all three
                elapsed, size, shown = await resident.page.load()
                resident.loads[-1].append(elapsed)
                resident.size, resident.shown = size, shown
                resident.history[-1].append(await server_history(app, resident.page.chat_id))


def spread(values: Sequence[float], unit: float = 1e3, digits: int = 1) -> str:
    low, high = min(values), max(values)
    return f"{low * unit:.{digits}f} to {high * unit:.{digits}f}"


def report(name: str, residents: list[Resident], loads: int) -> None:
    baseline = residents[0]
    print(
        f"[{name}] page load = GET / + /chat/ws opened until the history message; "
        f"{len(baseline.loads)} rounds of {loads} loads per resident, in turn"
    )
    for resident in residents:
        pooled = [value for round_ in resident.loads for value in round_]
        server = [value for round_ in resident.history for value in round_]
        print(
            f"[{name}] {resident.name}: {resident.messages} messages in the history, "
            f"{resident.size:,} bytes: {resident.composition()}"
        )
        print(
            f"[{name}]   page load {resident.summary(pooled)} (per round: p50 "
            f"{spread([percentile(r, 0.5) for r in resident.loads])} ms, p95 "
            f"{spread([percentile(r, 0.95) for r in resident.loads])} ms)"
        )
        print(
            f"[{name}]   of which the server's history query and rendering: p50 "
            f"{percentile(server, 0.5) * 1e3:.2f} ms, p95 {percentile(server, 0.95) * 1e3:.2f} ms"
        )
        if resident is baseline:
            continue
        for what, fraction in (("p50", 0.5), ("p95", 0.95)):
            ratios = [
                percentile(mine, fraction) / percentile(theirs, fraction)
                for mine, theirs in zip(resident.loads, baseline.loads, strict=True)
            ]
            print(
                f"[{name}]   ratio to the empty conversation, {what}: "
                f"{percentile(ratios, 0.5):.2f} (rounds {min(ratios):.2f} to {max(ratios):.2f})"
            )
        extra = [
            percentile(mine, 0.5) - percentile(theirs, 0.5)
            for mine, theirs in zip(resident.loads, baseline.loads, strict=True)
        ]
        print(
            f"[{name}]   added per page load (p50 difference): {spread(extra, digits=2)} ms; "
            f"per kept message shown: "
            f"{percentile(extra, 0.5) / max(resident.messages, 1) * 1e6:.0f} µs"
        )


async def start_app(url: str) -> CoupDePouce:
    """The real application without Telegram, with the default web chat limits."""
    # Hundreds of page loads a minute from this one address: the page limit is raised (it
    # is the cost of a load that is measured, not the limit).
    settings = load_settings(
        database_url=url, http_host="127.0.0.1", http_port=0, webchat_sockets_per_minute=100_000
    )
    app = CoupDePouce(settings, telegram=False)
    await app.start()
    return app


async def run(kind: str, loads: int, rounds: int) -> None:
    name = label(kind)
    async with scratch_database(kind) as url:
        council_id = await add_council(url)
        app = await start_app(url)
        pages: list[Page] = []
        try:
            base = f"http://127.0.0.1:{app.port}"
            pages = [Page(base) for _ in range(3)]
            empty, talked, capped = pages
            started = time.monotonic()
            for page in pages:
                await page.first_visit()
            await build_conversation(app, talked)
            await add_web_residents(app, council_id, [empty.chat_id, capped.chat_id])
            await copy_conversation(app, talked.chat_id, capped.chat_id, AT_CAP)
            print(
                f"[{name}] setup: {await kept(app, talked.chat_id)} messages kept through the "
                f"socket, {await kept(app, capped.chat_id)} copied "
                f"({time.monotonic() - started:.1f} s)"
            )
            residents = [
                Resident("baseline: nothing kept", empty, [], []),
                Resident(f"{KEPT} kept messages", talked, [], []),
                Resident(
                    f"{AT_CAP} kept messages (the history is to give the last {HISTORY})",
                    capped,
                    [],
                    [],
                ),
            ]
            await measure(app, residents, loads, rounds)
        finally:
            await asyncio.gather(*(page.close() for page in pages))
            await app.stop()
    report(name, residents, loads)


def arguments(argv: Sequence[str] | None = None) -> tuple[list[str], int, int]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loads", type=int, default=200, help="page loads per resident a round")
    parser.add_argument("--rounds", type=int, default=3)
    parsed, rest = parser.parse_known_args(argv)
    if parsed.loads < 1 or parsed.rounds < 1:
        parser.error("--loads and --rounds take a positive number")
    return database_kinds(rest, description=__doc__ or ""), parsed.loads, parsed.rounds


async def main() -> int:
    quiet_logging()
    kinds, loads, rounds = arguments(sys.argv[1:])
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load} at the start")
    for kind in kinds:
        await run(kind, loads, rounds)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

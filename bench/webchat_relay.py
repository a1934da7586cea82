"""Web chat across processes (PostgreSQL only): how long from a delivery's commit in one
process to the page another process holds, and what the relay adds to a delivery.

Two instances of the real application on one scratch PostgreSQL database (`CoupDePouce`
without Telegram, each with its web server on its own port), in this process and event loop,
as the pages are:

1. Latency: a page (cookie from `GET /` on A, then `/chat/ws` on A) and `--messages` messages
   (default 100) delivered one at a time by B's `WebChatChannel.deliver`, as B's dispatcher
   would; each timed from B's COMMIT, sent (the engine's `commit` event) and returned (the
   session's `after_commit`), to the page receiving it (NOTIFY, A reads the row and writes to
   the socket). Baseline in the same run: the same from A, which shows it on its own socket
   after its commit. Per round the median, pooled p50/p95/max; `--rounds` rounds (default 5),
   in turn.
2. Cost: `--deliveries` deliveries (default 320) by B, one at a time to one chat, then by
   `--writers` tasks at once (default 32, the dispatcher's requests in flight), each to ten
   chats of its own: without the relay (`relay.enabled` off in B: the query and transaction
   as on SQLite); with it, no page open (the presence probe in the language query); and with
   A holding the chats (`Relay.hold`, as an open page does: the probe, NOTIFY in the
   transaction, and A reading each row). In turn per round; median time per delivery,
   deliveries per second, and the rate as a fraction of the one without the relay.

Prints plain lines; on SQLite there is nothing to measure (one process) and it says so.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
from sqlalchemy import event
from sqlalchemy.orm import Session

from bench.common import label, percentile, postgres_url, quiet_logging, scratch_database
from bot.app import CoupDePouce
from bot.channels.webchat import COOKIE
from bot.settings import load_settings
from flows.engine import Reply


async def start(url: str) -> CoupDePouce:
    settings = load_settings(database_url=url, http_host="127.0.0.1", http_port=0)
    app = CoupDePouce(settings, telegram=False)
    await app.start()
    await app.dispatcher.stop()  # deliveries are made by hand here
    return app


class Commits:
    """When the application's engine sent a COMMIT, and when one returned."""

    def __init__(self, app: CoupDePouce) -> None:
        self.sent: list[float] = []
        self.done: list[float] = []
        self._engine = app.database.sync_engine
        event.listen(self._engine, "commit", self._sent)
        event.listen(Session, "after_commit", self._done)

    def clear(self) -> None:
        self.sent.clear()
        self.done.clear()

    def _sent(self, _connection: Any) -> None:
        self.sent.append(time.monotonic())

    def _done(self, session: Session) -> None:
        if session.bind is self._engine:
            self.done.append(time.monotonic())


async def latencies(
    sender: CoupDePouce,
    commits: Commits,
    socket: aiohttp.ClientWebSocketResponse,
    chat_id: str,
    count: int,
) -> tuple[list[float], list[float]]:
    """Seconds from the delivery's COMMIT, sent and returned, to the page, one message at a
    time."""
    from_sent: list[float] = []
    from_done: list[float] = []
    for n in range(count):
        commits.clear()
        await sender.webchat.deliver(chat_id, Reply(f"Message {n} (bench)"))
        message = await socket.receive_json(timeout=10)
        arrived = time.monotonic()
        assert message["type"] == "message", message
        assert message["text"] == f"Message {n} (bench)", (n, message)
        # The first commit is the delivery's own (the notification's look-up comes after).
        from_sent.append(arrived - commits.sent[0])
        from_done.append(arrived - commits.done[0])
        await socket.send_json({"type": "ack", "id": message["id"]})
    return from_sent, from_done


async def delivery_times(app: CoupDePouce, chat_id: str, count: int) -> list[float]:
    times: list[float] = []
    for n in range(count):
        began = time.perf_counter()
        await app.webchat.deliver(chat_id, Reply(f"Message {n} (bench)"))
        times.append(time.perf_counter() - began)
    return times


async def delivery_rate(app: CoupDePouce, count: int, writers: int) -> float:
    """Deliveries per second by `writers` at once, each to ten chats of its own."""

    async def write(writer: int) -> None:
        for n in range(count // writers):
            await app.webchat.deliver(f"bench-{writer}-{n % 10}", Reply(f"Message {n} (bench)"))

    began = time.perf_counter()
    await asyncio.gather(*(write(writer) for writer in range(writers)))
    return (count // writers * writers) / (time.perf_counter() - began)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def spread(values: Sequence[float]) -> str:
    return f"{ms(statistics.median(values))} (rounds {ms(min(values))} to {ms(max(values))})"


async def run(messages: int, rounds: int, deliveries: int, writers: int) -> None:
    async with scratch_database("postgresql") as url:
        web, other = await start(url), await start(url)
        commits = {id(app): Commits(app) for app in (web, other)}
        client = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        try:
            async with client.get(f"http://127.0.0.1:{web.port}/") as response:
                assert response.status == 200
            [cookie] = [c for c in client.cookie_jar if c.key == COOKIE]
            chat_id = cookie.value.rpartition(".")[0]
            # sender: (from COMMIT sent, from COMMIT returned) pooled, and their medians per round
            pooled = {name: ([], []) for name in ("other", "same")}
            medians = {name: ([], []) for name in ("other", "same")}
            async with client.ws_connect(f"http://127.0.0.1:{web.port}/chat/ws") as socket:
                assert (await socket.receive_json(timeout=10))["type"] == "history"
                await latencies(other, commits[id(other)], socket, chat_id, 10)  # warm-up
                await latencies(web, commits[id(web)], socket, chat_id, 10)
                for _ in range(rounds):
                    for name, sender in (("other", other), ("same", web)):
                        found = await latencies(
                            sender, commits[id(sender)], socket, chat_id, messages
                        )
                        for kept, median, values in zip(
                            pooled[name], medians[name], found, strict=True
                        ):
                            kept += values
                            median.append(statistics.median(values))
            print(f"{label('postgresql')}, {rounds} rounds of {messages} messages, one at a time")
            for index, moment in enumerate(("sent", "returned")):
                print(f"  from the delivery's COMMIT {moment} to the page:")
                for name, title in (
                    ("other", "delivered by another process"),
                    ("same", "delivered by the page's own process (baseline)"),
                ):
                    values = pooled[name][index]
                    print(
                        f"    {title}: median {spread(medians[name][index])}; pooled"
                        f" p50 {ms(percentile(values, 0.5))}, p95 {ms(percentile(values, 0.95))},"
                        f" max {ms(max(values))}"
                    )

            # What the relay costs a delivery: none (as on SQLite), the probe alone (no page
            # open anywhere, most of a broadcast), the probe and NOTIFY (a page open in the
            # other process, which reads the row).
            variants = {
                "without the relay (as on SQLite)": (False, False),
                "the relay, no page open (probe)": (True, False),
                "the relay, a page open elsewhere (probe, NOTIFY)": (True, True),
            }
            chats = ["bench-alone"] + [
                f"bench-{writer}-{n}" for writer in range(writers) for n in range(10)
            ]
            await delivery_times(other, "bench-alone", 20)  # warm-up
            timings: dict[str, list[float]] = {name: [] for name in variants}
            rates: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(rounds):
                for name, (enabled, page) in variants.items():
                    other.webchat.relay.enabled = enabled
                    for chat in chats if page else ():
                        await web.webchat.relay.hold(chat)
                    times = await delivery_times(other, "bench-alone", deliveries)
                    timings[name].append(statistics.median(times))
                    rates[name].append(await delivery_rate(other, deliveries, writers))
                    for chat in chats if page else ():
                        await web.webchat.relay.release(chat)
            other.webchat.relay.enabled = True
            print(
                f"  a delivery, {rounds} rounds of {deliveries}, one at a time / {writers} at once:"
            )
            base = "without the relay (as on SQLite)"
            for name in variants:
                ratios = [a / b for a, b in zip(rates[name], rates[base], strict=True)]
                print(
                    f"    {name}: median {spread(timings[name])};"
                    f" {statistics.median(rates[name]):.0f}/s"
                    f" (rounds {min(rates[name]):.0f} to {max(rates[name]):.0f}),"
                    f" rate ratio {statistics.median(ratios):.2f}"
                    f" (rounds {min(ratios):.2f} to {max(ratios):.2f})"
                )
        finally:
            await client.close()
            await web.stop()
            await other.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--deliveries", type=int, default=320)
    parser.add_argument("--writers", type=int, default=32)
    args = parser.parse_args(argv)
    quiet_logging()
    if postgres_url() is None:
        print("SQLite is one process: nothing to relay. Set BENCH_POSTGRES_URL to measure.")
        return
    asyncio.run(run(args.messages, args.rounds, args.deliveries, args.writers))


if __name__ == "__main__":
    main()

"""Figure 8: how many WhatsApp webhook calls per second does the bot answer, against
Telegram's webhook in the same run?

One bot (the real application) with both channels: WhatsApp through the Cloud API emulator
and Telegram in webhook mode (`webhook_url`, `webhook_secret`) through the Bot API emulator,
each emulator in a child process answering sends after `--delay` seconds (0.05 s). The posts
come from a third process (bench/remote_posters.py): `--concurrency` posters (32) send
`--posts` calls per channel (1,000) as fast as the bot answers them, each a new text message
from a distinct known resident, so each runs a flow and commits:

- Telegram: an update with "/help", posted to the webhook path with the
  `X-Telegram-Bot-Api-Secret-Token` header (as tests/test_webhook.py does);
- WhatsApp: Meta's `messages` webhook with the text "aide" (help, typed as a word), signed
  with `X-Hub-Signature-256` (the emulator's own encoding and signature), posted to
  `/whatsapp`.

Per channel: calls answered per second (posts / first post to last answer), p50/p95/max of
the time to the answer (200), the time until every reply reached the emulator (end to end,
and per post p50/p95), replies lost or duplicated, the bot's CPU per post (this process
holds the bot alone), and the ratios WhatsApp/Telegram. Telegram answers its webhook once
the reply is sent (python-telegram-bot's `process_update`); WhatsApp answers once the flows
have committed and sends the reply afterwards. A third pass posts WhatsApp messages again
with the emulator posting Meta's `sent` and `delivered` status webhooks for each reply, as
in production, which the bot handles meanwhile (`--no-statuses` leaves it out).

The channels' rate limiters (Telegram 30/s, WhatsApp 80/s) are set out of the way
(dispatch_rate=10000, whatsapp_rate=1000) so that the figure is the bot's own capacity;
`--real-rates` keeps Telegram's 30/s and WhatsApp's 80/s instead. Each channel is warmed
up with a few calls first. The passes are repeated `--rounds` times (default 2) on the same
bot, with new residents, Telegram first in odd rounds and WhatsApp first in even ones, and
the spread is printed. At the bot's 40 to 55 calls/s on a 2-core machine, 1,000 calls per
pass keep the default run near 2.5 minutes (`--posts 2000 --rounds 1` takes about as long).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from bench.common import (
    add_council,
    add_residents,
    database_kinds,
    label,
    percentile,
    quiet_logging,
    scratch_database,
)
from bench.remote_emulator import RemoteEmulator
from bench.remote_posters import Post, RemotePosters, Request
from bench.remote_whatsapp import RemoteWhatsApp
from bench.whatsapp_common import (
    ACCOUNT_ID,
    APP_SECRET,
    PHONE_NUMBER_ID,
    WA_TOKEN,
    add_whatsapp_residents,
    numbers,
    start_whatsapp_app,
)
from bot.app import CoupDePouce
from storage.models import utcnow
from tests.emulator import text_message
from tests.whatsapp_emulator import CloudApiEmulator, encode_webhook, new_wamid, signature_of

POSTS = 1_000
CONCURRENCY = 32
DELAY = 0.05
ROUNDS = 2
WARMUP = 20  # calls per channel before measuring
REPLY_WAIT = 60.0  # seconds after the last answer before giving up on replies
STATUS_FLUSH = 30.0  # seconds left to the emulator to post the status webhooks still due
SECRET = "bench-webhook-Secret_1"
WEBHOOK_URL = "https://bot.example.org/telegram/hook"
TELEGRAM_PATH = "/telegram/hook"
FIRST_TELEGRAM_ID = 40_000_001
LIFTED_RATES = (10_000.0, 1_000.0)  # Telegram's dispatch_rate, whatsapp_rate
REAL_RATES = (30.0, 80.0)
WITH_STATUSES = "WhatsApp with status webhooks"
TELEGRAM_TEXT = "/help"
WHATSAPP_TEXT = "aide"

T = TypeVar("T")
_update_ids = itertools.count(1)


@dataclass(frozen=True)
class Pass:
    """One channel's calls, measured."""

    posts: list[Post]
    replies: dict[str, list[float]]  # each resident's replies, when the emulator read them
    residents: Sequence[str]
    cpu: float  # CPU seconds of this process (the bot) from the first post to the last reply
    statuses: Counter[tuple[str, str]]  # status webhooks posted meanwhile (WhatsApp), answers
    flushed: bool = True

    @property
    def count(self) -> int:
        return len(self.posts)

    @property
    def first(self) -> float:
        return min(post.start for post in self.posts)

    @property
    def rate(self) -> float:
        """Calls answered per second, first post to last answer."""
        return self.count / (max(post.end for post in self.posts) - self.first)

    def answer(self, fraction: float) -> float:
        return percentile([post.end - post.start for post in self.posts], fraction)

    @property
    def answer_max(self) -> float:
        return max(post.end - post.start for post in self.posts)

    @property
    def refused(self) -> Counter[int]:
        return Counter(post.status for post in self.posts if post.status != 200)

    def reply_latencies(self) -> list[float]:
        return [
            self.replies[resident][0] - post.start
            for resident, post in zip(self.residents, self.posts, strict=True)
            if self.replies.get(resident)
        ]

    @property
    def end_to_end(self) -> float:
        """First post to the last reply read by the emulator."""
        last = max((times[-1] for times in self.replies.values() if times), default=self.first)
        return last - self.first

    @property
    def lost(self) -> int:
        return sum(1 for resident in self.residents if not self.replies.get(resident))

    @property
    def duplicated(self) -> int:
        return sum(1 for resident in self.residents if len(self.replies.get(resident, [])) > 1)

    @property
    def cpu_per_post(self) -> float:
        return self.cpu / self.count


def telegram_requests(user_ids: Sequence[int]) -> list[Request]:
    """The updates Telegram would post when each person writes /help."""
    requests: list[Request] = []
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}
    for user_id in user_ids:
        user = {"id": user_id, "is_bot": False, "first_name": "Habitant", "language_code": "fr"}
        chat = {"id": user_id, "type": "private", "first_name": "Habitant"}
        update = {
            "update_id": next(_update_ids),
            "message": text_message(1, chat, user, TELEGRAM_TEXT),
        }
        requests.append((encode_webhook(update), headers))
    return requests


def whatsapp_requests(wa_ids: Sequence[str]) -> list[Request]:
    """The `messages` webhooks Meta would post when each person writes "aide", signed."""
    meta = CloudApiEmulator(
        phone_number_id=PHONE_NUMBER_ID, waba_id=ACCOUNT_ID, token=WA_TOKEN, app_secret=APP_SECRET
    )
    requests: list[Request] = []
    for wa_id in wa_ids:
        message = {
            "from": wa_id,
            "id": new_wamid(wa_id, inbound=True),
            "timestamp": str(int(time.time())),
            "type": "text",
            "text": {"body": WHATSAPP_TEXT},
        }
        value = {
            "contacts": [{"profile": {"name": "Habitante"}, "wa_id": wa_id}],
            "messages": [message],
        }
        body = encode_webhook(meta.envelope(value))
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": signature_of(body, APP_SECRET),
        }
        requests.append((body, headers))
    return requests


Replies = Callable[[], Awaitable[list[tuple[str, float]]]]


async def measure(
    posters: RemotePosters,
    url: str,
    requests: Sequence[Request],
    residents: Sequence[str],
    replies: Replies,
    concurrency: int,
) -> tuple[list[Post], dict[str, list[float]], float]:
    """Post every request, then wait for every resident's reply; the posts' timings, the
    replies by resident, and this process's CPU seconds meanwhile."""
    wanted = set(residents)
    cpu = time.process_time()
    posts = await posters.post(url, requests, concurrency)
    deadline = time.monotonic() + REPLY_WAIT
    while True:
        got = [(resident, at) for resident, at in await replies() if resident in wanted]
        if len({resident for resident, _ in got}) >= len(wanted):
            break
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    cpu = time.process_time() - cpu
    await asyncio.sleep(0.5)  # room for a late duplicate to show up
    by_resident: dict[str, list[float]] = {}
    for resident, at in await replies():
        if resident in wanted:
            by_resident.setdefault(resident, []).append(at)
    return posts, by_resident, cpu


@dataclass
class Setup:
    app: CoupDePouce
    telegram: RemoteEmulator
    whatsapp: RemoteWhatsApp
    posters: RemotePosters
    concurrency: int
    posts: int  # calls per pass

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.app.port}"

    async def telegram_replies(self) -> list[tuple[str, float]]:
        return [(str(chat), at) for chat, at in await self.telegram.send_times()]

    async def whatsapp_replies(self) -> list[tuple[str, float]]:
        return [(send.wa_id, send.at) for send in await self.whatsapp.sends() if send.delivered]

    async def telegram_pass(self, user_ids: Sequence[int]) -> Pass:
        residents = [str(user_id) for user_id in user_ids]
        posts, replies, cpu = await measure(
            self.posters,
            self.base + TELEGRAM_PATH,
            telegram_requests(user_ids),
            residents,
            self.telegram_replies,
            self.concurrency,
        )
        return Pass(posts, replies, residents, cpu, Counter())

    async def whatsapp_pass(self, wa_ids: Sequence[str], statuses: bool) -> Pass:
        await self.whatsapp.configure(send_statuses=statuses)
        before = await self.whatsapp.webhook_posts()
        posts, replies, cpu = await measure(
            self.posters,
            self.base + "/whatsapp",
            whatsapp_requests(wa_ids),
            wa_ids,
            self.whatsapp_replies,
            self.concurrency,
        )
        flushed = await self.whatsapp.flush(STATUS_FLUSH) if statuses else True
        await self.whatsapp.configure(send_statuses=False)
        posted = await self.whatsapp.webhook_posts() - before
        return Pass(posts, replies, wa_ids, cpu, posted, flushed)


def show(name: str, what: str, result: Pass) -> None:
    latencies = result.reply_latencies()
    refused = dict(result.refused)
    print(
        f"[{name}] {what}: {result.count:,} calls, {result.rate:.1f} answered/s; answer "
        f"p50 {result.answer(0.5) * 1e3:.0f} ms, p95 {result.answer(0.95) * 1e3:.0f} ms, "
        f"max {result.answer_max * 1e3:.0f} ms; not 200: {sum(refused.values())} {refused or ''}"
    )
    print(
        f"[{name}] {what}: every reply at the emulator {result.end_to_end:.2f} s after the first "
        f"post; post to reply p50 {percentile(latencies, 0.5) * 1e3:.0f} ms, p95 "
        f"{percentile(latencies, 0.95) * 1e3:.0f} ms; lost {result.lost}, duplicated "
        f"{result.duplicated}; bot CPU {result.cpu_per_post * 1e3:.2f} ms/call"
    )
    if result.statuses:
        answers = Counter({status: n for (_kind, status), n in result.statuses.items()})
        print(
            f"[{name}] {what}: status webhooks posted by the emulator meanwhile and after: "
            f"{sum(answers.values()):,}, answers {dict(answers)}"
            f"{'' if result.flushed else ' (some still queued)'}"
        )


def ratios(name: str, what: str, whatsapp: Pass, telegram: Pass) -> dict[str, float]:
    values = {
        "answered/s": whatsapp.rate / telegram.rate,
        "answer p50": whatsapp.answer(0.5) / telegram.answer(0.5),
        "answer p95": whatsapp.answer(0.95) / telegram.answer(0.95),
        "end to end": whatsapp.end_to_end / telegram.end_to_end,
        "CPU/call": whatsapp.cpu_per_post / telegram.cpu_per_post,
    }
    print(
        f"[{name}] ratio {what}/Telegram: "
        + ", ".join(f"{key} {value:.2f}" for key, value in values.items())
    )
    return values


@dataclass(frozen=True)
class Options:
    posts: int
    concurrency: int
    delay: float
    rounds: int
    rates: tuple[float, float]  # Telegram's dispatch_rate, whatsapp_rate
    statuses: bool  # the third pass, with Meta's status webhooks


async def one_round(
    name: str, number: int, setup: Setup, telegram_ids: list[int], wa_ids: list[str], statuses: bool
) -> dict[str, Pass]:
    """Telegram and WhatsApp (in this order in odd rounds, the other in even ones), then
    WhatsApp with status webhooks; the residents' lists are consumed."""
    posts = setup.posts
    results: dict[str, Pass] = {}
    order = ("Telegram", "WhatsApp") if number % 2 else ("WhatsApp", "Telegram")
    for channel in order:
        if channel == "Telegram":
            results[channel] = await setup.telegram_pass(take(telegram_ids, posts))
        else:
            results[channel] = await setup.whatsapp_pass(take(wa_ids, posts), statuses=False)
    if statuses:
        results[WITH_STATUSES] = await setup.whatsapp_pass(take(wa_ids, posts), statuses=True)
    print(f"[{name}] round {number} (order: {', '.join(results)})")
    for what, result in results.items():
        show(name, what, result)
    for what in results:
        if what != "Telegram":
            ratios(name, what, results[what], results["Telegram"])
    return results


def take(items: list[T], count: int) -> list[T]:
    """The first `count` items, removed from the list."""
    taken = items[:count]
    del items[:count]
    return taken


def spread(values: list[float], digits: int, unit: str = "") -> str:
    low, high = min(values), max(values)
    return (
        f"{sum(values) / len(values):.{digits}f}{unit} (min {low:.{digits}f}, max "
        f"{high:.{digits}f})"
    )


async def run(kind: str, options: Options) -> None:
    name = label(kind)
    rounds = options.rounds
    print(
        f"[{name}] {options.posts:,} webhook calls per channel and round, "
        f"{options.concurrency} posters, emulators answering after {options.delay * 1e3:.0f} ms, "
        f"Telegram rate {options.rates[0]:,.0f}/s, WhatsApp rate {options.rates[1]:,.0f}/s, "
        f"{rounds} round(s)"
    )
    per_round = options.posts * (2 if options.statuses else 1)
    telegram_ids = list(
        range(FIRST_TELEGRAM_ID, FIRST_TELEGRAM_ID + WARMUP + rounds * options.posts)
    )
    wa_ids = numbers(WARMUP + rounds * per_round)
    outcomes: list[dict[str, Pass]] = []
    async with scratch_database(kind) as url:
        council_id = await add_council(url)
        await add_residents(url, council_id, telegram_ids)
        now = utcnow()
        await add_whatsapp_residents(url, council_id, wa_ids, [now] * len(wa_ids))
        telegram, whatsapp, posters = RemoteEmulator(), RemoteWhatsApp(), RemotePosters()
        await asyncio.gather(telegram.start(), whatsapp.start(), posters.start())
        try:
            await telegram.residents(range(telegram_ids[0], telegram_ids[-1] + 1))
            await telegram.configure(response_delay=options.delay)
            await whatsapp.people(wa_ids, [60.0] * len(wa_ids))
            await whatsapp.configure(response_delay=options.delay, send_statuses=False)
            app = await start_whatsapp_app(
                url,
                whatsapp.url,
                whatsapp_rate=options.rates[1],
                telegram_api_url=telegram.url,
                dispatch_rate=options.rates[0],
                webhook_url=WEBHOOK_URL,
                webhook_secret=SECRET,
            )
            try:
                await whatsapp.configure(webhook_url=f"http://127.0.0.1:{app.port}/whatsapp")
                setup = Setup(app, telegram, whatsapp, posters, options.concurrency, options.posts)
                await setup.telegram_pass(take(telegram_ids, WARMUP))
                await setup.whatsapp_pass(take(wa_ids, WARMUP), statuses=False)
                for number in range(1, rounds + 1):
                    outcomes.append(
                        await one_round(name, number, setup, telegram_ids, wa_ids, options.statuses)
                    )
            finally:
                await app.stop()
        finally:
            await asyncio.gather(telegram.stop(), whatsapp.stop(), posters.stop())
    for what in outcomes[0]:
        print(
            f"[{name}] over {rounds} round(s), {what}: "
            f"{spread([o[what].rate for o in outcomes], 1, ' answered/s')}, answer p50 "
            f"{spread([o[what].answer(0.5) * 1e3 for o in outcomes], 0, ' ms')}, p95 "
            f"{spread([o[what].answer(0.95) * 1e3 for o in outcomes], 0, ' ms')}, end to end "
            f"{spread([o[what].end_to_end for o in outcomes], 2, ' s')}"
        )
    for what in outcomes[0]:
        if what == "Telegram":
            continue
        rate = [o[what].rate / o["Telegram"].rate for o in outcomes]
        cpu = [o[what].cpu_per_post / o["Telegram"].cpu_per_post for o in outcomes]
        print(
            f"[{name}] over {rounds} round(s), ratio {what}/Telegram: answered/s "
            f"{spread(rate, 2)}, CPU/call {spread(cpu, 2)}"
        )


async def main() -> int:
    quiet_logging()
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--posts", type=int, default=POSTS)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--delay", type=float, default=DELAY)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--real-rates", action="store_true")
    parser.add_argument("--no-statuses", action="store_true")
    chosen, rest = parser.parse_known_args()
    options = Options(
        posts=chosen.posts,
        concurrency=chosen.concurrency,
        delay=chosen.delay,
        rounds=chosen.rounds,
        rates=REAL_RATES if chosen.real_rates else LIFTED_RATES,
        statuses=not chosen.no_statuses,
    )
    for kind in database_kinds(rest, description=__doc__ or ""):
        await run(kind, options)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

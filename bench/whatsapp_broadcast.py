"""Figure 7: does a WhatsApp broadcast go out at the rate Meta allows, each resident getting
it exactly once, as an ordinary message inside their 24-hour window and as a template
outside it?

10,000 residents reached on WhatsApp, one council; every other one wrote 1 hour ago (inside
the window: an ordinary message), the others 25 hours ago (outside: the announcement's
template, `coupdepouce_news`), for the bot (`identities.last_inbound_at`) and for the
emulator alike. An announcement (`flows.announcements.service.message_for_residents`, which
carries a Notice) is broadcast to the council with `start_broadcast`.

The Cloud API emulator runs in a child process (bench/remote_whatsapp.py) and enforces Meta's
80 messages/s per phone number (`enforce_rate(per_second=80)`, a bucket of one second's
worth, answering 130429 beyond it); it answers each send after `--delay` seconds (0.05 s: Meta
is tens of milliseconds away, so the figure includes the round trip) and posts the `sent` and
`delivered` status webhooks of each message to the bot, as Meta does: 160 a second at 80
messages/s, `--status-posters` (8) at a time, since the emulator's own worker posts one at a
time and reaches only half that (`--status-posters 1` keeps it; `--no-statuses` turns them
off). The bot has whatsapp_rate=80. Achieved rate = messages delivered / time from the
first to the last, on the emulator's receive times, as a fraction of the limit (target
>= 0.95). Also: 130429 refusals, people who received nothing (lost) or more than one message
(duplicated), both to be 0, templates against ordinary messages as the emulator received them
and as the outbox recorded them (its `template` column), which must agree person by person,
the receipts recorded on the outbox, and the wall time from `start_broadcast` to every message
recorded as sent.

Each run uses a fresh database and emulator; `--runs` (default 2) repeats it and the spread is
printed. At 80 messages/s the 10,000 messages alone take 125 s, so the default run takes
about 4.5 minutes; `--runs 1` about 2.3, `--people N` less.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from bench.common import (
    BROADCAST_TEXT,
    add_council,
    database_kinds,
    label,
    max_in_window,
    pauses,
    quiet_logging,
    rate_between,
    scratch_database,
    sent_count,
    status_counts,
)
from bench.remote_whatsapp import RemoteWhatsApp, Send
from bench.whatsapp_common import add_whatsapp_residents, numbers, start_whatsapp_app
from bot.app import CoupDePouce
from flows.announcements.service import message_for_residents
from flows.broadcasts.service import members, start_broadcast
from storage import db
from storage.models import Council, OutboxMessage, OutboxStatus, utcnow

PEOPLE = 10_000
RATE = 80  # Meta's default throughput, messages per second per phone number
DELAY = 0.05  # seconds before the emulator answers a send
RUNS = 2
TARGET = 0.95
INSIDE = timedelta(hours=1)  # when the people inside the window last wrote
OUTSIDE = timedelta(hours=25)  # and the others
DEADLINE_SLACK = 50.0  # seconds beyond the expected sending time before giving up
STATUS_FLUSH = 10.0  # seconds left to the emulator to post the status webhooks still due
STATUS_POSTERS = 8  # concurrent status webhooks, as Meta posts them


@dataclass(frozen=True)
class Outcome:
    """One run, measured."""

    people: int
    inside: frozenset[str]  # the people inside their window
    sends: list[Send]
    outbox: dict[str, str | None]  # chat id → template of its sent row (None: ordinary)
    statuses: dict[str, int]  # outbox rows by status
    receipts: Counter[str | None]  # outbox rows by the last receipt recorded
    webhooks: Counter[tuple[str, str]]  # status webhooks posted by the emulator, by answer
    flushed: bool
    enqueue: float  # start_broadcast and its commit, seconds
    first_after: float  # first delivery after the commit, seconds
    wall: float  # start_broadcast to every message recorded as sent, seconds
    cpu: float  # CPU seconds of this process (the bot) meanwhile
    emulator_cpu: float

    @property
    def delivered(self) -> list[Send]:
        return [send for send in self.sends if send.delivered]

    @property
    def times(self) -> list[float]:
        return [send.at for send in self.delivered]

    @property
    def rate(self) -> float:
        return rate_between(self.times)

    @property
    def span(self) -> float:
        times = self.times
        return max(times) - min(times) if times else 0.0

    def per_person(self) -> Counter[str]:
        return Counter(send.wa_id for send in self.delivered)


async def announce(app: CoupDePouce, council_id: int) -> int:
    """Broadcast an announcement to the council's members, as its flow does; its id."""
    async with db.session_scope(app.sessions) as session:
        council = await session.get_one(Council, council_id)
        broadcast = await start_broadcast(
            session,
            council=council,
            kind="announcement",
            audience=members(council),
            render=message_for_residents(council, BROADCAST_TEXT),
        )
        broadcast_id: int = broadcast.id
    app.dispatcher.wake()
    return broadcast_id


async def sent_rows(
    app: CoupDePouce, broadcast_id: int
) -> tuple[dict[str, str | None], Counter[str | None]]:
    """The broadcast's sent rows: chat id → template name, and their receipts."""
    async with db.session_scope(app.sessions) as session:
        rows = (
            await session.execute(
                select(OutboxMessage.chat_id, OutboxMessage.template, OutboxMessage.receipt).where(
                    OutboxMessage.broadcast_id == broadcast_id,
                    OutboxMessage.status == OutboxStatus.SENT,
                )
            )
        ).all()
    return {row.chat_id: row.template for row in rows}, Counter(row.receipt for row in rows)


async def run_once(
    kind: str, people: int, delay: float, statuses: bool, status_posters: int = STATUS_POSTERS
) -> Outcome:
    wa_ids = numbers(people)
    inside = frozenset(wa_ids[0::2])
    now = utcnow()
    wrote = [INSIDE if wa_id in inside else OUTSIDE for wa_id in wa_ids]
    async with scratch_database(kind) as url:
        council_id = await add_council(url)
        await add_whatsapp_residents(url, council_id, wa_ids, [now - ago for ago in wrote])
        emulator = RemoteWhatsApp()
        await emulator.start()
        try:
            await emulator.people(wa_ids, [ago.total_seconds() for ago in wrote])
            await emulator.configure(response_delay=delay, send_statuses=statuses)
            await emulator.status_posters(status_posters)
            app = await start_whatsapp_app(url, emulator.url, whatsapp_rate=RATE)
            try:
                await emulator.configure(webhook_url=f"http://127.0.0.1:{app.port}/whatsapp")
                await emulator.enforce_rate(per_second=RATE)
                emulator_cpu = await emulator.cpu()
                cpu = time.process_time()
                started = time.monotonic()
                broadcast_id = await announce(app, council_id)
                committed = time.monotonic()
                # Generous: a bot slower than the limit still finishes, so "lost" means lost.
                deadline = committed + people / RATE * 1.2 + DEADLINE_SLACK
                while time.monotonic() < deadline:
                    if await emulator.accepted_count() >= people:
                        break
                    await asyncio.sleep(0.25)
                while time.monotonic() < deadline:  # everything recorded as sent
                    if await sent_count(app, broadcast_id) >= people:
                        break
                    await asyncio.sleep(0.1)
                wall = time.monotonic() - started
                cpu = time.process_time() - cpu
                emulator_cpu = await emulator.cpu() - emulator_cpu
                await asyncio.sleep(1.0)  # room for a late duplicate to show up
                flushed = await emulator.flush(STATUS_FLUSH) if statuses else True
            finally:
                await app.stop()
            outbox, receipts = await sent_rows(app, broadcast_id)
            counts = await status_counts(app, broadcast_id)  # after stop: nothing in flight
            await app.database.dispose()
            sends = await emulator.sends()
            webhooks = await emulator.webhook_posts()
        finally:
            await emulator.stop()
    first = min((send.at for send in sends if send.delivered), default=committed)
    return Outcome(
        people=people,
        inside=inside,
        sends=sends,
        outbox=outbox,
        statuses=counts,
        receipts=receipts,
        webhooks=webhooks,
        flushed=flushed,
        enqueue=committed - started,
        first_after=first - committed,
        wall=wall,
        cpu=cpu,
        emulator_cpu=emulator_cpu,
    )


@dataclass(frozen=True)
class Verdict:
    ok: bool  # every target met
    refused: int  # 130429 answers
    lost: int
    duplicated: int


def report(name: str, run: int, outcome: Outcome) -> Verdict:
    """Print one run's figures; whether every target is met, and the counts that must be 0."""
    prefix = f"[{name}] run {run}:"
    wanted = frozenset(numbers(outcome.people))
    per_person = outcome.per_person()
    lost = sum(1 for wa_id in wanted if per_person[wa_id] == 0)
    duplicated = sum(1 for wa_id in wanted if per_person[wa_id] > 1)
    strays = sum(count for wa_id, count in per_person.items() if wa_id not in wanted)
    refused = Counter(send.error_code for send in outcome.sends if not send.accepted)
    failed = Counter(send.error_code for send in outcome.sends if send.accepted and send.error_code)
    delivered = outcome.delivered
    templates = {send.wa_id for send in delivered if send.type == "template"}
    ordinary = {send.wa_id for send in delivered if send.type != "template"}
    outbox_templates = {chat for chat, template in outcome.outbox.items() if template is not None}
    outbox_ordinary = {chat for chat, template in outcome.outbox.items() if template is None}
    inside, outside = outcome.inside, wanted - outcome.inside
    misrouted = len(templates & inside) + len(ordinary & outside)
    agree = templates == outbox_templates and ordinary == outbox_ordinary
    names = Counter(send.template for send in delivered if send.template is not None)
    fraction = outcome.rate / RATE
    ok = (
        fraction >= TARGET
        and not refused
        and lost == 0
        and duplicated == 0
        and strays == 0
        and agree
        and misrouted == 0
    )
    print(
        f"{prefix} enqueue (start_broadcast + commit) {outcome.enqueue:.2f} s, first delivery "
        f"{outcome.first_after:.2f} s after the commit"
    )
    print(
        f"{prefix} delivered {len(delivered):,} to {outcome.people:,} people in "
        f"{outcome.span:.2f} s (first to last delivery)"
    )
    verdict = "OK" if fraction >= TARGET else "BELOW TARGET"
    print(
        f"{prefix} achieved rate {outcome.rate:.2f}/s = {fraction:.3f} x limit {RATE}/s "
        f"(target >= {TARGET}): {verdict}"
    )
    count, idle = pauses(outcome.times)
    print(
        f"{prefix} busiest 1-second window: {max_in_window(outcome.times)} messages; pauses "
        f"> 0.1 s between consecutive deliveries: {count}, {idle:.2f} s in all"
    )
    print(
        f"{prefix} refused: 130429 x {refused.get(130429, 0)}, other "
        f"{sum(refused.values()) - refused.get(130429, 0)} {dict(refused) or ''}; "
        f"failed after acceptance: {sum(failed.values())} {dict(failed) or ''}"
    )
    print(
        f"{prefix} lost: {lost}, duplicated: {duplicated}, outside the audience: {strays}, "
        f"in the wrong form for their window: {misrouted}"
    )
    print(
        f"{prefix} emulator: {len(templates):,} templates {dict(names)}, "
        f"{len(ordinary):,} ordinary messages; outbox `template`: {len(outbox_templates):,} "
        f"templates, {len(outbox_ordinary):,} ordinary; "
        f"agree person by person: {'yes' if agree else 'NO'}"
    )
    print(
        f"{prefix} wall time {outcome.wall:.2f} s (start_broadcast to every message recorded as "
        f"sent); bot CPU {outcome.cpu / max(len(delivered), 1) * 1e3:.2f} ms/message "
        f"({outcome.cpu / outcome.wall:.0%} of a core), emulator "
        f"{outcome.emulator_cpu / max(len(delivered), 1) * 1e3:.2f} ms/message"
    )
    if outcome.webhooks:
        posted = sum(outcome.webhooks.values())
        answers = Counter({status: n for (_kind, status), n in outcome.webhooks.items()})
        print(
            f"{prefix} status webhooks posted to the bot: {posted:,} of "
            f"{2 * len(delivered):,} due, answers {dict(answers)}"
            f"{'' if outcome.flushed else f' (still queued after {STATUS_FLUSH:.0f} s)'}; "
            f"receipts recorded on the outbox: {dict(outcome.receipts)}"
        )
    print(f"{prefix} outbox at the end: {outcome.statuses}")
    return Verdict(ok, refused.get(130429, 0), lost, duplicated)


def spread(values: list[float], unit: str, digits: int) -> str:
    low, high = min(values), max(values)
    middle = sum(values) / len(values)
    return (
        f"{middle:.{digits}f}{unit} (min {low:.{digits}f}, max {high:.{digits}f}, "
        f"spread {high - low:.{digits}f})"
    )


async def run(
    kind: str, people: int, runs: int, delay: float, statuses: bool, status_posters: int
) -> bool:
    name = label(kind)
    webhooks = f"on, {status_posters} at a time" if statuses else "off"
    print(
        f"[{name}] WhatsApp broadcast to {people:,} people (half inside their 24-hour window), "
        f"limit {RATE}/s, Graph API answering after {delay * 1e3:.0f} ms, status webhooks "
        f"{webhooks}, {runs} run(s)"
    )
    outcomes: list[Outcome] = []
    verdicts: list[Verdict] = []
    for number in range(1, runs + 1):
        outcome = await run_once(kind, people, delay, statuses, status_posters)
        verdicts.append(report(name, number, outcome))
        outcomes.append(outcome)
    fractions = [outcome.rate / RATE for outcome in outcomes]
    walls = [outcome.wall for outcome in outcomes]
    print(f"[{name}] over {runs} run(s): achieved rate / limit {spread(fractions, '', 3)}")
    print(f"[{name}] over {runs} run(s): wall time {spread(walls, ' s', 1)}")
    print(
        f"[{name}] over {runs} run(s): 130429 refusals {[v.refused for v in verdicts]}, lost "
        f"{[v.lost for v in verdicts]}, duplicated {[v.duplicated for v in verdicts]}"
    )
    return all(verdict.ok for verdict in verdicts)


async def main() -> int:
    quiet_logging()
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--people", type=int, default=PEOPLE)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--delay", type=float, default=DELAY)
    parser.add_argument("--no-statuses", action="store_true")
    parser.add_argument("--status-posters", type=int, default=STATUS_POSTERS)
    chosen, rest = parser.parse_known_args()
    results = [
        await run(
            kind,
            chosen.people,
            chosen.runs,
            chosen.delay,
            not chosen.no_statuses,
            chosen.status_posters,
        )
        for kind in database_kinds(rest, description=__doc__ or "")
    ]
    print(f"all targets met: {'yes' if all(results) else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

"""The council's digest: every few days (a week unless the council says otherwise), one short
message to its group with what happened since the last one — new members of the talent
directory, calls for help open or just closed, meetings coming up with their answers,
consultations open or just closed. Counts and titles only: the group is not the place for
anyone's name.

Nothing is posted when nothing happened since the last digest, and the schedule moves on all
the same. What is merely still open or coming up (a call nobody answered this week, a meeting
already announced) is listed again only alongside something new: a new member, a call that
was opened, answered or closed, a meeting that was planned, answered or came within two weeks,
a consultation that opened or closed. The first digest tells everything still open.

What it tells comes from the capabilities: each declares its section (`Flow.digest`), what it
gathers for the period and the lines it writes; this module reads none of their tables.

The schedule lives on the council (`next_digest_at`, `last_digest_at`); each tick claims the
councils that are due, a few at a time, and queues their digest in the same transaction that
moves their schedule, so a digest goes out once whatever the number of processes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from flows.broadcasts.quiet import next_allowed
from flows.broadcasts.service import to_payload
from flows.engine import Flow, Job, Reply
from flows.i18n import Translator
from flows.scheduling import each_due
from flows.sections import DigestSection, News, Period, digest_sections
from storage.models import Council, Priority
from storage.queries import outbox

log = logging.getLogger(__name__)

BATCH = 10  # councils claimed per tick; the others wait for the next one
DIGESTS_JOB = "digests"
EVERY = timedelta(minutes=5)
MESSAGE_LIMIT = 4000
WEEK = 7

Gathered = list[tuple[DigestSection[Any], News]]


# --- what happened -----------------------------------------------------------------------------


async def gather(
    session: AsyncSession, council: Council, period: Period, sections: Sequence[DigestSection[Any]]
) -> Gathered:
    """What each capability has to tell of the council for the period, in the digest's order."""
    return [(section, await section.gather(session, council, period)) for section in sections]


def newsworthy(gathered: Gathered) -> bool:
    """Something happened: what is merely still open is not worth a message of its own."""
    return any(news.newsworthy for _section, news in gathered)


# --- what the group reads ----------------------------------------------------------------------


def write(t: Translator, council: Council, gathered: Gathered) -> str:
    """The digest, a few short lines per section; sections with nothing in them are left out."""
    if council.digest_days == WEEK:
        title = t._("News of the week — {council}").format(council=council.name)
    else:
        title = t.ngettext(
            "News of the last {count} day — {council}",
            "News of the last {count} days — {council}",
            council.digest_days,
        ).format(count=t.number(council.digest_days), council=council.name)
    lines = ["📰 " + title]
    for section, news in gathered:
        body = section.write(t, news, council.timezone)
        if body:
            lines += ["", *body]
    text = "\n".join(lines)
    if len(text) > MESSAGE_LIMIT:
        text = text[: MESSAGE_LIMIT - 1] + "…"
    return text


# --- the scheduler's tick ----------------------------------------------------------------------


def registered() -> tuple[ColumnElement[bool], ...]:
    """Councils with a group and a digest."""
    return (
        Council.group_channel.is_not(None),
        Council.group_chat_id.is_not(None),
        Council.digest_days > 0,
    )


def job(flows: Iterable[Flow]) -> Job:
    """The scheduled digests, made of the sections the capabilities declare."""
    sections = digest_sections(flows)

    async def run(session: AsyncSession, now: datetime) -> int:
        return await send_due(session, now, sections)

    return Job(DIGESTS_JOB, EVERY, run)


async def send_due(
    session: AsyncSession,
    now: datetime,
    sections: Sequence[DigestSection[Any]],
    limit: int = BATCH,
) -> int:
    """Claim the councils whose digest is due, queue each one's digest to its group (unless
    there is nothing to tell) and move its schedule on. Returns how many were posted."""
    # A digest turned on after the group was registered starts its schedule: one period on.
    unscheduled = (
        select(Council)
        .where(*registered(), Council.next_digest_at.is_(None))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    for council in list(await session.scalars(unscheduled)):
        council.next_digest_at = now + timedelta(days=council.digest_days)
    due = (
        select(Council)
        .where(*registered(), Council.next_digest_at <= now)
        .order_by(Council.next_digest_at, Council.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )

    async def work(council: Council) -> bool:
        allowed = next_allowed(council, now)
        if allowed > now:  # quiet hours: the digest waits for the morning
            council.next_digest_at = allowed
            return False
        posted = await _post(session, council, now, sections)
        council.last_digest_at = now
        council.next_digest_at = now + timedelta(days=council.digest_days)
        return posted

    def failed(council: Council) -> None:
        # This digest is skipped; the next one is due a period on, as if it had gone.
        council.next_digest_at = now + timedelta(days=council.digest_days)

    posted = await each_due(
        session, DIGESTS_JOB, await session.scalars(due), work, now=now, failed=failed
    )
    await session.flush()
    return posted


async def _post(
    session: AsyncSession, council: Council, now: datetime, sections: Sequence[DigestSection[Any]]
) -> bool:
    period = Period(
        since=council.last_digest_at or now - timedelta(days=council.digest_days),
        now=now,
        first=council.last_digest_at is None,
    )
    gathered = await gather(session, council, period, sections)
    if not newsworthy(gathered):
        log.info("digest of council %s: nothing new", council.id)
        return False
    assert council.group_channel is not None and council.group_chat_id is not None
    text = write(Translator(council.locale), council, gathered)
    try:
        async with session.begin_nested():
            await outbox.enqueue_one(
                session,
                channel=council.group_channel,
                chat_id=council.group_chat_id,
                payload=to_payload(Reply(text)),
                priority=Priority.REPORT,
                council_id=council.id,
                key=f"digest:{council.id}:{now:%Y%m%d%H%M}",
            )
    except IntegrityError:  # already queued for this moment
        return False
    return True

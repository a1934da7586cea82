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

The schedule lives on the council (`next_digest_at`, `last_digest_at`); each tick claims the
councils that are due, a few at a time, and queues their digest in the same transaction that
moves their schedule, so a digest goes out once whatever the number of processes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from flows.broadcasts.quiet import next_allowed
from flows.broadcasts.service import to_payload
from flows.engine import Reply
from flows.i18n import N_, Translator
from flows.scheduling import each_due
from storage.models import (
    Answer,
    Ballot,
    Call,
    CallAnswer,
    CallStatus,
    Consultation,
    ConsultationStatus,
    Council,
    Meeting,
    MeetingInvite,
    MeetingStatus,
    Priority,
    Response,
    Rsvp,
    TalentProfile,
)
from storage.queries import outbox

log = logging.getLogger(__name__)

BATCH = 10  # councils claimed per tick; the others wait for the next one
DIGESTS_JOB = "digests"
MEETINGS_AHEAD = timedelta(days=14)
SHOWN = 5  # items listed per kind; the rest are counted
MESSAGE_LIMIT = 4000
WEEK = 7

CALLS = N_("Calls for help")
MEETINGS = N_("Upcoming meetings")
CONSULTATIONS = N_("Consultations")


# --- what happened -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """What a digest covers: (since, now]. Before the first digest, everything still open or
    coming up is news to the group."""

    since: datetime
    now: datetime
    first: bool


@dataclass(frozen=True)
class OpenCall:
    title: str
    deadline: datetime
    yes: int
    maybe: int
    fresh: bool  # new, or answered, since the last digest


@dataclass(frozen=True)
class ClosedCall:
    title: str
    yes: int


@dataclass(frozen=True)
class UpcomingMeeting:
    title: str
    starts_at: datetime
    coming: int
    guests: int
    maybe: int
    fresh: bool  # new, answered, or not yet in the last digest's two weeks


@dataclass(frozen=True)
class OpenConsultation:
    title: str
    closes_at: datetime
    answers: int
    new: bool  # opened since the last digest
    fresh: bool


@dataclass(frozen=True)
class ClosedConsultation:
    title: str
    respondents: int
    audience: int


@dataclass
class News:
    """What a digest tells, each list in the order it is shown."""

    new_members: int = 0
    open_calls: list[OpenCall] = field(default_factory=list)
    closed_calls: list[ClosedCall] = field(default_factory=list)
    meetings: list[UpcomingMeeting] = field(default_factory=list)
    open_consultations: list[OpenConsultation] = field(default_factory=list)
    closed_consultations: list[ClosedConsultation] = field(default_factory=list)

    @property
    def newsworthy(self) -> bool:
        """Something happened: what is merely still open is not worth a message of its own."""
        ongoing: list[OpenCall | UpcomingMeeting | OpenConsultation] = [
            *self.open_calls,
            *self.meetings,
            *self.open_consultations,
        ]
        return bool(
            self.new_members
            or self.closed_calls
            or self.closed_consultations
            or any(item.fresh for item in ongoing)
        )


async def gather(session: AsyncSession, council_id: int, period: Period) -> News:
    """What happened in the council in the period, and what is open or coming up now."""
    return News(
        new_members=await _new_members(session, council_id, period),
        open_calls=await _open_calls(session, council_id, period),
        closed_calls=await _closed_calls(session, council_id, period),
        meetings=await _meetings(session, council_id, period),
        open_consultations=await _open_consultations(session, council_id, period),
        closed_consultations=await _closed_consultations(session, council_id, period),
    )


async def _new_members(session: AsyncSession, council_id: int, period: Period) -> int:
    count = await session.scalar(
        select(func.count()).where(
            TalentProfile.council_id == council_id,
            TalentProfile.created_at > period.since,
            TalentProfile.created_at <= period.now,
            TalentProfile.hidden_at.is_(None),
        )
    )
    return int(count or 0)


async def _call_answers(
    session: AsyncSession, call_ids: Sequence[int]
) -> dict[tuple[int, Answer], int]:
    if not call_ids:
        return {}
    rows = await session.execute(
        select(CallAnswer.call_id, CallAnswer.answer, func.count())
        .where(CallAnswer.call_id.in_(list(call_ids)))
        .group_by(CallAnswer.call_id, CallAnswer.answer)
    )
    return {(call_id, Answer(answer)): int(count) for call_id, answer, count in rows}


async def _open_calls(session: AsyncSession, council_id: int, period: Period) -> list[OpenCall]:
    calls = list(
        await session.scalars(
            select(Call)
            .where(
                Call.council_id == council_id,
                Call.status == CallStatus.OPEN,
                Call.deadline > period.now,
            )
            .order_by(Call.deadline, Call.id)
        )
    )
    ids = [call.id for call in calls]
    answers = await _call_answers(session, ids)
    answered: set[int] = set()
    if ids:
        answered = set(
            await session.scalars(
                select(CallAnswer.call_id)
                .where(CallAnswer.call_id.in_(ids), CallAnswer.answered_at > period.since)
                .distinct()
            )
        )
    return [
        OpenCall(
            call.title,
            call.deadline,
            answers.get((call.id, Answer.YES), 0),
            answers.get((call.id, Answer.MAYBE), 0),
            fresh=period.first or call.created_at > period.since or call.id in answered,
        )
        for call in calls
    ]


async def _closed_calls(session: AsyncSession, council_id: int, period: Period) -> list[ClosedCall]:
    calls = list(
        await session.scalars(
            select(Call)
            .where(
                Call.council_id == council_id,
                Call.status == CallStatus.CLOSED,
                Call.closed_at > period.since,
                Call.closed_at <= period.now,
            )
            .order_by(Call.closed_at, Call.id)
        )
    )
    answers = await _call_answers(session, [call.id for call in calls])
    return [ClosedCall(call.title, answers.get((call.id, Answer.YES), 0)) for call in calls]


async def _meetings(
    session: AsyncSession, council_id: int, period: Period
) -> list[UpcomingMeeting]:
    meetings = list(
        await session.scalars(
            select(Meeting)
            .where(
                Meeting.council_id == council_id,
                Meeting.status == MeetingStatus.SCHEDULED,
                Meeting.starts_at > period.now,
                Meeting.starts_at <= period.now + MEETINGS_AHEAD,
            )
            .order_by(Meeting.starts_at, Meeting.id)
        )
    )
    ids = [meeting.id for meeting in meetings]
    figures: dict[tuple[int, Rsvp], tuple[int, int]] = {}
    answered: set[int] = set()
    if ids:
        rows = await session.execute(
            select(
                MeetingInvite.meeting_id,
                MeetingInvite.rsvp,
                func.count(),
                func.coalesce(func.sum(MeetingInvite.guests), 0),
            )
            .where(
                MeetingInvite.meeting_id.in_(ids),
                MeetingInvite.rsvp.in_([Rsvp.COMING, Rsvp.MAYBE]),
            )
            .group_by(MeetingInvite.meeting_id, MeetingInvite.rsvp)
        )
        figures = {(m, Rsvp(rsvp)): (int(n), int(guests)) for m, rsvp, n, guests in rows}
        answered = set(
            await session.scalars(
                select(MeetingInvite.meeting_id)
                .where(MeetingInvite.meeting_id.in_(ids), MeetingInvite.answered_at > period.since)
                .distinct()
            )
        )
    return [
        UpcomingMeeting(
            meeting.title,
            meeting.starts_at,
            coming=figures.get((meeting.id, Rsvp.COMING), (0, 0))[0],
            guests=figures.get((meeting.id, Rsvp.COMING), (0, 0))[1],
            maybe=figures.get((meeting.id, Rsvp.MAYBE), (0, 0))[0],
            fresh=period.first
            or meeting.created_at > period.since
            or meeting.starts_at > period.since + MEETINGS_AHEAD
            or meeting.id in answered,
        )
        for meeting in meetings
    ]


async def _respondents(session: AsyncSession, consultation_ids: Sequence[int]) -> dict[int, int]:
    """Ballots with at least one answer, per consultation (as the results count them)."""
    if not consultation_ids:
        return {}
    rows = await session.execute(
        select(Ballot.consultation_id, func.count())
        .where(
            Ballot.consultation_id.in_(list(consultation_ids)),
            exists().where(Response.ballot_id == Ballot.id),
        )
        .group_by(Ballot.consultation_id)
    )
    return {consultation_id: int(count) for consultation_id, count in rows}


async def _open_consultations(
    session: AsyncSession, council_id: int, period: Period
) -> list[OpenConsultation]:
    found = list(
        await session.scalars(
            select(Consultation)
            .where(
                Consultation.council_id == council_id,
                Consultation.status == ConsultationStatus.OPEN,
            )
            .order_by(Consultation.closes_at, Consultation.id)
        )
    )
    answers = await _respondents(session, [c.id for c in found])
    opened = [c.opened_at is not None and c.opened_at > period.since for c in found]
    return [
        OpenConsultation(c.title, c.closes_at, answers.get(c.id, 0), new, new or period.first)
        for c, new in zip(found, opened, strict=True)
    ]


async def _closed_consultations(
    session: AsyncSession, council_id: int, period: Period
) -> list[ClosedConsultation]:
    found = list(
        await session.scalars(
            select(Consultation)
            .where(
                Consultation.council_id == council_id,
                Consultation.status == ConsultationStatus.CLOSED,
                Consultation.closed_at > period.since,
                Consultation.closed_at <= period.now,
            )
            .order_by(Consultation.closed_at, Consultation.id)
        )
    )
    counted = await _respondents(session, [c.id for c in found if not c.results])
    closed = []
    for c in found:
        results = c.results or {}
        respondents = int(results.get("respondents", counted.get(c.id, 0)))
        audience = int(results.get("audience", c.audience_size))
        closed.append(ClosedConsultation(c.title, respondents, audience))
    return closed


# --- what the group reads ----------------------------------------------------------------------


def deadline(t: Translator, moment: datetime, timezone: str) -> str:
    """A short day and hour: "Fri, Dec 12 at 6:00 PM", "ven. 12 déc. à 18:00"."""
    local = moment.astimezone(ZoneInfo(timezone))
    return t._("{date} at {time}").format(
        date=t.day_label(local.date()), time=t.hour(moment, timezone)
    )


def more(t: Translator, items: Sequence[object]) -> list[str]:
    """The line saying how many of the items were left out, if any."""
    hidden = len(items) - SHOWN
    if hidden <= 0:
        return []
    return [
        "  "
        + t.ngettext("…and {count} more", "…and {count} more", hidden).format(
            count=t.number(hidden)
        )
    ]


def _calls(t: Translator, news: News, timezone: str) -> list[str]:
    lines = []
    for call in news.open_calls[:SHOWN]:
        lines.append(
            "• "
            + t._("“{title}”: {yes}, {maybe}, until {date}").format(
                title=call.title,
                yes=t.ngettext("{count} can help", "{count} can help", call.yes).format(
                    count=t.number(call.yes)
                ),
                maybe=t.ngettext("{count} maybe", "{count} maybe", call.maybe).format(
                    count=t.number(call.maybe)
                ),
                date=deadline(t, call.deadline, timezone),
            )
        )
    lines += more(t, news.open_calls)
    for closed in news.closed_calls[:SHOWN]:
        lines.append(
            "• "
            + t.ngettext(
                "“{title}” closed: {count} could help",
                "“{title}” closed: {count} could help",
                closed.yes,
            ).format(title=closed.title, count=t.number(closed.yes))
        )
    lines += more(t, news.closed_calls)
    return lines


def _meetings_lines(t: Translator, news: News, timezone: str) -> list[str]:
    lines = []
    for meeting in news.meetings[:SHOWN]:
        coming = t.ngettext("{count} coming", "{count} coming", meeting.coming).format(
            count=t.number(meeting.coming)
        )
        if meeting.guests:
            coming += " " + t.ngettext(
                "(+{count} guest)", "(+{count} guests)", meeting.guests
            ).format(count=t.number(meeting.guests))
        maybe = t.ngettext("{count} maybe", "{count} maybe", meeting.maybe).format(
            count=t.number(meeting.maybe)
        )
        lines += [
            "• "
            + t._("“{title}”, {date}").format(
                title=meeting.title, date=t.moment(meeting.starts_at, timezone)
            ),
            "  " + t._("{coming}, {maybe}").format(coming=coming, maybe=maybe),
        ]
    lines += more(t, news.meetings)
    return lines


def _consultations(t: Translator, news: News, timezone: str) -> list[str]:
    lines = []
    for c in news.open_consultations[:SHOWN]:
        lines.append(
            "• "
            + ("🆕 " if c.new else "")
            + t._("“{title}”: {answers}, until {date}").format(
                title=c.title,
                answers=t.ngettext("{count} answer", "{count} answers", c.answers).format(
                    count=t.number(c.answers)
                ),
                date=deadline(t, c.closes_at, timezone),
            )
        )
    lines += more(t, news.open_consultations)
    for closed in news.closed_consultations[:SHOWN]:
        rate = t.ngettext(
            "{count} of {audience} answered", "{count} of {audience} answered", closed.respondents
        ).format(count=t.number(closed.respondents), audience=t.number(closed.audience))
        if closed.audience:
            rate += f" ({t.percent(min(closed.respondents / closed.audience, 1.0))})"
        lines.append("• " + t._("“{title}” closed: {rate}").format(title=closed.title, rate=rate))
    lines += more(t, news.closed_consultations)
    return lines


def write(t: Translator, council: Council, news: News) -> str:
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
    if news.new_members:
        lines += [
            "",
            "🌱 "
            + t.ngettext(
                "{count} new person in the talent directory",
                "{count} new people in the talent directory",
                news.new_members,
            ).format(count=t.number(news.new_members)),
        ]
    zone = council.timezone
    sections = (
        ("🤝", CALLS, _calls(t, news, zone)),
        ("📅", MEETINGS, _meetings_lines(t, news, zone)),
        ("📝", CONSULTATIONS, _consultations(t, news, zone)),
    )
    for emoji, header, body in sections:
        if body:
            lines += ["", f"{emoji} {t._(header)}", *body]
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


async def send_due(session: AsyncSession, now: datetime, limit: int = BATCH) -> int:
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
        posted = await _post(session, council, now)
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


async def _post(session: AsyncSession, council: Council, now: datetime) -> bool:
    period = Period(
        since=council.last_digest_at or now - timedelta(days=council.digest_days),
        now=now,
        first=council.last_digest_at is None,
    )
    news = await gather(session, council.id, period)
    if not news.newsworthy:
        log.info("digest of council %s: nothing new", council.id)
        return False
    assert council.group_channel is not None and council.group_chat_id is not None
    text = write(Translator(council.locale), council, news)
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

"""Meetings: who is invited, their answers with the seats and the waiting list, changes,
cancellation, and the reminders the scheduler sends.

Invitations, notices and reminders are broadcasts (one outbox message per person, in their
language), each with the calendar file. Every one states the day, hour and place itself.
"""

from __future__ import annotations

import enum
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import JSON, Select, func, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from flows.broadcasts import service as broadcasts
from flows.broadcasts.quiet import next_allowed
from flows.calls import service as calls
from flows.engine import Choice, Notice, NoticeKind, Reply
from flows.i18n import N_, Translator
from flows.meetings.buttons import RsvpAnswer, RsvpButton
from flows.meetings.calendar import attachment
from flows.scheduling import each_due
from storage.models import (
    Answer,
    Broadcast,
    BroadcastStatus,
    CallAnswer,
    Council,
    Meeting,
    MeetingInvite,
    MeetingReminder,
    MeetingStatus,
    Membership,
    Person,
    PersonStatus,
    Priority,
    ReminderKind,
    ReminderStatus,
    Rsvp,
    utcnow,
)
from storage.queries import outbox
from storage.queries.meetings import meeting_for_update

log = logging.getLogger(__name__)

REMINDERS_JOB = "meeting-reminders"

SummaryWriter = Callable[[AsyncSession, Translator, Meeting], Awaitable[str]]

DEFAULT_REMINDER_HOURS = (24, 2)
MAX_GUESTS = 3
NEEDS = {
    "childcare": N_("Childcare"),
    "access": N_("Accessibility (wheelchair, step-free access)"),
    "interpreting": N_("Interpreting"),
}
ANSWERS = {
    Rsvp.COMING: N_("I'm coming"),
    Rsvp.MAYBE: N_("Maybe"),
    Rsvp.DECLINED: N_("I can't come"),
}
# How late a reminder may still go out after its moment, when the bot was down at that time:
# a quarter of its delay (30 minutes for the one two hours before, 6 hours for the day before).
GRACE_FRACTION = 0.25


class Audience(enum.StrEnum):
    ALL = "all"  # every member of the council
    SKILLS = "skills"  # talent-directory members with one of the skills
    CALL = "call"  # the residents who offered help on a call for talents


@dataclass(frozen=True)
class NewMeeting:
    title: str
    description: str
    place: str
    starts_at: datetime
    ends_at: datetime
    capacity: int | None = None
    rsvp_deadline: datetime | None = None
    audience: Audience = Audience.ALL
    skill_ids: list[int] = field(default_factory=list)
    call_id: int | None = None
    reminder_hours: list[int] = field(default_factory=lambda: list(DEFAULT_REMINDER_HOURS))
    reminder_note: str | None = None
    latitude: float | None = None
    longitude: float | None = None


def audience(council: Council, new: NewMeeting) -> Select[int]:
    """Who is invited."""
    if new.audience is Audience.SKILLS and new.skill_ids:
        return calls.audience(council, new.skill_ids, [])
    if new.audience is Audience.CALL and new.call_id is not None:
        return (
            select(CallAnswer.person_id)
            .join(Person, Person.id == CallAnswer.person_id)
            .join(Membership, Membership.person_id == Person.id)
            .where(
                CallAnswer.call_id == new.call_id,
                CallAnswer.answer.in_([Answer.YES, Answer.MAYBE]),
                Membership.council_id == council.id,
                Person.status == PersonStatus.ACTIVE,
            )
        )
    return broadcasts.members(council)


def invited(meeting_id: int, answers: Sequence[Rsvp]) -> Select[int]:
    """The invited people whose answer is one of these."""
    return select(MeetingInvite.person_id).where(
        MeetingInvite.meeting_id == meeting_id, MeetingInvite.rsvp.in_(list(answers))
    )


NOT_DECLINED = (Rsvp.INVITED, Rsvp.COMING, Rsvp.MAYBE, Rsvp.WAITING)
REMINDED = (Rsvp.COMING, Rsvp.MAYBE)


# --- what residents read -------------------------------------------------------------------


def when_and_where(t: Translator, meeting: Meeting, timezone: str) -> list[str]:
    """The day, the hours and the place: in every message about a meeting."""
    return [
        "🗓 "
        + t._("{start} to {end}").format(
            start=t.moment(meeting.starts_at, timezone), end=t.hour(meeting.ends_at, timezone)
        ),
        "📍 " + meeting.place,
    ]


def notice(
    t: Translator, kind: NoticeKind, council: Council, meeting: Meeting, timezone: str
) -> Notice:
    """The meeting in one line, for a channel that announces the message first."""
    return Notice(
        kind,
        t.locale,
        council=council.name,
        title=meeting.title,
        when=t.moment(meeting.starts_at, timezone),
        place=meeting.place,
    )


def rsvp_buttons(t: Translator, meeting_id: int) -> tuple[tuple[Choice, ...], ...]:
    def button(mark: str, answer: RsvpAnswer) -> Choice:
        return Choice(f"{mark} " + t._(ANSWERS[answer.rsvp]), RsvpButton(meeting_id, answer).pack())

    return (
        (button("✅", RsvpAnswer.COMING), button("🤔", RsvpAnswer.MAYBE)),
        (button("❌", RsvpAnswer.DECLINED),),
    )


def invitation(council: Council, meeting: Meeting) -> broadcasts.Render:
    """The invitation, with its answers and the calendar file."""
    file = attachment(meeting, council.timezone)

    def render(t: Translator) -> Reply:
        lines = [
            "📣 " + t._("Invitation — {council}").format(council=council.name),
            "",
            meeting.title,
        ]
        if meeting.description:
            lines.append(meeting.description)
        lines += ["", *when_and_where(t, meeting, council.timezone)]
        if meeting.capacity:
            lines.append(
                t.ngettext("{count} place", "{count} places", meeting.capacity).format(
                    count=t.number(meeting.capacity)
                )
            )
        if meeting.rsvp_deadline is not None:
            lines.append(
                t._("Please answer by {date}.").format(
                    date=t.moment(meeting.rsvp_deadline, council.timezone)
                )
            )
        return Reply(
            "\n".join(lines),
            rsvp_buttons(t, meeting.id),
            attachment=file,
            notice=notice(t, NoticeKind.MEETING, council, meeting, council.timezone),
        )

    return render


@dataclass(frozen=True)
class Changes:
    """What an organiser changed, as it was before."""

    starts_at: datetime | None = None
    ends_at: datetime | None = None
    place: str | None = None


def change_notice(council: Council, meeting: Meeting, before: Changes) -> broadcasts.Render:
    file = attachment(meeting, council.timezone)
    zone = council.timezone

    def render(t: Translator) -> Reply:
        lines = ["⚠️ " + t._("Change to a meeting — {council}").format(council=council.name), ""]
        lines.append(meeting.title)
        if before.starts_at is not None:
            lines.append(
                t._("New time (it was {old}).").format(old=t.moment(before.starts_at, zone))
            )
        if before.place is not None:
            lines.append(t._("New place (it was {old}).").format(old=before.place))
        lines += ["", *when_and_where(t, meeting, zone), ""]
        lines.append(t._("Your answer still counts; you can change it below."))
        return Reply(
            "\n".join(lines),
            rsvp_buttons(t, meeting.id),
            attachment=file,
            notice=notice(t, NoticeKind.MEETING_NEWS, council, meeting, zone),
        )

    return render


def cancellation_notice(council: Council, meeting: Meeting) -> broadcasts.Render:
    file = attachment(meeting, council.timezone)

    def render(t: Translator) -> Reply:
        lines = [
            "❌ " + t._("Meeting cancelled — {council}").format(council=council.name),
            "",
            meeting.title,
            *when_and_where(t, meeting, council.timezone),
            "",
            t._("This meeting will not take place. Sorry for the change of plans."),
        ]
        return Reply(
            "\n".join(lines),
            attachment=file,
            notice=notice(t, NoticeKind.MEETING_NEWS, council, meeting, council.timezone),
        )

    return render


def reminder(council: Council, meeting: Meeting) -> broadcasts.Render:
    def render(t: Translator) -> Reply:
        lines = [
            "⏰ " + t._("Reminder — {council}").format(council=council.name),
            "",
            meeting.title,
            *when_and_where(t, meeting, council.timezone),
        ]
        if meeting.reminder_note:
            lines += ["", meeting.reminder_note]
        lines += ["", t._("Plans changed? Tell us below.")]
        return Reply(
            "\n".join(lines),
            rsvp_buttons(t, meeting.id),
            notice=notice(t, NoticeKind.REMINDER, council, meeting, council.timezone),
        )

    return render


# --- sending and scheduling ----------------------------------------------------------------


class Sent(enum.Enum):
    SENT = "sent"
    NOBODY = "nobody"


async def reach(session: AsyncSession, council: Council, new: NewMeeting) -> int:
    return await broadcasts.audience_size(session, audience(council, new))


async def send(
    session: AsyncSession,
    council: Council,
    new: NewMeeting,
    organiser: Person | None,
    report_to: broadcasts.ReportTo,
    now: datetime | None = None,
) -> tuple[Sent, Meeting | None]:
    """Record the meeting, its invited people and reminders, and queue the invitations."""
    now = now or utcnow()
    who = audience(council, new)
    if await broadcasts.audience_size(session, who) == 0:
        return Sent.NOBODY, None
    meeting = Meeting(
        council_id=council.id,
        created_by=organiser.id if organiser else None,
        organiser_channel=report_to.channel,
        organiser_chat=report_to.chat_id,
        organiser_locale=report_to.locale,
        uid=f"meeting-{secrets.token_hex(8)}@coupdepouce",
        title=new.title,
        description=new.description,
        place=new.place,
        latitude=new.latitude,
        longitude=new.longitude,
        starts_at=new.starts_at,
        ends_at=new.ends_at,
        capacity=new.capacity,
        rsvp_deadline=new.rsvp_deadline,
        audience=new.audience.value,
        skill_ids=list(new.skill_ids),
        call_id=new.call_id,
        reminder_hours=sorted(set(new.reminder_hours), reverse=True),
        reminder_note=new.reminder_note,
        sequence=0,
        status=MeetingStatus.SCHEDULED,
    )
    session.add(meeting)
    await session.flush()
    people = who.distinct().subquery()  # one invitation each, whatever the audience
    await session.execute(
        insert(MeetingInvite).from_select(
            ["meeting_id", "person_id", "rsvp", "guests", "needs"],
            select(
                literal(meeting.id),
                people.c[0],
                literal(Rsvp.INVITED.value),
                literal(0),
                literal([], JSON),
            ),
        )
    )
    broadcast = await broadcasts.start_broadcast(
        session,
        council=council,
        kind="meeting",
        subject=f"meeting:{meeting.id}",
        audience=invited(meeting.id, [Rsvp.INVITED]),
        render=invitation(council, meeting),
        started_by=organiser,
        report_to=report_to,
        now=now,
    )
    meeting.broadcast_id = broadcast.id
    await schedule(session, meeting, now)
    return Sent.SENT, meeting


async def schedule(session: AsyncSession, meeting: Meeting, now: datetime) -> None:
    """(Re)write the meeting's reminders and deadline summary for its current time.

    Rows made for an earlier time are cancelled: a reminder for the old time never goes out.
    """
    await session.execute(
        update(MeetingReminder)
        .where(
            MeetingReminder.meeting_id == meeting.id,
            MeetingReminder.status == ReminderStatus.PENDING,
        )
        .values(status=ReminderStatus.CANCELLED, done_at=now)
    )
    if meeting.status != MeetingStatus.SCHEDULED:
        return
    for hours in meeting.reminder_hours:
        due = meeting.starts_at - timedelta(hours=hours)
        if due > now:
            session.add(
                MeetingReminder(
                    meeting_id=meeting.id,
                    kind=ReminderKind.REMINDER,
                    hours_before=hours,
                    sequence=meeting.sequence,
                    due_at=due,
                    status=ReminderStatus.PENDING,
                )
            )
    deadline = meeting.rsvp_deadline
    if deadline is not None and now < deadline < meeting.starts_at:
        session.add(
            MeetingReminder(
                meeting_id=meeting.id,
                kind=ReminderKind.SUMMARY,
                sequence=meeting.sequence,
                due_at=deadline,
                status=ReminderStatus.PENDING,
            )
        )
    await session.flush()


def grace(row: MeetingReminder) -> timedelta:
    if row.kind is ReminderKind.SUMMARY or not row.hours_before:
        return timedelta(hours=12)
    return timedelta(hours=row.hours_before) * GRACE_FRACTION


async def send_due(session: AsyncSession, now: datetime, limit: int = 50) -> int:
    """The scheduler's tick: claim the reminders that are due and queue them, in the
    caller's transaction. Rows another process holds are skipped; a claimed row is marked
    in the same transaction as its messages, so each goes out once; a row whose work raises
    is marked failed alone (`each_due`).

    A reminder is claimed with its meeting's row, both locked, as an organiser's change
    locks the meeting: a meeting being moved or cancelled right now is skipped until the
    next tick (its reminders are then re-planned or cancelled), and a move that comes after
    the claim waits for it and withdraws what it queued. The meeting is read again under
    the lock, so the reminder is for the time and place the meeting has now."""
    due = (
        select(MeetingReminder)
        .join(Meeting, Meeting.id == MeetingReminder.meeting_id)
        .where(MeetingReminder.status == ReminderStatus.PENDING, MeetingReminder.due_at <= now)
        .order_by(MeetingReminder.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )

    async def work(row: MeetingReminder) -> bool:
        meeting = await meeting_for_update(session, row.meeting_id)
        if meeting is None:  # gone with its council: its reminders go with it
            row.status = ReminderStatus.CANCELLED
            row.done_at = now
            return False
        council = await session.get_one(Council, meeting.council_id)
        row.done_at = now
        if meeting.status != MeetingStatus.SCHEDULED or row.sequence != meeting.sequence:
            row.status = ReminderStatus.CANCELLED
            return False
        late = now - row.due_at
        if now >= meeting.starts_at or late > grace(row):
            row.status = ReminderStatus.DROPPED
            log.warning(
                "%s for meeting %d dropped: due at %s, %s late (the bot was down)",
                row.kind.value,
                meeting.id,
                row.due_at.isoformat(timespec="minutes"),
                str(late).split(".")[0],
            )
            return False
        if row.kind is ReminderKind.REMINDER:
            await broadcasts.start_broadcast(
                session,
                council=council,
                kind="reminder",
                subject=f"meeting:{meeting.id}",
                audience=invited(meeting.id, REMINDED),
                render=reminder(council, meeting),
                # Quiet hours hold it back, unless that would be after the start.
                urgent=next_allowed(council, now) >= meeting.starts_at,
            )
        else:
            await tell_organiser(session, meeting, summary_text, key=f"meeting-summary:{row.id}")
        row.status = ReminderStatus.SENT
        return True

    def failed(row: MeetingReminder) -> None:
        row.status = ReminderStatus.FAILED
        row.done_at = now

    rows = await session.scalars(due)
    return await each_due(session, REMINDERS_JOB, rows, work, now=now, failed=failed)


# --- answers, seats and the waiting list ---------------------------------------------------


class Answered(enum.Enum):
    RECORDED = "recorded"
    WAITING = "waiting"  # wanted to come: the meeting is full
    CLOSED = "closed"  # past the RSVP deadline or the start
    CANCELLED = "cancelled"
    NOT_ALLOWED = "not_allowed"  # not invited (a forged or foreign button)


@dataclass(frozen=True)
class Rsvped:
    outcome: Answered
    meeting: Meeting | None = None
    position: int = 0  # on the waiting list
    promoted: tuple[int, ...] = ()  # person ids who got a freed seat


async def seats_taken(session: AsyncSession, meeting_id: int) -> int:
    """People coming, with those they bring."""
    total = await session.scalar(
        select(func.coalesce(func.sum(1 + MeetingInvite.guests), 0)).where(
            MeetingInvite.meeting_id == meeting_id, MeetingInvite.rsvp == Rsvp.COMING
        )
    )
    return int(total or 0)


async def free_seats(session: AsyncSession, meeting: Meeting) -> int | None:
    """None when there is no limit."""
    if not meeting.capacity:
        return None
    return max(meeting.capacity - await seats_taken(session, meeting.id), 0)


async def invite_of(session: AsyncSession, meeting_id: int, person_id: int) -> MeetingInvite | None:
    return await session.scalar(
        select(MeetingInvite).where(
            MeetingInvite.meeting_id == meeting_id, MeetingInvite.person_id == person_id
        )
    )


def open_for_answers(meeting: Meeting, now: datetime) -> Answered | None:
    """Why answers are closed, if they are."""
    if meeting.status == MeetingStatus.CANCELLED:
        return Answered.CANCELLED
    if now >= meeting.starts_at or (
        meeting.rsvp_deadline is not None and now >= meeting.rsvp_deadline
    ):
        return Answered.CLOSED
    return None


async def respond(
    session: AsyncSession,
    meeting_id: int,
    person: Person,
    answer: Rsvp,
    now: datetime | None = None,
) -> Rsvped:
    """Record (or change) an answer; a "coming" beyond the capacity joins the waiting list,
    and a seat given up goes to the first person waiting."""
    now = now or utcnow()
    # The meeting's row is locked so two last-seat answers cannot both get it.
    meeting = await meeting_for_update(session, meeting_id)
    if meeting is None:
        return Rsvped(Answered.NOT_ALLOWED)
    invite = await invite_of(session, meeting_id, person.id)
    if invite is None:
        return Rsvped(Answered.NOT_ALLOWED)
    closed = open_for_answers(meeting, now)
    if closed is not None:
        return Rsvped(closed, meeting)
    before = invite.rsvp
    if answer is Rsvp.COMING and before in (Rsvp.COMING, Rsvp.WAITING):
        position = await waiting_position(session, invite) if before is Rsvp.WAITING else 0
        return Rsvped(Answered.WAITING if position else Answered.RECORDED, meeting, position)
    if answer is Rsvp.COMING:
        free = await free_seats(session, meeting)
        answer = Rsvp.COMING if free is None or free >= 1 else Rsvp.WAITING
    invite.rsvp = answer
    invite.answered_at = now
    if answer is not Rsvp.COMING:
        invite.guests = 0
        invite.needs = []
    await session.flush()
    promoted: tuple[int, ...] = ()
    if before is Rsvp.COMING and answer is not Rsvp.COMING:
        promoted = await promote(session, meeting, now)
    if answer is Rsvp.WAITING:
        return Rsvped(Answered.WAITING, meeting, await waiting_position(session, invite))
    return Rsvped(Answered.RECORDED, meeting, 0, promoted)


async def waiting_position(session: AsyncSession, invite: MeetingInvite) -> int:
    ahead = await session.scalar(
        select(func.count()).where(
            MeetingInvite.meeting_id == invite.meeting_id,
            MeetingInvite.rsvp == Rsvp.WAITING,
            MeetingInvite.answered_at <= invite.answered_at,
            MeetingInvite.id != invite.id,
        )
    )
    return int(ahead or 0) + 1


async def promote(session: AsyncSession, meeting: Meeting, now: datetime) -> tuple[int, ...]:
    """Give freed seats to the people waiting, first come first served, and tell them."""
    promoted: list[int] = []
    while True:
        free = await free_seats(session, meeting)
        if free is not None and free < 1:
            break
        first = await session.scalar(
            select(MeetingInvite)
            .where(MeetingInvite.meeting_id == meeting.id, MeetingInvite.rsvp == Rsvp.WAITING)
            .order_by(MeetingInvite.answered_at, MeetingInvite.id)
            .limit(1)
        )
        if first is None:
            break
        first.rsvp = Rsvp.COMING
        first.answered_at = now
        await session.flush()
        promoted.append(first.person_id)
        await tell_promoted(session, meeting, first.person_id)
    return tuple(promoted)


async def tell_promoted(session: AsyncSession, meeting: Meeting, person_id: int) -> None:
    council = await session.get_one(Council, meeting.council_id)

    def render(t: Translator) -> Reply:
        lines = [
            "🎉 " + t._("A place is free: you are now registered."),
            "",
            meeting.title,
            *when_and_where(t, meeting, council.timezone),
            "",
            t._("Can't come after all? Tell us below, so the place goes to someone else."),
        ]
        return Reply(
            "\n".join(lines),
            rsvp_buttons(t, meeting.id),
            notice=notice(t, NoticeKind.MEETING_NEWS, council, meeting, council.timezone),
        )

    await broadcasts.start_broadcast(
        session,
        council=council,
        kind="meeting-seat",
        subject=f"meeting:{meeting.id}",
        audience=select(Person.id).where(Person.id == person_id),
        render=render,
        urgent=True,
    )


class Extra(enum.Enum):
    RECORDED = "recorded"
    FULL = "full"  # not enough seats for the guests
    NOT_COMING = "not_coming"


async def set_guests(
    session: AsyncSession, meeting_id: int, person: Person, guests: int, now: datetime | None = None
) -> Extra:
    meeting = await meeting_for_update(session, meeting_id)
    invite = await invite_of(session, meeting_id, person.id)
    if meeting is None or invite is None or invite.rsvp is not Rsvp.COMING:
        return Extra.NOT_COMING
    if open_for_answers(meeting, now or utcnow()) is not None:
        return Extra.NOT_COMING
    guests = max(0, min(guests, MAX_GUESTS))
    free = await free_seats(session, meeting)
    if free is not None and guests - invite.guests > free:
        return Extra.FULL
    freed = guests < invite.guests
    invite.guests = guests
    await session.flush()
    if freed:
        await promote(session, meeting, now or utcnow())
    return Extra.RECORDED


async def set_needs(
    session: AsyncSession, meeting_id: int, person: Person, needs: list[str]
) -> Extra:
    invite = await invite_of(session, meeting_id, person.id)
    if invite is None or invite.rsvp is not Rsvp.COMING:
        return Extra.NOT_COMING
    invite.needs = [need for need in NEEDS if need in needs]
    await session.flush()
    return Extra.RECORDED


# --- the organiser's side ------------------------------------------------------------------


async def change(
    session: AsyncSession,
    meeting: Meeting,
    *,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    place: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Move the meeting or its place; everyone invited who did not decline is told, with
    the new calendar file. Its reminders move with it, and a reminder already queued for the
    old time or place is withdrawn. False if there is nothing to change, or the meeting can
    no longer be changed.

    The meeting is locked and read again first (`meeting_for_update`): what the organiser
    saw may be stale, a reminder may be going out, another change may have just landed."""
    now = now or utcnow()
    locked = await meeting_for_update(session, meeting.id)
    if locked is None or locked.status != MeetingStatus.SCHEDULED:
        return False
    meeting = locked  # the same object when the caller's session loaded it
    before = Changes(
        starts_at=meeting.starts_at if starts_at and starts_at != meeting.starts_at else None,
        ends_at=meeting.ends_at if ends_at and ends_at != meeting.ends_at else None,
        place=meeting.place if place and place != meeting.place else None,
    )
    if before == Changes():
        return False
    if starts_at is not None:
        duration = meeting.ends_at - meeting.starts_at
        meeting.starts_at = starts_at
        meeting.ends_at = ends_at or starts_at + duration
    if place is not None:
        meeting.place = place
    meeting.sequence += 1
    council = await session.get_one(Council, meeting.council_id)
    await withdraw_reminders(session, meeting.id)
    await broadcasts.start_broadcast(
        session,
        council=council,
        kind="meeting-change",
        subject=f"meeting:{meeting.id}",
        audience=invited(meeting.id, NOT_DECLINED),
        render=change_notice(council, meeting, before),
        urgent=True,
    )
    await schedule(session, meeting, now)
    return True


async def cancel(session: AsyncSession, meeting: Meeting, now: datetime | None = None) -> bool:
    """Cancel the meeting: its reminders are dropped (a reminder queued and not sent yet is
    withdrawn), everyone who did not decline is told. False if it can no longer be
    cancelled (someone cancelled it meanwhile): the meeting is locked and read again first."""
    now = now or utcnow()
    locked = await meeting_for_update(session, meeting.id)
    if locked is None or locked.status != MeetingStatus.SCHEDULED:
        return False
    meeting = locked  # the same object when the caller's session loaded it
    meeting.status = MeetingStatus.CANCELLED
    meeting.cancelled_at = now
    meeting.sequence += 1
    council = await session.get_one(Council, meeting.council_id)
    await withdraw_reminders(session, meeting.id)
    await broadcasts.start_broadcast(
        session,
        council=council,
        kind="meeting-cancel",
        subject=f"meeting:{meeting.id}",
        audience=invited(meeting.id, NOT_DECLINED),
        render=cancellation_notice(council, meeting),
        urgent=True,
    )
    await schedule(session, meeting, now)
    return True


async def withdraw_reminders(session: AsyncSession, meeting_id: int) -> int:
    """Stop the meeting's reminders queued and not sent yet: they state the old time and
    place, and the urgent change or cancellation notice would overtake them. Called with the
    meeting locked, after a reminder claimed just before has committed its messages."""
    queued = await session.scalars(
        select(Broadcast)
        .where(
            Broadcast.kind == "reminder",
            Broadcast.subject == f"meeting:{meeting_id}",
            Broadcast.status.in_([BroadcastStatus.PENDING, BroadcastStatus.SENDING]),
        )
        .with_for_update()
    )
    withdrawn = 0
    for broadcast in list(queued):
        broadcast.status = BroadcastStatus.INTERRUPTED
        broadcast.reported_at = None  # its counts are brought up to date at once
        withdrawn += await outbox.cancel_broadcast(session, broadcast.id)
    return withdrawn


@dataclass(frozen=True)
class Guest:
    person_id: int
    first_name: str
    rsvp: Rsvp
    guests: int
    needs: list[str]
    attended: bool | None


async def roster(session: AsyncSession, meeting_id: int) -> list[Guest]:
    """Everyone who answered, in the order they did."""
    rows = await session.execute(
        select(
            MeetingInvite.person_id,
            Person.first_name,
            MeetingInvite.rsvp,
            MeetingInvite.guests,
            MeetingInvite.needs,
            MeetingInvite.attended,
        )
        .join(Person, Person.id == MeetingInvite.person_id)
        .where(MeetingInvite.meeting_id == meeting_id, MeetingInvite.rsvp != Rsvp.INVITED)
        .order_by(MeetingInvite.answered_at, MeetingInvite.id)
    )
    return [Guest(r[0], r[1] or "—", Rsvp(r[2]), r[3], list(r[4] or []), r[5]) for r in rows]


@dataclass(frozen=True)
class Counts:
    coming: int = 0
    guests: int = 0
    maybe: int = 0
    declined: int = 0
    waiting: int = 0
    no_answer: int = 0
    attended: int = 0


async def counts(session: AsyncSession, meeting_id: int) -> Counts:
    rows = await session.execute(
        select(
            MeetingInvite.rsvp,
            func.count(),
            func.coalesce(func.sum(MeetingInvite.guests), 0),
            func.count(MeetingInvite.attended).filter(MeetingInvite.attended.is_(True)),
        )
        .where(MeetingInvite.meeting_id == meeting_id)
        .group_by(MeetingInvite.rsvp)
    )
    by: dict[Rsvp, tuple[int, int, int]] = {Rsvp(r[0]): (r[1], r[2], r[3]) for r in rows}

    def n(rsvp: Rsvp) -> int:
        return by.get(rsvp, (0, 0, 0))[0]

    return Counts(
        coming=n(Rsvp.COMING),
        guests=by.get(Rsvp.COMING, (0, 0, 0))[1],
        maybe=n(Rsvp.MAYBE),
        declined=n(Rsvp.DECLINED),
        waiting=n(Rsvp.WAITING),
        no_answer=n(Rsvp.INVITED),
        attended=sum(value[2] for value in by.values()),
    )


def counts_text(t: Translator, c: Counts) -> str:
    coming = t.ngettext("{count} coming", "{count} coming", c.coming).format(
        count=t.number(c.coming)
    )
    if c.guests:
        coming += " " + t.ngettext("(+{count} guest)", "(+{count} guests)", c.guests).format(
            count=t.number(c.guests)
        )
    parts = [
        "✅ " + coming,
        "🤔 "
        + t.ngettext("{count} maybe", "{count} maybe", c.maybe).format(count=t.number(c.maybe)),
        "❌ "
        + t.ngettext("{count} declined", "{count} declined", c.declined).format(
            count=t.number(c.declined)
        ),
    ]
    if c.waiting:
        parts.append(
            "⏳ "
            + t.ngettext("{count} waiting", "{count} waiting", c.waiting).format(
                count=t.number(c.waiting)
            )
        )
    parts.append(
        t.ngettext("{count} without answer", "{count} without answer", c.no_answer).format(
            count=t.number(c.no_answer)
        )
    )
    return " · ".join(parts)


async def summary_text(session: AsyncSession, t: Translator, meeting: Meeting) -> str:
    council = await session.get_one(Council, meeting.council_id)
    found = await counts(session, meeting.id)
    return "\n".join(
        [
            t._("Answers are closed for “{title}”.").format(title=meeting.title),
            *when_and_where(t, meeting, council.timezone),
            counts_text(t, found),
        ]
    )


async def tell_organiser(
    session: AsyncSession, meeting: Meeting, write: SummaryWriter, key: str | None = None
) -> None:
    if meeting.organiser_chat is None or meeting.organiser_channel is None:
        return
    t = Translator(meeting.organiser_locale)
    await outbox.enqueue_one(
        session,
        channel=meeting.organiser_channel,
        chat_id=meeting.organiser_chat,
        payload={"text": await write(session, t, meeting)},
        priority=Priority.REPORT,
        council_id=meeting.council_id,
        key=key,
    )


async def set_attended(
    session: AsyncSession,
    meeting: Meeting,
    person_id: int,
    attended: bool,
    now: datetime | None = None,
) -> bool:
    """Attendance, marked by the organiser once the meeting has started."""
    if (now or utcnow()) < meeting.starts_at:
        return False
    invite = await invite_of(session, meeting.id, person_id)
    if invite is None:
        return False
    invite.attended = attended
    await session.flush()
    return True


async def upcoming_and_recent(
    session: AsyncSession, council_ids: Sequence[int], now: datetime, days_back: int = 14
) -> list[Meeting]:
    """The meetings an organiser follows: those to come and those of the last two weeks."""
    if not council_ids:
        return []
    found = await session.scalars(
        select(Meeting)
        .where(
            Meeting.council_id.in_(list(council_ids)),
            Meeting.ends_at >= now - timedelta(days=days_back),
        )
        .order_by(Meeting.starts_at)
        .limit(20)
    )
    return list(found)


async def invite_newcomer(session: AsyncSession, person: Person, council: Council) -> list[Reply]:
    """Someone joined the council: the meetings to come that invited every member invite
    them too, answerable like the others."""
    now = utcnow()
    upcoming = await session.scalars(
        select(Meeting)
        .where(
            Meeting.council_id == council.id,
            Meeting.audience == Audience.ALL.value,
            Meeting.status == MeetingStatus.SCHEDULED,
            Meeting.starts_at > now,
            or_(Meeting.rsvp_deadline.is_(None), Meeting.rsvp_deadline > now),
        )
        .order_by(Meeting.starts_at)
    )
    t = Translator(person.locale)
    replies = []
    for meeting in list(upcoming):
        if await invite_of(session, meeting.id, person.id) is not None:
            continue
        session.add(MeetingInvite(meeting_id=meeting.id, person_id=person.id, rsvp=Rsvp.INVITED))
        replies.append(invitation(council, meeting)(t))
    await session.flush()
    return replies

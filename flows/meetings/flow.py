"""/meeting and /meetings for organisers; the invitation's buttons for residents.

Writing a meeting: title, description, place (and, if they like, its spot on the map), day,
hour, length, capacity, who is invited, RSVP deadline, reminders; preview; send.
Following it: /meetings shows each meeting with its answers, and buttons to see who comes,
move it, change its place, cancel it, and mark attendance once it has started.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from flows import changes
from flows.broadcasts import service as broadcasts
from flows.broadcasts.preview import cost_line
from flows.changes import Part
from flows.engine import (
    END,
    Action,
    Choice,
    Command,
    Context,
    Export,
    Flow,
    Next,
    Option,
    Prompt,
    Reply,
    Step,
    StepChoice,
    StepName,
    StepText,
)
from flows.i18n import N_
from flows.meetings import dashboard, data, digest, export, service
from flows.meetings.buttons import MeetingButton, MeetingOp, RsvpButton
from flows.meetings.drafts import MeetingDraft, RsvpDraft
from flows.meetings.jobs import MEETING_REMINDERS
from flows.meetings.service import Answered, Audience, Extra, Rsvp
from flows.staff import (
    ORGANISING,
    coordinated,
    council_in_use,
    council_options,
    councils_coordinated,
    start_in_council,
)
from flows.talents import picker
from storage.models import Call, Council, Meeting, MeetingStatus, utcnow


class MeetingStep(StepName):
    """/meeting's questions, a resident's answer to an invitation, /meetings' changes."""

    ATTENDANCE = "meetings.attendance"
    AUDIENCE = "meetings.audience"
    CALL = "meetings.call"
    CAPACITY = "meetings.capacity"
    CHANGE = "meetings.change"
    CONFIRM_CANCEL = "meetings.confirm_cancel"
    COUNCIL = "meetings.council"
    DAY = "meetings.day"
    DEADLINE = "meetings.deadline"
    DESCRIPTION = "meetings.description"
    DURATION = "meetings.duration"
    EDIT_DAY = "meetings.edit_day"
    EDIT_PLACE = "meetings.edit_place"
    EDIT_TIME = "meetings.edit_time"
    GUESTS = "meetings.guests"
    LOCATION = "meetings.location"
    NEEDS = "meetings.needs"
    NOTE = "meetings.note"
    PLACE = "meetings.place"
    PREVIEW = "meetings.preview"
    REMINDERS = "meetings.reminders"
    SKILL_CATEGORY = "meetings.skill_category"
    SKILLS = "meetings.skills"
    TIME = "meetings.time"
    TITLE = "meetings.title"


DAYS_SHOWN = 28
FIRST_HOUR, LAST_HOUR = 8, 21
DURATIONS = {"60": N_("1 hour"), "90": N_("1 h 30"), "120": N_("2 hours"), "180": N_("3 hours")}
DURATIONS |= {"240": N_("4 hours"), "480": N_("The whole day")}
CAPACITIES = (10, 20, 30, 50, 100)
DEADLINES = {
    "0": N_("No deadline"),
    "1": N_("The day before"),
    "2": N_("Two days before"),
    "7": N_("A week before"),
}
REMINDER_CHOICES = {
    48: N_("2 days before"),
    24: N_("The day before"),
    2: N_("2 hours before"),
    1: N_("1 hour before"),
}
AUDIENCES = {
    Audience.ALL: N_("Every member"),
    Audience.SKILLS: N_("Directory members with some skills"),
    Audience.CALL: N_("Those who offered help on a call"),
}
ROSTER_PAGE = 8
NOT_STAFF = N_("This command is for council coordinators and organisers.")
BROKEN_BUTTON = N_("Sorry, this button does not work.")


def cancel_option(ctx: Context) -> list[Option]:
    return [Option("cancel", ctx._("Cancel"))]


# --- writing the meeting -------------------------------------------------------------------


async def new_meeting(ctx: Context) -> Next:
    ctx.drop(MeetingDraft)
    return await start_in_council(
        ctx, MeetingDraft, MeetingStep.TITLE, MeetingStep.COUNCIL, ORGANISING
    )


async def council(ctx: Context) -> Council | None:
    """The council of the meeting being written, if the sender still organises there."""
    return await council_in_use(ctx, MeetingDraft, ORGANISING)


async def ask_council(ctx: Context) -> Prompt:
    return Prompt(
        ctx._("Which council is this meeting for?"), await council_options(ctx, ORGANISING)
    )


async def handle_council(ctx: Context, value: str) -> Next:
    ctx.draft(MeetingDraft).council_id = int(value)
    return MeetingStep.TITLE


async def cancel(ctx: Context, _value: str) -> Next:
    ctx.drop(MeetingDraft)
    ctx.say(ctx._("Cancelled: nothing was sent."))
    return END


async def ask_title(ctx: Context) -> Prompt:
    return Prompt(ctx._("A new meeting: what is its title?"), [cancel_option(ctx)])


async def handle_title(ctx: Context, text: str) -> Next:
    ctx.draft(MeetingDraft).title = text
    return MeetingStep.DESCRIPTION


async def ask_description(ctx: Context) -> Prompt:
    return Prompt(
        ctx._("What is it about? A few lines residents will read (or skip)."),
        [[Option("skip", ctx._("Skip"))], cancel_option(ctx)],
    )


async def handle_description_text(ctx: Context, text: str) -> Next:
    ctx.draft(MeetingDraft).text = text
    return MeetingStep.PLACE


async def handle_description_choice(ctx: Context, value: str) -> Next:
    if value == "cancel":
        return await cancel(ctx, value)
    ctx.draft(MeetingDraft).text = ""
    return MeetingStep.PLACE


async def ask_place(ctx: Context) -> Prompt:
    return Prompt(ctx._("Where? Write the address."), [cancel_option(ctx)])


async def handle_place(ctx: Context, text: str) -> Next:
    ctx.draft(MeetingDraft).place = text
    return MeetingStep.LOCATION


async def ask_location(ctx: Context) -> Prompt:
    return Prompt(
        ctx._("To show it on a map, share its location. Or skip."),
        [[Option("skip", ctx._("Skip"))]],
        asks_location=True,
    )


async def handle_location(ctx: Context, latitude: float, longitude: float) -> Next:
    draft = ctx.draft(MeetingDraft)
    draft.latitude, draft.longitude = latitude, longitude
    return MeetingStep.DAY


async def skip_location(ctx: Context, _value: str) -> Next:
    draft = ctx.draft(MeetingDraft)
    draft.latitude = draft.longitude = None
    return MeetingStep.DAY


def today(ctx: Context, found: Council | None) -> date:
    zone = ZoneInfo(found.timezone if found else "Europe/Paris")
    return utcnow().astimezone(zone).date()


def day_rows(ctx: Context, first: date) -> list[list[Option]]:
    """Four weeks of days, four to a row (readable on a small screen)."""
    days = [first + timedelta(days=n) for n in range(DAYS_SHOWN)]
    return [
        [Option(d.isoformat(), ctx.t.day_label(d)) for d in days[row : row + 4]]
        for row in range(0, DAYS_SHOWN, 4)
    ]


def parse_day(text: str, first: date) -> date | None:
    """ "5/12", "05/12/2026", "2026-12-05": a day from today on."""
    text = text.strip()
    iso = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", text)
    numbers = re.fullmatch(r"(\d{1,2})[/.\-](\d{1,2})(?:[/.\-](\d{2,4}))?", text)
    try:
        if iso:
            found = date(int(iso[1]), int(iso[2]), int(iso[3]))
        elif numbers:
            year = int(numbers[3]) if numbers[3] else first.year
            year += 2000 if year < 100 else 0
            found = date(year, int(numbers[2]), int(numbers[1]))
            if not numbers[3] and found < first:
                found = found.replace(year=found.year + 1)
        else:
            return None
    except ValueError:
        return None
    return found if first <= found <= first + timedelta(days=366) else None


def parse_time(text: str) -> time | None:
    """ "14:30", "14h30", "14h", "9"."""
    found = re.fullmatch(r"(\d{1,2})(?:\s*[:hH.]\s*(\d{2})?)?", text.strip())
    if not found:
        return None
    hour, minute = int(found[1]), int(found[2] or 0)
    return time(hour, minute) if hour < 24 and minute < 60 else None


def time_rows(ctx: Context) -> list[list[Option]]:
    moments = [time(h, m) for h in range(FIRST_HOUR, LAST_HOUR + 1) for m in (0, 30)]
    options = [Option(m.strftime("%H:%M"), ctx.t.time_label(m)) for m in moments]
    return [options[i : i + 4] for i in range(0, len(options), 4)]


async def ask_day(ctx: Context) -> Prompt:
    return Prompt(
        ctx._("Which day? Tap it, or write the date (for example 5/12)."),
        day_rows(ctx, today(ctx, await council(ctx))),
    )


def day_handlers(this: StepName, then: StepName) -> tuple[StepChoice, StepText]:
    """A day tapped or typed ("5/12"), remembered; then the step `then`."""

    async def on_choice(ctx: Context, value: str) -> Next:
        if value == "cancel":
            return await cancel_edit(ctx, value)
        ctx.draft(MeetingDraft).day = date.fromisoformat(value)  # one of the days offered
        return then

    async def on_text(ctx: Context, text: str) -> Next:
        found = parse_day(text, today(ctx, await council(ctx)))
        if found is None:
            ctx.say(ctx._("I could not read that date. Tap a day, or write it like 5/12."))
            return this
        ctx.draft(MeetingDraft).day = found
        return then

    return on_choice, on_text


def time_handlers(
    this: StepName, chosen: Callable[[Context, str], Awaitable[Next]]
) -> tuple[StepChoice, StepText]:
    """An hour tapped or typed ("14h30"), handed to `chosen` as "HH:MM"."""

    async def on_choice(ctx: Context, value: str) -> Next:
        return await chosen(ctx, value)

    async def on_text(ctx: Context, text: str) -> Next:
        found = parse_time(text)
        if found is None:
            ctx.say(ctx._("I could not read that time. Tap one, or write it like 14:30."))
            return this
        return await chosen(ctx, found.strftime("%H:%M"))

    return on_choice, on_text


async def ask_time(ctx: Context) -> Prompt:
    return Prompt(
        ctx._("At what time does it start? Tap it, or write it (for example 14:30)."),
        time_rows(ctx),
    )


async def chosen_time(ctx: Context, value: str) -> Next:
    found = await council(ctx)
    draft = ctx.draft(MeetingDraft)
    hour = parse_time(value)
    start = local_start(found, draft.day, hour)
    if start is None or start <= utcnow():
        ctx.say(ctx._("That moment has passed. Please choose another day or time."))
        return MeetingStep.DAY
    draft.start = hour
    if draft.deadline_days and start - timedelta(days=draft.deadline_days) <= utcnow():
        # Moved from the preview closer than its deadline allows: the deadline is asked again.
        draft.deadline_days = 0
        return MeetingStep.DEADLINE
    return MeetingStep.DURATION


def local_start(found: Council | None, day: date | None, hour: time | None) -> datetime | None:
    """The start in UTC, from a day and an hour in the council's time zone."""
    if day is None or hour is None:
        return None
    moment = datetime.combine(day, hour)
    zone = ZoneInfo(found.timezone if found else "Europe/Paris")
    return moment.replace(tzinfo=zone).astimezone(ZoneInfo("UTC"))


async def ask_duration(ctx: Context) -> Prompt:
    options = [Option(key, ctx._(label)) for key, label in DURATIONS.items()]
    return Prompt(ctx._("How long does it last?"), [options[:3], options[3:]])


async def handle_duration(ctx: Context, value: str) -> Next:
    ctx.draft(MeetingDraft).minutes = int(value)
    return MeetingStep.CAPACITY


async def ask_capacity(ctx: Context) -> Prompt:
    return Prompt(
        ctx._("How many places? Tap a number or write one."),
        [
            [Option("0", ctx._("No limit"))],
            [Option(str(n), ctx.t.number(n)) for n in CAPACITIES],
        ],
    )


async def handle_capacity_choice(ctx: Context, value: str) -> Next:
    ctx.draft(MeetingDraft).capacity = int(value)
    return MeetingStep.AUDIENCE


async def handle_capacity_text(ctx: Context, text: str) -> Next:
    if not text.isdigit() or not 0 < int(text) <= 100_000:
        ctx.say(ctx._("Please write a number of places, like 25."))
        return MeetingStep.CAPACITY
    ctx.draft(MeetingDraft).capacity = int(text)
    return MeetingStep.AUDIENCE


async def ask_audience(ctx: Context) -> Prompt:
    return Prompt(
        ctx._("Who is invited?"),
        [[Option(key.value, ctx._(label))] for key, label in AUDIENCES.items()],
    )


async def handle_audience(ctx: Context, value: str) -> Next:
    ctx.draft(MeetingDraft).audience = Audience(value)
    if value == Audience.SKILLS:
        return MeetingStep.SKILLS
    if value == Audience.CALL:
        return MeetingStep.CALL
    return MeetingStep.DEADLINE


async def skills_done(ctx: Context) -> Next:
    draft = ctx.draft(MeetingDraft)
    if not draft.skills:
        draft.audience = Audience.ALL  # none ticked: everyone
    return MeetingStep.DEADLINE


async def ask_call(ctx: Context) -> Prompt:
    recent = await ctx.session.scalars(
        select(Call)
        .where(Call.council_id == ctx.draft(MeetingDraft).council_id)
        .order_by(Call.created_at.desc())
        .limit(8)
    )
    rows = [[Option(str(call.id), call.title[:40])] for call in recent]
    if not rows:
        return Prompt(
            ctx._("There is no call for talents yet. Invite every member instead?"),
            [[Option("all", ctx._("Every member"))], cancel_option(ctx)],
        )
    return Prompt(ctx._("Which call? Those who offered help on it are invited."), rows)


async def handle_call(ctx: Context, value: str) -> Next:
    if value == "cancel":
        return await cancel(ctx, value)
    if value == "all":
        ctx.draft(MeetingDraft).audience = Audience.ALL
    else:
        ctx.draft(MeetingDraft).call_id = int(value)
    return MeetingStep.DEADLINE


def start_of_draft(ctx: Context, found: Council | None) -> datetime | None:
    draft = ctx.draft(MeetingDraft)
    return local_start(found, draft.day, draft.start)


async def ask_deadline(ctx: Context) -> Prompt:
    start = start_of_draft(ctx, await council(ctx))
    now = utcnow()
    options = [
        Option(key, ctx._(label))
        for key, label in DEADLINES.items()
        if key == "0" or (start is not None and start - timedelta(days=int(key)) > now)
    ]
    return Prompt(ctx._("Until when can residents answer?"), [[o] for o in options])


async def handle_deadline(ctx: Context, value: str) -> Next:
    ctx.draft(MeetingDraft).deadline_days = int(value)
    return MeetingStep.REMINDERS


async def ask_reminders(ctx: Context) -> Prompt:
    draft = ctx.draft(MeetingDraft)
    chosen = set(draft.reminders)
    rows = [
        [Option(str(hours), (picker.TICK if hours in chosen else "") + ctx._(label))]
        for hours, label in REMINDER_CHOICES.items()
    ]
    note = draft.note
    rows.append([Option("note", ctx._("Add a personal line"))])
    rows.append([Option(picker.DONE, picker.TICK + ctx._("Done"))])
    text = ctx._("Reminders go to those coming or maybe. Tick when (none: no reminders).")
    if note:
        text += "\n\n" + ctx._("Your line: {note}").format(note=note)
    return Prompt(text, rows)


async def handle_reminders(ctx: Context, value: str) -> Next:
    if value == picker.DONE:
        return MeetingStep.PREVIEW
    if value == "note":
        return MeetingStep.NOTE
    draft = ctx.draft(MeetingDraft)
    draft.reminders = sorted(set(draft.reminders) ^ {int(value)}, reverse=True)
    return MeetingStep.REMINDERS


async def ask_note(ctx: Context) -> Prompt:
    return Prompt(
        ctx._("Write the line to add to the reminders (for example: bring a dish to share)."),
        [[Option("skip", ctx._("No line"))]],
    )


async def handle_note_text(ctx: Context, text: str) -> Next:
    ctx.draft(MeetingDraft).note = text
    return MeetingStep.REMINDERS


async def handle_note_skip(ctx: Context, _value: str) -> Next:
    ctx.draft(MeetingDraft).note = ""
    return MeetingStep.REMINDERS


def meeting_written(ctx: Context, found: Council | None) -> service.NewMeeting | None:
    """The meeting as written so far (None until its start is known)."""
    start = start_of_draft(ctx, found)
    if start is None:
        return None
    draft = ctx.draft(MeetingDraft)
    return service.NewMeeting(
        title=draft.title,
        description=draft.text,
        place=draft.place,
        starts_at=start,
        ends_at=start + timedelta(minutes=draft.minutes),
        capacity=draft.capacity or None,
        rsvp_deadline=start - timedelta(days=draft.deadline_days) if draft.deadline_days else None,
        audience=draft.audience,
        skill_ids=list(draft.skills),
        call_id=draft.call_id or None,
        reminder_hours=list(draft.reminders),
        reminder_note=draft.note or None,
        latitude=draft.latitude,
        longitude=draft.longitude,
    )


async def ask_preview(ctx: Context) -> Prompt:
    """The invitation as residents will read it, and how many it reaches."""
    found = await council(ctx)
    new = meeting_written(ctx, found)
    if found is None or new is None:
        return Prompt(ctx._(NOT_STAFF))
    reach = await service.reach(ctx.session, found, new)
    if reach == 0:
        return Prompt(
            ctx._("Nobody would receive this invitation. Change who is invited, or cancel."),
            [
                [Option("audience", ctx._("Change who is invited")), changes.option(ctx)],
                cancel_option(ctx),
            ],
        )
    preview = Meeting(
        id=0,
        uid="preview",
        title=new.title,
        description=new.description,
        place=new.place,
        starts_at=new.starts_at,
        ends_at=new.ends_at,
        capacity=new.capacity,
        rsvp_deadline=new.rsvp_deadline,
        reminder_note=new.reminder_note,
        sequence=0,
        status=MeetingStatus.SCHEDULED,
    )
    shown = service.invitation(found, preview)(ctx.t).text
    head = ctx.ngettext(
        "Preview: this invitation will go to {count} resident.",
        "Preview: this invitation will go to {count} residents.",
        reach,
    ).format(count=ctx.t.number(reach))
    reminders = [
        ctx._(label) for hours, label in REMINDER_CHOICES.items() if hours in new.reminder_hours
    ]
    tail = ctx._("Reminders: {when}").format(
        when=", ".join(reminders) if reminders else ctx._("none")
    )
    cost = await cost_line(ctx, service.audience(found, new))
    if cost is not None:
        head += "\n" + cost
    return Prompt(
        f"{head}\n\n{shown}\n\n{tail}",
        [[Option("send", ctx._("Send")), changes.option(ctx)], cancel_option(ctx)],
    )


async def handle_preview(ctx: Context, value: str) -> Next:
    if value == "cancel":
        return await cancel(ctx, value)
    if value == changes.CHANGE:
        return MeetingStep.CHANGE
    if value == "audience":
        return await changes.start(ctx, AUDIENCE, MeetingStep.PREVIEW)
    found = await council(ctx)
    new = meeting_written(ctx, found)
    if found is None or new is None:
        ctx.drop(MeetingDraft)
        ctx.say(ctx._(NOT_STAFF))
        return END
    if new.starts_at <= utcnow():
        ctx.say(ctx._("That moment has passed. Please choose another day or time."))
        return MeetingStep.DAY
    report_to = broadcasts.ReportTo(ctx.inbound.channel, ctx.inbound.chat_id, ctx.t.locale)
    outcome, _meeting = await service.send(ctx.session, found, new, ctx.person, report_to)
    ctx.drop(MeetingDraft)
    if outcome is service.Sent.NOBODY:
        ctx.say(ctx._("Nobody would receive this invitation. Change who is invited, or cancel."))
    else:
        ctx.say(ctx._("Invitations on their way. Follow the answers with /meetings."))
    return END


AUDIENCE = Part(
    "audience",
    N_("Who is invited"),
    (MeetingStep.AUDIENCE, MeetingStep.SKILLS, MeetingStep.SKILL_CATEGORY, MeetingStep.CALL),
)
PARTS = (
    Part(
        "title",
        N_("The title"),
        (MeetingStep.TITLE,),
        now=lambda ctx: ctx.draft(MeetingDraft).title,
    ),
    Part(
        "description",
        N_("The description"),
        (MeetingStep.DESCRIPTION,),
        now=lambda ctx: ctx.draft(MeetingDraft).text,
    ),
    Part(
        "place",
        N_("The place"),
        (MeetingStep.PLACE, MeetingStep.LOCATION),
        now=lambda ctx: ctx.draft(MeetingDraft).place,
    ),
    # A start the deadline no longer fits asks the deadline again.
    Part("time", N_("The day and time"), (MeetingStep.DAY, MeetingStep.TIME, MeetingStep.DEADLINE)),
    Part("length", N_("How long it lasts"), (MeetingStep.DURATION,)),
    Part("places", N_("The number of places"), (MeetingStep.CAPACITY,)),
    AUDIENCE,
    Part("deadline", N_("Until when residents answer"), (MeetingStep.DEADLINE,)),
    Part("reminders", N_("The reminders"), (MeetingStep.REMINDERS, MeetingStep.NOTE)),
)


# --- residents answering -------------------------------------------------------------------


async def answer(ctx: Context, button: RsvpButton) -> None:
    """A resident taps coming / maybe / not coming (the ids are checked, not trusted)."""
    assert ctx.person is not None
    choice = button.answer.rsvp
    result = await service.respond(ctx.session, button.meeting_id, ctx.person, choice)
    meeting = result.meeting
    if result.outcome is Answered.NOT_ALLOWED or meeting is None:
        ctx.toast = ctx._(BROKEN_BUTTON)
        return
    if result.outcome is Answered.CANCELLED:
        ctx.say(ctx._("This meeting was cancelled."))
        return
    if result.outcome is Answered.CLOSED:
        ctx.say(ctx._("Answers are closed for this meeting."))
        return
    ctx.toast = ctx._("Answer recorded.")
    if result.outcome is Answered.WAITING:
        ctx.say(
            ctx._(
                "The meeting is full: you are number {position} on the waiting list. "
                "I will tell you as soon as a place is free."
            ).format(position=ctx.t.number(result.position))
        )
        return
    council_ = await ctx.session.get_one(Council, meeting.council_id)
    if choice is Rsvp.DECLINED:
        ctx.say(ctx._("Noted. Thank you for telling us!"))
        return
    if choice is Rsvp.MAYBE:
        until = meeting.rsvp_deadline or meeting.starts_at
        ctx.say(
            ctx._("Noted: maybe. You can change your answer until {date}.").format(
                date=ctx.t.moment(until, council_.timezone)
            )
        )
        return
    ctx.drop(RsvpDraft)
    ctx.draft(RsvpDraft).meeting_id = meeting.id
    await ctx.engine.go(ctx, MeetingStep.GUESTS)


async def answered_meeting(ctx: Context) -> Meeting | None:
    return await ctx.session.get(Meeting, ctx.draft(RsvpDraft).meeting_id)


async def ask_guests(ctx: Context) -> Prompt:
    meeting = await answered_meeting(ctx)
    free = await service.free_seats(ctx.session, meeting) if meeting else 0
    most = service.MAX_GUESTS if free is None else min(service.MAX_GUESTS, free)
    options = [Option("0", ctx._("Just me"))]
    options += [Option(str(n), "+" + ctx.t.number(n)) for n in range(1, most + 1)]
    return Prompt(ctx._("See you there! Is anyone coming with you?"), [options])


async def handle_guests(ctx: Context, value: str) -> Next:
    assert ctx.person is not None
    outcome = await service.set_guests(
        ctx.session, ctx.draft(RsvpDraft).meeting_id, ctx.person, int(value)
    )
    if outcome is Extra.FULL:
        ctx.say(ctx._("Sorry, there are not enough places left for them."))
        return MeetingStep.GUESTS
    if outcome is Extra.NOT_COMING:
        ctx.drop(RsvpDraft)
        return END
    ctx.draft(RsvpDraft).needs = []
    return MeetingStep.NEEDS


async def ask_needs(ctx: Context) -> Prompt:
    chosen = set(ctx.draft(RsvpDraft).needs)
    rows = [
        [Option(key, (picker.TICK if key in chosen else "") + ctx._(label))]
        for key, label in service.NEEDS.items()
    ]
    rows.append([Option(picker.DONE, ctx._("Nothing else") if not chosen else ctx._("Done"))])
    return Prompt(ctx._("Do you need anything to take part? Tick what helps."), rows)


async def handle_needs(ctx: Context, value: str) -> Next:
    assert ctx.person is not None
    draft = ctx.draft(RsvpDraft)
    if value != picker.DONE:
        draft.needs = sorted(set(draft.needs) ^ {value})
        await service.set_needs(ctx.session, draft.meeting_id, ctx.person, draft.needs)
        return MeetingStep.NEEDS
    meeting = await answered_meeting(ctx)
    ctx.drop(RsvpDraft)
    if meeting is not None:
        found = await ctx.session.get_one(Council, meeting.council_id)
        lines = [
            ctx._("All set. See you on:"),
            *service.when_and_where(ctx.t, meeting, found.timezone),
        ]
        ctx.say("\n".join(lines))
    return END


# --- organisers following their meetings ---------------------------------------------------


async def list_meetings(ctx: Context) -> Next:
    allowed = await councils_coordinated(
        ctx.session, ctx.inbound.channel, ctx.inbound.sender_id, ctx.is_admin, ORGANISING
    )
    now = utcnow()
    found = await service.upcoming_and_recent(ctx.session, [c.id for c in allowed], now)
    if not found:
        ctx.say(ctx._("No meetings yet. Create one with /meeting."))
        return END
    by_id = {c.id: c for c in allowed}
    for meeting in found:
        ctx.replies.append(await meeting_card(ctx, meeting, by_id[meeting.council_id], now))
    return END


async def meeting_card(ctx: Context, meeting: Meeting, found: Council, now: datetime) -> Reply:
    counts = await service.counts(ctx.session, meeting.id)
    lines = [meeting.title, *service.when_and_where(ctx.t, meeting, found.timezone)]
    if meeting.status == MeetingStatus.CANCELLED:
        lines.append("❌ " + ctx._("Cancelled"))
    if meeting.capacity:
        lines.append(
            ctx._("{taken} of {capacity} places taken").format(
                taken=ctx.t.number(await service.seats_taken(ctx.session, meeting.id)),
                capacity=ctx.t.number(meeting.capacity),
            )
        )
    lines.append(service.counts_text(ctx.t, counts))
    if now >= meeting.starts_at and counts.attended:
        lines.append(
            ctx.ngettext("{count} came", "{count} came", counts.attended).format(
                count=ctx.t.number(counts.attended)
            )
        )

    def button(label: str, op: MeetingOp) -> Choice:
        return Choice(label, MeetingButton(meeting.id, op).pack())

    rows: list[tuple[Choice, ...]] = [(button("👥 " + ctx._("Who answered"), MeetingOp.WHO),)]
    if meeting.status == MeetingStatus.SCHEDULED and now < meeting.starts_at:
        rows.append(
            (
                button("🕑 " + ctx._("Change the time"), MeetingOp.TIME),
                button("📍 " + ctx._("Change the place"), MeetingOp.PLACE),
            )
        )
        rows.append((button("🚫 " + ctx._("Cancel the meeting"), MeetingOp.CANCEL),))
    elif meeting.status == MeetingStatus.SCHEDULED:
        rows.append((button("✔️ " + ctx._("Mark attendance"), MeetingOp.ATTEND),))
    return Reply("\n".join(lines), tuple(rows))


async def organiser_action(ctx: Context, button: MeetingButton) -> None:
    """A button on a meeting's card: checked against the sender's roles in its council."""
    meeting = await ctx.session.get(Meeting, button.meeting_id)
    if meeting is None or await organised(ctx, meeting) is None:
        ctx.toast = ctx._(BROKEN_BUTTON)
        return
    op = button.op
    ctx.drop(MeetingDraft)
    draft = ctx.draft(MeetingDraft)
    draft.edit_id, draft.council_id = meeting.id, meeting.council_id
    now = utcnow()
    if op is MeetingOp.WHO:
        ctx.say(await roster_text(ctx, meeting))
        return
    open_ = meeting.status == MeetingStatus.SCHEDULED and now < meeting.starts_at
    if op in (MeetingOp.TIME, MeetingOp.PLACE, MeetingOp.CANCEL) and not open_:
        ctx.say(ctx._("This meeting can no longer be changed."))
        return
    if op is MeetingOp.ATTEND and now < meeting.starts_at:
        ctx.say(ctx._("Attendance can be marked once the meeting has started."))
        return
    steps = {
        MeetingOp.TIME: MeetingStep.EDIT_DAY,
        MeetingOp.PLACE: MeetingStep.EDIT_PLACE,
        MeetingOp.CANCEL: MeetingStep.CONFIRM_CANCEL,
        MeetingOp.ATTEND: MeetingStep.ATTENDANCE,
    }
    await ctx.engine.go(ctx, steps[op])


async def organised(ctx: Context, meeting: Meeting) -> Council | None:
    return await coordinated(
        ctx.session,
        ctx.inbound.channel,
        ctx.inbound.sender_id,
        ctx.is_admin,
        meeting.council_id,
        ORGANISING,
    )


async def roster_text(ctx: Context, meeting: Meeting) -> str:
    guests = await service.roster(ctx.session, meeting.id)
    lines = [meeting.title]
    for rsvp, label in (
        (Rsvp.COMING, N_("Coming")),
        (Rsvp.MAYBE, N_("Maybe")),
        (Rsvp.WAITING, N_("Waiting list")),
        (Rsvp.DECLINED, N_("Not coming")),
    ):
        people = [g for g in guests if g.rsvp is rsvp]
        if not people:
            continue
        lines += ["", f"{ctx._(label)} ({ctx.t.number(len(people))})"]
        for guest in people:
            line = "• " + guest.first_name
            if guest.guests:
                line += f" +{ctx.t.number(guest.guests)}"
            if guest.needs:
                line += " — " + ", ".join(ctx._(service.NEEDS[n]) for n in guest.needs)
            if guest.attended:
                line += " ✔️"
            lines.append(line)
    if len(lines) == 1:
        lines.append(ctx._("Nobody has answered yet."))
    return "\n".join(lines)


async def edited(ctx: Context) -> Meeting | None:
    """The meeting being changed, if the sender still organises in its council."""
    meeting = await ctx.session.get(Meeting, ctx.draft(MeetingDraft).edit_id)
    if meeting is None or await organised(ctx, meeting) is None:
        return None
    return meeting


async def ask_edit_day(ctx: Context) -> Prompt:
    return Prompt(
        ctx._("The new day? Tap it, or write the date (for example 5/12)."),
        [*day_rows(ctx, today(ctx, await council(ctx))), cancel_option(ctx)],
    )


async def ask_edit_time(ctx: Context) -> Prompt:
    return Prompt(
        ctx._("The new starting time? Tap it, or write it (for example 14:30)."),
        time_rows(ctx),
    )


async def moved(ctx: Context, value: str) -> Next:
    meeting = await edited(ctx)
    if meeting is None:
        return await not_staff(ctx)
    found = await ctx.session.get_one(Council, meeting.council_id)
    start = local_start(found, ctx.draft(MeetingDraft).day, parse_time(value))
    if start is None or start <= utcnow():
        ctx.say(ctx._("That moment has passed. Please choose another day or time."))
        return MeetingStep.EDIT_DAY
    changed = await service.change(ctx.session, meeting, starts_at=start)
    ctx.drop(MeetingDraft)
    if changed:
        ctx.say(ctx._("Moved. Everyone invited who did not decline is told, and reminders follow."))
    else:
        ctx.say(ctx._("That is the same time: nothing changed."))
    return END


async def ask_edit_place(ctx: Context) -> Prompt:
    return Prompt(ctx._("The new place? Write the address."), [cancel_option(ctx)])


async def handle_edit_place(ctx: Context, text: str) -> Next:
    meeting = await edited(ctx)
    if meeting is None:
        return await not_staff(ctx)
    changed = await service.change(ctx.session, meeting, place=text)
    ctx.drop(MeetingDraft)
    if changed:
        ctx.say(ctx._("Changed. Everyone invited who did not decline is told."))
    else:
        ctx.say(ctx._("That is the same place: nothing changed."))
    return END


async def cancel_edit(ctx: Context, _value: str) -> Next:
    ctx.drop(MeetingDraft)
    ctx.say(ctx._("Alright, nothing changed."))
    return END


async def ask_confirm_cancel(ctx: Context) -> Prompt:
    meeting = await edited(ctx)
    title = meeting.title if meeting else ""
    return Prompt(
        ctx._("Cancel “{title}”? Everyone invited who did not decline will be told.").format(
            title=title
        ),
        [[Option("yes", ctx._("Yes, cancel it")), Option("no", ctx._("No, it goes ahead"))]],
    )


async def handle_confirm_cancel(ctx: Context, value: str) -> Next:
    if value != "yes":
        return await cancel_edit(ctx, value)
    meeting = await edited(ctx)
    if meeting is None:
        return await not_staff(ctx)
    cancelled = await service.cancel(ctx.session, meeting)
    ctx.drop(MeetingDraft)
    if cancelled:
        ctx.say(ctx._("The meeting is cancelled; everyone invited who did not decline is told."))
    else:
        ctx.say(ctx._("This meeting can no longer be changed."))
    return END


async def not_staff(ctx: Context) -> Next:
    ctx.drop(MeetingDraft)
    ctx.say(ctx._(NOT_STAFF))
    return END


async def ask_attendance(ctx: Context) -> Prompt:
    meeting = await edited(ctx)
    if meeting is None:
        return Prompt(ctx._(NOT_STAFF))
    people = [
        g for g in await service.roster(ctx.session, meeting.id) if g.rsvp in service.REMINDED
    ]
    page = ctx.draft(MeetingDraft).page
    shown = people[page * ROSTER_PAGE : (page + 1) * ROSTER_PAGE]
    rows = [
        [Option(str(g.person_id), ("✅ " if g.attended else "◻️ ") + g.first_name)] for g in shown
    ]
    more = []
    if page > 0:
        more.append(Option("prev", ctx.t.pages[0]))
    if (page + 1) * ROSTER_PAGE < len(people):
        more.append(Option("next", ctx.t.pages[1]))
    if more:
        rows.append(more)
    rows.append([Option(picker.DONE, picker.TICK + ctx._("Done"))])
    if not people:
        return Prompt(ctx._("Nobody said they would come."), [[Option(picker.DONE, ctx._("Done"))]])
    return Prompt(
        ctx._("Who came to “{title}”? Tap a name to tick it.").format(title=meeting.title), rows
    )


async def handle_attendance(ctx: Context, value: str) -> Next:
    meeting = await edited(ctx)
    if meeting is None:
        return await not_staff(ctx)
    draft = ctx.draft(MeetingDraft)
    if value == picker.DONE:
        counts = await service.counts(ctx.session, meeting.id)
        ctx.drop(MeetingDraft)
        ctx.say(
            ctx.ngettext("Saved: {count} came.", "Saved: {count} came.", counts.attended).format(
                count=ctx.t.number(counts.attended)
            )
        )
        return END
    if value in ("prev", "next"):
        draft.page = max(draft.page + (1 if value == "next" else -1), 0)
        return MeetingStep.ATTENDANCE
    guest = next(
        (g for g in await service.roster(ctx.session, meeting.id) if str(g.person_id) == value),
        None,
    )
    if guest is not None:
        await service.set_attended(ctx.session, meeting, guest.person_id, not guest.attended)
    return MeetingStep.ATTENDANCE


FLOW = Flow(
    name="meetings",
    drafts=[MeetingDraft, RsvpDraft],
    exports=[
        Export(
            "meetings",
            N_("Meetings and their answers"),
            ORGANISING,
            export.meetings,
            export.rows,
            export.COLUMNS,
        )
    ],
    retention=data.RETENTION,
    personal_data=[data.INVITATIONS, data.ORGANISED],
    digest=[digest.SECTION],
    dashboard=[dashboard.MEETINGS],
    on_join=service.invite_newcomer,
    steps=[
        Step(MeetingStep.COUNCIL, ask_council, on_choice=handle_council),
        Step(
            MeetingStep.TITLE,
            ask_title,
            on_choice=cancel,
            on_text=handle_title,
            max_text_length=120,
        ),
        Step(
            MeetingStep.DESCRIPTION,
            ask_description,
            on_choice=handle_description_choice,
            on_text=handle_description_text,
            max_text_length=1000,
        ),
        Step(
            MeetingStep.PLACE,
            ask_place,
            on_choice=cancel,
            on_text=handle_place,
            max_text_length=300,
        ),
        Step(
            MeetingStep.LOCATION, ask_location, on_choice=skip_location, on_location=handle_location
        ),
        Step(MeetingStep.DAY, ask_day, *day_handlers(MeetingStep.DAY, MeetingStep.TIME)),
        Step(MeetingStep.TIME, ask_time, *time_handlers(MeetingStep.TIME, chosen_time)),
        Step(MeetingStep.DURATION, ask_duration, on_choice=handle_duration),
        Step(
            MeetingStep.CAPACITY,
            ask_capacity,
            on_choice=handle_capacity_choice,
            on_text=handle_capacity_text,
            max_text_length=10,
        ),
        Step(MeetingStep.AUDIENCE, ask_audience, on_choice=handle_audience),
        *picker.skill_steps(
            MeetingStep.SKILLS,
            draft=MeetingDraft,
            category_step=MeetingStep.SKILL_CATEGORY,
            question=N_("Which skills? Members of the directory with one of them are invited."),
            on_done=skills_done,
        ),
        Step(MeetingStep.CALL, ask_call, on_choice=handle_call),
        Step(MeetingStep.DEADLINE, ask_deadline, on_choice=handle_deadline),
        Step(MeetingStep.REMINDERS, ask_reminders, on_choice=handle_reminders, in_place=True),
        Step(
            MeetingStep.NOTE,
            ask_note,
            on_choice=handle_note_skip,
            on_text=handle_note_text,
            max_text_length=300,
        ),
        Step(MeetingStep.PREVIEW, ask_preview, on_choice=handle_preview),
        changes.menu(MeetingStep.CHANGE, MeetingStep.PREVIEW, PARTS),
        Step(MeetingStep.GUESTS, ask_guests, on_choice=handle_guests),
        Step(MeetingStep.NEEDS, ask_needs, on_choice=handle_needs, in_place=True),
        Step(
            MeetingStep.EDIT_DAY,
            ask_edit_day,
            *day_handlers(MeetingStep.EDIT_DAY, MeetingStep.EDIT_TIME),
        ),
        Step(MeetingStep.EDIT_TIME, ask_edit_time, *time_handlers(MeetingStep.EDIT_TIME, moved)),
        Step(
            MeetingStep.EDIT_PLACE,
            ask_edit_place,
            on_choice=cancel_edit,
            on_text=handle_edit_place,
            max_text_length=300,
        ),
        Step(MeetingStep.CONFIRM_CANCEL, ask_confirm_cancel, on_choice=handle_confirm_cancel),
        Step(MeetingStep.ATTENDANCE, ask_attendance, on_choice=handle_attendance, in_place=True),
    ],
    commands=[
        Command(
            "meeting",
            new_meeting,
            N_("invite residents to a meeting"),
            roles=ORGANISING,
        ),
        Command(
            "meetings",
            list_meetings,
            N_("see the answers to your meetings, change or cancel them"),
            roles=ORGANISING,
        ),
    ],
    actions=[
        Action(RsvpButton, answer),
        Action(MeetingButton, organiser_action),
    ],
    jobs=[MEETING_REMINDERS],
)

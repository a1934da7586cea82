"""/announce: choose the council, write the message, preview, send; progress follows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

from babel.dates import format_datetime

from flows import changes
from flows.announcements import service
from flows.broadcasts import service as broadcasts
from flows.broadcasts.preview import cost_line
from flows.broadcasts.quiet import next_allowed
from flows.changes import Part
from flows.engine import END, Command, Context, Flow, Next, Option, Prompt, Step, StepName
from flows.i18n import N_
from flows.staff import StaffDraft, council_options, start_in_council
from storage.models import Role, utcnow
from storage.queries import councils


class AnnouncementStep(StepName):
    """/announce's questions."""

    CHOOSE_COUNCIL = "announcements.choose_council"
    PREVIEW = "announcements.preview"
    WRITE = "announcements.write"


SPREAD = timedelta(hours=1)
SPREAD_FROM = 200  # audiences from this size are offered a slower pace


@dataclass
class AnnouncementDraft(StaffDraft, key="announce"):
    text: str = ""


async def announce(ctx: Context) -> Next:
    """Start an announcement in the coordinator's council (asking which, if several)."""
    return await start_in_council(
        ctx, AnnouncementDraft, AnnouncementStep.WRITE, AnnouncementStep.CHOOSE_COUNCIL
    )


async def ask_council(ctx: Context) -> Prompt:
    """Ask which council the announcement is for."""
    rows = await council_options(ctx)
    return Prompt(ctx._("Which council is this message for?"), [*rows, [_cancel(ctx)]])


async def handle_council(ctx: Context, value: str) -> Next:
    """Remember the council."""
    if value == "cancel":
        return _cancelled(ctx)
    ctx.draft(AnnouncementDraft).council_id = int(value)
    return AnnouncementStep.WRITE


async def ask_text(ctx: Context) -> Prompt:
    """Ask for the message."""
    council = await councils.by_id(ctx.session, ctx.draft(AnnouncementDraft).council_id)
    name = council.name if council else ""
    return Prompt(
        ctx._("Write your message to the residents of {council}, in one message.").format(
            council=name
        ),
        [[_cancel(ctx)]],
    )


async def handle_text(ctx: Context, text: str) -> Next:
    """Keep the text for the preview."""
    if not text:
        return AnnouncementStep.WRITE
    ctx.draft(AnnouncementDraft).text = text
    return AnnouncementStep.PREVIEW


async def handle_write_choice(ctx: Context, value: str) -> Next:
    return _cancelled(ctx)


async def ask_preview(ctx: Context) -> Prompt:
    """Show the message as residents will read it, to how many, and when."""
    draft = ctx.draft(AnnouncementDraft)
    council = await councils.by_id(ctx.session, draft.council_id)
    assert council is not None
    size = await broadcasts.audience_size(ctx.session, broadcasts.members(council))
    text = service.message_for_residents(council, draft.text)(ctx.t).text
    lines = [
        ctx.ngettext(
            "Preview: this message will go to {count} resident.",
            "Preview: this message will go to {count} residents.",
            size,
        ).format(count=ctx.t.number(size)),
        "",
        text,
    ]
    cost = await cost_line(ctx, broadcasts.members(council))
    if cost is not None:
        lines[1:1] = [cost]
    now = utcnow()
    starts = next_allowed(council, now)
    if starts > now:
        lines += [
            "",
            ctx._("It is quiet time: it will go out from {time}.").format(
                time=format_datetime(
                    starts, format="short", tzinfo=ZoneInfo(council.timezone), locale=ctx.t.locale
                )
            ),
        ]
    rows = [[Option("send", ctx._("Send")), changes.option(ctx)]]
    if size >= SPREAD_FROM:
        rows.append([Option("spread", ctx._("Send over the next hour"))])
    rows.append([_cancel(ctx)])
    return Prompt("\n".join(lines), rows)


async def handle_preview(ctx: Context, value: str) -> Next:
    """Send, change the text, or cancel."""
    if value == "cancel":
        return _cancelled(ctx)
    if value == changes.CHANGE:
        return await changes.start(ctx, TEXT, AnnouncementStep.PREVIEW)
    draft = ctx.draft(AnnouncementDraft)
    outcome, _broadcast = await service.send(
        ctx.session,
        council_id=draft.council_id,
        text=draft.text,
        channel=ctx.inbound.channel,
        sender_id=ctx.inbound.sender_id,
        is_admin=ctx.is_admin,
        starter=ctx.person,
        report_to=broadcasts.ReportTo(ctx.inbound.channel, ctx.inbound.chat_id, ctx.t.locale),
        spread=SPREAD if value == "spread" else None,
    )
    ctx.drop(AnnouncementDraft)
    if outcome is service.Sent.NOT_ALLOWED:
        ctx.say(ctx._("This command is for council coordinators and organisers."))
    elif outcome is service.Sent.NOBODY:
        ctx.say(ctx._("Nobody has joined this council yet: nothing was sent."))
    else:
        ctx.say(ctx._("On its way. I will show the progress here."))
    return END


TEXT = Part(
    "text",
    N_("The message"),
    (AnnouncementStep.WRITE,),
    now=lambda ctx: ctx.draft(AnnouncementDraft).text,
)


def _cancel(ctx: Context) -> Option:
    return Option("cancel", ctx._("Cancel"))


def _cancelled(ctx: Context) -> Next:
    ctx.drop(AnnouncementDraft)
    ctx.say(ctx._("Cancelled: nothing was sent."))
    return END


FLOW = Flow(
    name="announcements",
    drafts=[AnnouncementDraft],
    steps=[
        Step(AnnouncementStep.CHOOSE_COUNCIL, ask_council, on_choice=handle_council),
        Step(
            AnnouncementStep.WRITE,
            ask_text,
            on_choice=handle_write_choice,
            on_text=handle_text,
            max_text_length=service.MAX_LENGTH,
        ),
        Step(AnnouncementStep.PREVIEW, ask_preview, on_choice=handle_preview),
    ],
    commands=[
        Command(
            "announce",
            announce,
            N_("send a message to your council's residents"),
            roles=frozenset({Role.COORDINATOR}),
        )
    ],
)

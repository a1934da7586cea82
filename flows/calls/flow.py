"""/call, for coordinators: title, description, skills, times, how many, deadline; preview;
send to the matching residents. Residents answer with the call's own buttons."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from flows import changes
from flows.broadcasts import service as broadcasts
from flows.broadcasts.preview import cost_line
from flows.calls import dashboard, data, digest, service
from flows.calls.buttons import AnswerButton
from flows.calls.drafts import AnswerDraft, CallDraft
from flows.calls.jobs import CLOSE_CALLS
from flows.changes import Part
from flows.engine import (
    END,
    Action,
    Command,
    Context,
    Export,
    Flow,
    Next,
    Option,
    Prompt,
    Step,
    StepName,
)
from flows.i18n import N_, Translator, typed_number
from flows.spreadsheet import Column
from flows.staff import COORDINATING, council_in_use, council_options, start_in_council
from flows.talents import export as talent_export
from flows.talents import picker
from flows.talents.flow import AVAILABILITY
from flows.verification.flow import HOW_TO_COUNT
from storage.models import Answer, Call, Council, Priority, Role, Skill, utcnow
from storage.queries import outbox, talents, verified


class CallStep(StepName):
    """/call's questions, and a resident's message to the coordinator."""

    CHANGE = "calls.change"
    COUNCIL = "calls.council"
    DEADLINE = "calls.deadline"
    DESCRIPTION = "calls.description"
    MESSAGE = "calls.message"
    PEOPLE = "calls.people"
    PREVIEW = "calls.preview"
    SKILL_CATEGORY = "calls.skill_category"
    SKILLS = "calls.skills"
    TITLE = "calls.title"
    WHEN = "calls.when"


DEADLINES = {"3d": (3, N_("In 3 days")), "1w": (7, N_("In a week")), "2w": (14, N_("In two weeks"))}
PEOPLE = (1, 2, 3, 5, 10)
MOST_PEOPLE = 100
ANSWERS = {
    Answer.YES: N_("I can help"),
    Answer.MAYBE: N_("Maybe, tell me more"),
    Answer.NO: N_("Not this time"),
}


# --- writing the call ----------------------------------------------------------------------


async def new_call(ctx: Context) -> Next:
    """Start a call in the coordinator's council, asking which if several."""
    ctx.drop(CallDraft)
    return await start_in_council(ctx, CallDraft, CallStep.TITLE, CallStep.COUNCIL)


async def council(ctx: Context) -> Council | None:
    """The council of the call being written, if the sender still coordinates it."""
    return await council_in_use(ctx, CallDraft)


async def catalogue(ctx: Context) -> Sequence[Skill]:
    return await talents.skills(ctx.session, ctx.draft(CallDraft).council_id)


async def ask_council(ctx: Context) -> Prompt:
    return Prompt(ctx._("Which council is this call for?"), await council_options(ctx))


async def handle_council(ctx: Context, value: str) -> Next:
    ctx.draft(CallDraft).council_id = int(value)
    return CallStep.TITLE


async def ask_title(ctx: Context) -> Prompt:
    return Prompt(
        ctx._("A call for talents: what is the project? Give it a short title."),
        [[Option("cancel", ctx._("Cancel"))]],
    )


async def handle_title(ctx: Context, text: str) -> Next:
    ctx.draft(CallDraft).title = text
    return CallStep.DESCRIPTION


async def ask_description(ctx: Context) -> Prompt:
    return Prompt(
        ctx._("Describe what is needed: what, where, when."), [[Option("cancel", ctx._("Cancel"))]]
    )


async def handle_description(ctx: Context, text: str) -> Next:
    ctx.draft(CallDraft).text = text
    return CallStep.SKILLS


async def cancel(ctx: Context, _value: str) -> Next:
    ctx.drop(CallDraft)
    ctx.say(ctx._("Cancelled: nothing was sent."))
    return END


async def skills_done(_ctx: Context) -> Next:
    return CallStep.WHEN


async def ask_when(ctx: Context) -> Prompt:
    chosen = set(ctx.draft(CallDraft).when)
    rows = [
        [Option(key, (picker.TICK if key in chosen else "") + ctx._(label))]
        for key, label in AVAILABILITY.items()
    ]
    rows.append([Option(picker.DONE, picker.TICK + ctx._("Done"))])
    return Prompt(ctx._("When is help needed? Tick none if any time suits."), rows)


async def handle_when(ctx: Context, value: str) -> Next:
    if value == picker.DONE:
        return CallStep.PEOPLE
    draft = ctx.draft(CallDraft)
    draft.when = sorted(set(draft.when) ^ {value})
    return CallStep.WHEN


async def ask_people(ctx: Context) -> Prompt:
    return Prompt(
        ctx._("How many people are needed?"),
        [[Option(str(n), ctx.t.number(n)) for n in PEOPLE]],
    )


async def handle_people(ctx: Context, value: str) -> Next:
    ctx.draft(CallDraft).people = int(value)
    return CallStep.DEADLINE


async def handle_people_text(ctx: Context, text: str) -> Next:
    """A number typed rather than tapped: any from 1 to MOST_PEOPLE."""
    people = typed_number(text)
    if people is None or not 1 <= people <= MOST_PEOPLE:
        ctx.say(
            ctx._("Please tap a number, or type one from 1 to {most}.").format(
                most=ctx.t.number(MOST_PEOPLE)
            )
        )
        return CallStep.PEOPLE
    return await handle_people(ctx, str(people))


async def ask_deadline(ctx: Context) -> Prompt:
    return Prompt(
        ctx._("Until when can residents answer?"),
        [[Option(key, ctx._(label))] for key, (_days, label) in DEADLINES.items()],
    )


async def handle_deadline(ctx: Context, value: str) -> Next:
    ctx.draft(CallDraft).days = DEADLINES[value][0]
    return CallStep.PREVIEW


def call_written(ctx: Context) -> service.NewCall:
    """The call as written so far."""
    draft = ctx.draft(CallDraft)
    return service.NewCall(
        title=draft.title,
        description=draft.text,
        skill_ids=list(draft.skills),
        when=list(draft.when),
        people_needed=draft.people,
        deadline=utcnow() + timedelta(days=draft.days),
        accepts_unverified=not draft.verified_only,
    )


async def ask_preview(ctx: Context) -> Prompt:
    """Show the call as residents will read it, and how many it reaches."""
    found = await council(ctx)
    if found is None:
        return Prompt(ctx._("This command is for council coordinators and organisers."))
    new = call_written(ctx)
    reach = await service.matches(ctx.session, found, new)
    if reach == 0:
        return Prompt(
            ctx._("Nobody matches this call yet. Change the skills or the times, or cancel."),
            [
                [Option("skills", ctx._("Change the skills")), changes.option(ctx)],
                [Option("cancel", ctx._("Cancel"))],
            ],
        )
    skills = [s for s in await catalogue(ctx) if s.id in new.skill_ids]
    preview = Call(
        id=0,
        title=new.title,
        description=new.description,
        people_needed=new.people_needed,
        needed_when=",".join(new.when),
        deadline=new.deadline,
    )
    shown = service.invitation(found, preview, skills, found.timezone)(ctx.t).text
    head = ctx.ngettext(
        "Preview: this call will go to {count} resident.",
        "Preview: this call will go to {count} residents.",
        reach,
    ).format(count=ctx.t.number(reach))
    cost = await cost_line(ctx, service.audience(found, new.skill_ids, new.when))
    if cost is not None:
        head += "\n" + cost
    if new.accepts_unverified:
        toggle = Option("verified", ctx._("Take verified members only"))
    else:
        toggle = Option("everyone", ctx._("Take everyone's answers"))
    return Prompt(
        f"{head}\n\n{shown}\n\n{who_may_answer(ctx.t, new.accepts_unverified)}",
        [
            [Option("send", ctx._("Send")), changes.option(ctx)],
            [toggle],
            [Option("cancel", ctx._("Cancel"))],
        ],
    )


def who_may_answer(t: Translator, accepts_unverified: bool) -> str:
    """The call's rule on unverified web chat members, as the coordinator reads it."""
    if accepts_unverified:
        return t._("Answers from unverified members: taken, and marked as such.")
    return t._("Answers from unverified members: refused (they are told how to get verified).")


async def handle_preview(ctx: Context, value: str) -> Next:
    if value == "cancel":
        return await cancel(ctx, value)
    if value == changes.CHANGE:
        return CallStep.CHANGE
    if value == "skills":
        return await changes.start(ctx, SKILLS, CallStep.PREVIEW)
    if value in ("verified", "everyone"):
        ctx.draft(CallDraft).verified_only = value == "verified"
        return CallStep.PREVIEW
    found = await council(ctx)
    if found is None:
        ctx.drop(CallDraft)
        ctx.say(ctx._("This command is for council coordinators and organisers."))
        return END
    report_to = broadcasts.ReportTo(ctx.inbound.channel, ctx.inbound.chat_id, ctx.t.locale)
    outcome, _call = await service.send(
        ctx.session, found, call_written(ctx), ctx.person, report_to
    )
    ctx.drop(CallDraft)
    if outcome is service.Sent.NOBODY:
        ctx.say(ctx._("Nobody matches this call yet. Change the skills or the times, or cancel."))
    else:
        ctx.say(ctx._("On its way. I will show the progress here, and each answer as it comes."))
    return END


SKILLS = Part("skills", N_("The skills"), (CallStep.SKILLS, CallStep.SKILL_CATEGORY))
PARTS = (
    Part("title", N_("The title"), (CallStep.TITLE,), now=lambda ctx: ctx.draft(CallDraft).title),
    Part(
        "description",
        N_("The description"),
        (CallStep.DESCRIPTION,),
        now=lambda ctx: ctx.draft(CallDraft).text,
    ),
    SKILLS,
    Part("when", N_("When help is needed"), (CallStep.WHEN,)),
    Part("people", N_("How many people"), (CallStep.PEOPLE,)),
    Part("deadline", N_("Until when residents answer"), (CallStep.DEADLINE,)),
)


# --- residents answering -------------------------------------------------------------------


async def answer(ctx: Context, button: AnswerButton) -> None:
    """A resident taps an answer on a call (the ids are checked, not trusted)."""
    assert ctx.person is not None
    choice = button.answer
    outcome, call = await service.answer(ctx.session, button.call_id, ctx.person, choice)
    if outcome is service.Answered.NOT_ALLOWED or call is None:
        ctx.toast = ctx._("Sorry, this button does not work.")
        return
    if outcome is service.Answered.CLOSED:
        ctx.say(ctx._("This call is closed. Thank you all the same!"))
        return
    if outcome is service.Answered.UNVERIFIED:
        ctx.say(
            ctx._(
                "Thank you for offering! This call takes answers from verified members only "
                "(so that each person counts once)."
            )
            + " "
            + ctx._(HOW_TO_COUNT)
        )
        return
    ctx.toast = ctx._("Answer recorded.")
    await tell_holder(ctx, call, choice, None)
    if choice is Answer.NO:
        ctx.say(ctx._("Thank you for answering. See you for the next one!"))
        return
    ctx.draft(AnswerDraft).call_id = call.id
    await ctx.engine.go(ctx, CallStep.MESSAGE)


async def ask_message(ctx: Context) -> Prompt:
    return Prompt(
        ctx._("Thank you! Add a short message for the coordinator if you like: write it now."),
        [[Option("skip", ctx._("No, thanks"))]],
    )


async def handle_message_text(ctx: Context, text: str) -> Next:
    assert ctx.person is not None
    call_id = ctx.draft(AnswerDraft).call_id
    ctx.drop(AnswerDraft)
    if await service.add_message(ctx.session, call_id, ctx.person, text):
        call = await ctx.session.get(Call, call_id)
        if call is not None:
            await tell_holder(ctx, call, None, text)
        ctx.say(ctx._("Sent to the coordinator."))
    return END


async def handle_message_skip(ctx: Context, _value: str) -> Next:
    ctx.drop(AnswerDraft)
    ctx.say(ctx._("Alright. The coordinator will get back to you."))
    return END


async def tell_holder(ctx: Context, call: Call, choice: Answer | None, message: str | None) -> None:
    """Let whoever sent the call see answers as they come (through the outbox)."""
    if call.holder_chat is None or call.holder_channel is None or ctx.person is None:
        return
    t = Translator(call.holder_locale)
    name = ctx.person.first_name or "—"
    if not await verified.verified(ctx.session, ctx.person.id):
        name = t._("{name} (not verified)").format(name=name)
    if choice is not None:
        text = t._("{name} answered “{answer}” to “{title}”.").format(
            name=name, answer=t._(ANSWERS[choice]), title=call.title
        )
    else:
        text = t._("{name} about “{title}”: {message}").format(
            name=name, title=call.title, message=message
        )
    await outbox.enqueue_one(
        ctx.session,
        channel=call.holder_channel,
        chat_id=call.holder_chat,
        payload={"text": text},
        priority=Priority.REPORT,
        council_id=call.council_id,
    )


# The calls in a spreadsheet: who answered what, under the dashboard's words.
COLUMNS = (
    Column("title", N_("Title")),
    Column(
        "status", N_("Status"), {str(key): label for key, label in dashboard.STATUS_LABELS.items()}
    ),
    Column("deadline", N_("Deadline")),
    Column("people_needed", N_("People needed")),
    Column("accepts_unverified", N_("Open to unverified members")),
    *(Column(answer, label) for answer, label in dashboard.ANSWER_LABELS.items()),
    Column("unverified", N_("Answered without being verified")),
)


FLOW = Flow(
    name="calls",
    drafts=[CallDraft, AnswerDraft],
    exports=[
        Export(
            "calls",
            N_("Calls and their answers"),
            COORDINATING,
            talent_export.call_answers,
            columns=COLUMNS,
        )
    ],
    retention=data.RETENTION,
    personal_data=[data.ANSWERS, data.INTRODUCTIONS, data.CALLS],
    digest=[digest.SECTION],
    dashboard=[dashboard.CALLS],
    steps=[
        Step(CallStep.COUNCIL, ask_council, on_choice=handle_council),
        Step(
            CallStep.TITLE, ask_title, on_choice=cancel, on_text=handle_title, max_text_length=120
        ),
        Step(
            CallStep.DESCRIPTION,
            ask_description,
            on_choice=cancel,
            on_text=handle_description,
            max_text_length=1000,
        ),
        *picker.skill_steps(
            CallStep.SKILLS,
            draft=CallDraft,
            category_step=CallStep.SKILL_CATEGORY,
            question=N_("Which skills are needed? Tick none to ask every member."),
            on_done=skills_done,
        ),
        Step(CallStep.WHEN, ask_when, on_choice=handle_when, in_place=True),
        Step(
            CallStep.PEOPLE,
            ask_people,
            on_choice=handle_people,
            on_text=handle_people_text,
            max_text_length=20,
        ),
        Step(CallStep.DEADLINE, ask_deadline, on_choice=handle_deadline),
        Step(CallStep.PREVIEW, ask_preview, on_choice=handle_preview),
        changes.menu(CallStep.CHANGE, CallStep.PREVIEW, PARTS),
        Step(
            CallStep.MESSAGE,
            ask_message,
            on_choice=handle_message_skip,
            on_text=handle_message_text,
            max_text_length=300,
        ),
    ],
    commands=[
        Command(
            "call",
            new_call,
            N_("send a call for talents to matching residents"),
            roles=frozenset({Role.COORDINATOR}),
        )
    ],
    actions=[Action(AnswerButton, answer)],
    jobs=[CLOSE_CALLS],
)

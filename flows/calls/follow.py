"""/calls, for coordinators: the answers to each call, and introductions on consent.

Residents answer an introduction request with its buttons; once they agree, both sides
may write to each other through the bot (the relay) without seeing each other's account.
"""

from __future__ import annotations

from sqlalchemy import select

from flows.calls import introductions
from flows.calls.buttons import Consent, IntroductionButton, RelayButton
from flows.calls.drafts import FollowDraft
from flows.calls.flow import who_may_answer
from flows.engine import END, Action, Command, Context, Flow, Next, Option, Prompt, Step, StepName
from flows.i18n import N_
from flows.staff import coordinated, councils_coordinated
from storage.models import Answer, Call, CallAnswer, Introduction, Person, Role
from storage.queries import verified


class FollowStep(StepName):
    """/calls' screens, and writing through the bot."""

    ANSWERS = "follow.answers"
    CALLS = "follow.calls"
    RELAY = "follow.relay"


ANSWER_MARK = {Answer.YES: "🙋", Answer.MAYBE: "🤔", Answer.NO: "—"}
LISTED = 10


async def list_calls(ctx: Context) -> Next:
    """Show the coordinator's latest calls."""
    allowed = await councils_coordinated(
        ctx.session, ctx.inbound.channel, ctx.inbound.sender_id, ctx.is_admin
    )
    if not allowed:
        ctx.say(ctx._("This command is for council coordinators and organisers."))
        return END
    return FollowStep.CALLS


async def ask_calls(ctx: Context) -> Prompt:
    allowed = await councils_coordinated(
        ctx.session, ctx.inbound.channel, ctx.inbound.sender_id, ctx.is_admin
    )
    calls = await ctx.session.scalars(
        select(Call)
        .where(Call.council_id.in_([c.id for c in allowed]))
        .order_by(Call.id.desc())
        .limit(LISTED)
    )
    rows = [[Option(str(call.id), call.title)] for call in calls]
    if not rows:
        return Prompt(ctx._("No call yet: send one with /call."))
    rows.append([Option("close", ctx._("Close"))])
    return Prompt(ctx._("Which call?"), rows)


async def handle_calls(ctx: Context, value: str) -> Next:
    if value == "close":
        return END
    ctx.draft(FollowDraft).call_id = int(value)
    return FollowStep.ANSWERS


async def followed(ctx: Context) -> Call | None:
    """The call followed, if the sender still coordinates its council."""
    call = await ctx.session.get(Call, ctx.draft(FollowDraft).call_id)
    if call is None:
        return None
    allowed = await coordinated(
        ctx.session, ctx.inbound.channel, ctx.inbound.sender_id, ctx.is_admin, call.council_id
    )
    return call if allowed else None


async def ask_answers(ctx: Context) -> Prompt:
    """Who answered what, with a button to ask each helper for an introduction."""
    call = await followed(ctx)
    if call is None:
        return Prompt(ctx._("This command is for council coordinators and organisers."))
    rows = await ctx.session.execute(
        select(CallAnswer, Person, Introduction.status, verified.is_verified(Person.id))
        .join(Person, Person.id == CallAnswer.person_id)
        .outerjoin(
            Introduction,
            (Introduction.call_id == CallAnswer.call_id)
            & (Introduction.person_id == CallAnswer.person_id),
        )
        .where(CallAnswer.call_id == call.id)
        .order_by(CallAnswer.answer, CallAnswer.answered_at)
    )
    lines = [
        ctx._("“{text}”").format(text=call.title),
        who_may_answer(ctx.t, call.accepts_unverified),
    ]
    options: list[list[Option]] = []
    for answer, person, intro, counts in rows:
        name = person.first_name
        if not counts:
            name = ctx._("{name} (not verified)").format(name=name)
        line = f"{ANSWER_MARK[Answer(answer.answer)]} {name}"
        if answer.message:
            line += f" — {answer.message}"
        if intro is not None:
            line += " — " + ctx._("introduction asked")
        lines.append(line)
        if intro is None and answer.answer != Answer.NO:
            label = ctx._("Introduce {name}").format(name=person.first_name)
            options.append([Option(str(person.id), label)])
    if len(lines) == 2:
        lines.append(ctx._("No answer yet."))
    options.append([Option("back", ctx.t.back), Option("close", ctx._("Close"))])
    return Prompt("\n".join(lines), options)


async def handle_answers(ctx: Context, value: str) -> Next:
    if value == "close":
        ctx.draft(FollowDraft).call_id = 0
        return END
    if value == "back":
        return FollowStep.CALLS
    assert ctx.person is not None
    outcome = await introductions.ask(
        ctx.session,
        ctx.draft(FollowDraft).call_id,
        int(value),
        ctx.person,
        ctx.inbound.channel,
        ctx.inbound.sender_id,
        ctx.is_admin,
    )
    if outcome is introductions.Asked.NOT_ALLOWED:
        ctx.toast = ctx._("Sorry, this button does not work.")
    else:
        ctx.toast = ctx._("Asked. You will hear back if they agree.")
    return FollowStep.ANSWERS


async def decide(ctx: Context, button: IntroductionButton) -> None:
    """The resident answers an introduction request."""
    assert ctx.person is not None
    outcome, introduction = await introductions.decide(
        ctx.session, button.introduction_id, ctx.person, button.answer is Consent.YES
    )
    if outcome is introductions.Decided.NOT_ALLOWED or introduction is None:
        ctx.toast = ctx._("Sorry, this button does not work.")
        return
    if outcome is introductions.Decided.ALREADY:
        ctx.toast = ctx._("You already answered.")
        return
    if outcome is introductions.Decided.DECLINED:
        ctx.say(ctx._("Understood: nothing will be shared."))
        return
    call = await ctx.session.get(Call, introduction.call_id)
    assert call is not None
    await introductions.tell_holder(ctx.session, introduction, call, ctx.person)
    if await introductions.direct_contact(ctx.session, introduction, call):
        ctx.say(ctx._("Thank you! They will contact you directly."))
    else:
        ctx.say(ctx._("Thank you! Their messages will reach you here, through the bot."))


async def write(ctx: Context, button: RelayButton) -> None:
    """Open the relay: the next message goes to the other side."""
    assert ctx.person is not None
    direction, _introduction, _call = await introductions.relay_direction(
        ctx.session, button.introduction_id, ctx.person
    )
    if direction is introductions.Relay.NOT_ALLOWED:
        ctx.toast = ctx._("Sorry, this button does not work.")
        return
    ctx.draft(FollowDraft).introduction_id = button.introduction_id
    await ctx.engine.go(ctx, FollowStep.RELAY)


async def ask_relay(ctx: Context) -> Prompt:
    return Prompt(
        ctx._("Write your message: I will pass it on."), [[Option("cancel", ctx._("Cancel"))]]
    )


async def handle_relay_text(ctx: Context, text: str) -> Next:
    assert ctx.person is not None
    direction, introduction, call = await introductions.relay_direction(
        ctx.session, ctx.draft(FollowDraft).introduction_id, ctx.person
    )
    ctx.draft(FollowDraft).introduction_id = 0
    if introduction is None or call is None:
        ctx.say(ctx._("Sorry, this button does not work."))
        return END
    await introductions.relay(ctx.session, introduction, call, ctx.person, direction, text)
    ctx.say(ctx._("Passed on."))
    return END


async def handle_relay_cancel(ctx: Context, _value: str) -> Next:
    ctx.draft(FollowDraft).introduction_id = 0
    ctx.say(ctx._("Cancelled: nothing was sent."))
    return END


FLOW = Flow(
    name="follow",
    drafts=[FollowDraft],
    steps=[
        Step(FollowStep.CALLS, ask_calls, on_choice=handle_calls),
        Step(FollowStep.ANSWERS, ask_answers, on_choice=handle_answers, in_place=True),
        Step(
            FollowStep.RELAY,
            ask_relay,
            on_choice=handle_relay_cancel,
            on_text=handle_relay_text,
            max_text_length=1000,
        ),
    ],
    commands=[
        Command(
            "calls",
            list_calls,
            N_("see the answers to your calls, and put helpers in touch"),
            roles=frozenset({Role.COORDINATOR}),
        )
    ],
    actions=[Action(IntroductionButton, decide), Action(RelayButton, write)],
)

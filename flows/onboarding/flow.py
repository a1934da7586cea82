"""Onboarding: /start [council] → choose the council → read the notice and consent."""

from __future__ import annotations

from dataclasses import dataclass

from flows.drafts import Draft
from flows.engine import (
    END,
    ChatDraft,
    Command,
    Context,
    Flow,
    Next,
    Option,
    Prompt,
    Step,
    StepName,
)
from flows.help.flow import summary
from flows.i18n import N_
from flows.language.flow import LanguageStep
from flows.onboarding import service
from flows.subscription import service as subscription
from flows.verification import service as verification_service
from flows.verification.flow import redeem_for
from storage.models import Council
from storage.queries import councils


class OnboardingStep(StepName):
    """Joining a council."""

    CHOOSE_COUNCIL = "onboarding.choose_council"
    CONSENT = "onboarding.consent"


DISPLAYED_SLUG_LENGTH = 40
LINK_SEPARATOR = "__"  # council slugs have no underscore


@dataclass
class OnboardingDraft(Draft, key="onboarding"):
    council_id: int = 0  # the council being joined
    invite_code: str = ""  # the flyer's code the link carried, redeemed once a member
    then: str = ""  # the command the link asked for, run once a member


async def start(ctx: Context) -> Next:
    """Welcome a person: join a council by its link, or start onboarding.

    A link may name what to do once joined: ``/start quartier-nord__talents`` opens the
    talent directory (any command anyone may use). A second word is an invitation code from
    the council's flyer (``/start quartier-nord ABCD-EFGH``), redeemed once they are a member.
    """
    link, _, code = ctx.inbound.argument.strip().partition(" ")
    slug, _, then = link.partition(LINK_SEPARATOR)
    code = code.strip()
    draft = ctx.draft(OnboardingDraft)
    if code:
        draft.invite_code = code[: verification_service.MAX_TYPED + 1]
    command = ctx.engine.commands.get(then)
    if command is not None and not command.roles and command.name != "start":
        draft.then = command.name
    council = await councils.by_slug(ctx.session, slug) if slug else None
    if slug and council is None:
        ctx.say(
            ctx._("I don't know the council “{slug}”. Check the link, or choose below.").format(
                slug=slug[:DISPLAYED_SLUG_LENGTH]
            )
        )
    if ctx.person is not None:
        return await welcome_back(ctx, council)
    if council is None:
        available = await councils.all_councils(ctx.session)
        if not available:
            ctx.say(
                ctx._("No council has opened its doors here yet. Ask your council for its link.")
            )
            return END
        if len(available) == 1 and not slug:
            council = available[0]
    ctx.draft(ChatDraft).locale = ctx.t.locale
    if council is None:
        return OnboardingStep.CHOOSE_COUNCIL
    draft.council_id = council.id
    return OnboardingStep.CONSENT


async def welcome_back(ctx: Context, council: Council | None) -> Next:
    """Greet a known person; join the council of the link if it is a new one."""
    assert ctx.person is not None
    if subscription.resume(ctx.person):
        ctx.say(ctx._("Welcome back: you will receive the council's messages again."))
    if council is not None:
        outcome = await service.join(ctx.session, ctx.person, council)
        if outcome is service.Joined.JOINED:
            ctx.say(ctx._("You have joined {council}.").format(council=council.name))
            ctx.replies += await ctx.engine.joined(ctx.session, ctx.person, council)
        else:
            ctx.say(ctx._("You are already a member of {council}.").format(council=council.name))
    else:
        ctx.say(ctx._("Hello {name}, good to see you again!").format(name=ctx.person.first_name))
    await redeem_code(ctx)
    return await carry_on(ctx)


async def redeem_code(ctx: Context) -> None:
    """Use the invitation code the link carried, now that the person is a member."""
    draft = ctx.draft(OnboardingDraft)
    code, draft.invite_code = draft.invite_code, ""
    if code:
        await redeem_for(ctx, code)


async def carry_on(ctx: Context) -> Next:
    """After joining: what the link asked for, or the list of what one can do."""
    draft = ctx.draft(OnboardingDraft)
    then, draft.then = draft.then, ""
    command = ctx.engine.commands.get(then) if then else None
    if command is not None:
        return await command.run(ctx)
    ctx.say(await summary(ctx))
    return END


async def ask_council(ctx: Context) -> Prompt:
    """Ask which council the person belongs to."""
    available = await councils.all_councils(ctx.session)
    rows = [[Option(str(council.id), council.name)] for council in available]
    return Prompt(ctx._("Which council is yours?"), rows)


async def handle_council(ctx: Context, value: str) -> Next:
    """Remember the chosen council, then ask for consent."""
    council = await councils.by_id(ctx.session, int(value))
    if council is None:  # removed since the buttons were sent
        return OnboardingStep.CHOOSE_COUNCIL
    ctx.draft(OnboardingDraft).council_id = council.id
    return OnboardingStep.CONSENT


async def ask_consent(ctx: Context) -> Prompt:
    """Show the privacy notice and ask for consent."""
    council = await councils.by_id(ctx.session, ctx.draft(OnboardingDraft).council_id)
    name = council.name if council else ""
    greeting = ctx._("Hello {name}! I am Coup de pouce, the chat bot of {council}.").format(
        name=ctx.inbound.first_name or "👋", council=name
    )
    notice = ctx._(
        "Before we start: to let you take part, we keep your first name, your language, "
        "your council and your answers. Only your council uses them; they are never sold. "
        "Your contact is shared with someone only if you say yes, each time. "
        "See everything we keep with /mydata, erase it with /forget."
    )
    question = ctx._("Do you agree?")
    return Prompt(
        f"{greeting}\n\n{notice}\n\n{question}",
        [
            [Option("yes", ctx._("✅ Yes, I agree")), Option("no", ctx._("No, thanks"))],
            [Option("language", "🌐 " + ctx._("Language"))],
        ],
    )


async def handle_consent(ctx: Context, value: str) -> Next:
    """Register the person on yes; keep nothing on no."""
    if value == "language":
        ctx.draft(ChatDraft).return_to = OnboardingStep.CONSENT
        return LanguageStep.CHOOSE
    if value == "no":
        ctx.drop_all()
        ctx.say(
            ctx._(
                "No problem: nothing about you has been kept. "
                "If you change your mind, just send /start."
            )
        )
        return END
    draft = ctx.draft(OnboardingDraft)
    council = await councils.by_id(ctx.session, draft.council_id)
    if council is None:
        return OnboardingStep.CHOOSE_COUNCIL
    inbound = ctx.inbound
    ctx.person = await service.register(
        ctx.session,
        service.Newcomer(
            channel=inbound.channel,
            external_id=inbound.sender_id,
            first_name=inbound.first_name,
            username=inbound.username,
            locale=ctx.t.locale,
        ),
        council,
    )
    ctx.conversation.person_id = ctx.person.id
    ctx.drop(ChatDraft)  # the person's language is theirs now
    draft.council_id = 0
    ctx.say(ctx._("Thank you! You are now a member of {council}.").format(council=council.name))
    await redeem_code(ctx)
    ctx.replies += await ctx.engine.joined(ctx.session, ctx.person, council)
    return await carry_on(ctx)


FLOW = Flow(
    name="onboarding",
    drafts=[OnboardingDraft],
    steps=[
        Step(OnboardingStep.CHOOSE_COUNCIL, ask_council, on_choice=handle_council),
        Step(OnboardingStep.CONSENT, ask_consent, on_choice=handle_consent),
    ],
    commands=[
        Command(
            "start",
            start,
            N_("join your council, or start again"),
            needs_consent=False,
            words=frozenset({"commencer", "demarrer", "ابدأ", "ابدا"}),
        ),
    ],
)

"""/verify CODE: a web chat member types the code from the council's flyer and counts once.

Also reached from the flyer's QR code: the web chat opens with ``/start SLUG CODE`` and
onboarding redeems the code once the person is a member (see `redeem_for`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flows.drafts import Draft
from flows.engine import END, STAY, Command, Context, Flow, Next, Option, Prompt, Step, StepName
from flows.i18n import N_
from flows.verification import dashboard, data, service
from flows.verification.service import Redeemed
from storage.models import utcnow


class VerifyStep(StepName):
    """Typing a verification code."""

    CODE = "verify.code"


FAILURE_WINDOW_SECONDS = 3600
HOW_TO_COUNT = N_(
    "To count, enter the code your council gives you (/verify CODE), "
    "or link your Telegram or WhatsApp with /link."
)


@dataclass
class VerifyDraft(Draft, key="verify"):
    """When wrong codes were typed lately (POSIX seconds), to slow down guessing."""

    failures: list[float] = field(default_factory=list)


async def verify(ctx: Context) -> Next:
    """Take the code given with the command, or ask for it."""
    typed = ctx.inbound.argument.strip()
    if not typed:
        return VerifyStep.CODE
    await redeem_for(ctx, typed)
    # Sent in the middle of something else (answering a consultation): carry on there.
    return END if ctx.conversation.step in (None, VerifyStep.CODE) else STAY


async def ask_code(ctx: Context) -> Prompt:
    """Ask for the code printed on the card."""
    return Prompt(
        ctx._("Type the code printed on your card: 8 letters and digits, like ABCD-EFGH."),
        [[Option("cancel", ctx._("Cancel"))]],
    )


async def handle_code(ctx: Context, text: str) -> Next:
    """Redeem the typed code."""
    await redeem_for(ctx, text)
    return END


async def cancel(ctx: Context, _value: str) -> Next:
    ctx.say(ctx._("Alright, nothing changed."))
    return END


async def redeem_for(ctx: Context, typed: str) -> Redeemed | None:
    """Redeem a code for the current person and say how it went (None: too many tries)."""
    assert ctx.person is not None
    now = utcnow().timestamp()
    draft = ctx.draft(VerifyDraft)
    failures = [at for at in draft.failures if now - at < FAILURE_WINDOW_SECONDS]
    if len(failures) >= service.MAX_FAILURES:
        ctx.say(ctx._("Too many wrong codes. Please try again in an hour."))
        return None
    outcome = await service.redeem(ctx.session, ctx.person, typed)
    if outcome in (Redeemed.INVALID, Redeemed.MALFORMED):
        draft.failures = [*failures, now]
    elif outcome is Redeemed.VERIFIED:
        draft.failures = []
    ctx.say(told(ctx, outcome))
    return outcome


def told(ctx: Context, outcome: Redeemed) -> str:
    """What the person reads for each outcome."""
    if outcome is Redeemed.VERIFIED:
        return ctx._(
            "Thank you: your code is accepted. You are a verified member, and your answers count."
        )
    if outcome is Redeemed.MALFORMED:
        return ctx._(
            "This does not look like a code: it has 8 letters and digits, like ABCD-EFGH. "
            "Send /verify followed by the code on your card."
        )
    if outcome is Redeemed.INVALID:
        return ctx._(
            "This code does not work: it may be mistyped, used already, or from another council. "
            "Nothing has changed. Check it, or ask your council for another one."
        )
    if outcome is Redeemed.ALREADY:
        return ctx._(
            "You are already a verified member: no need for a code. "
            "It was not used, so you can pass it on to a neighbour."
        )
    return ctx._(
        "Your Telegram or WhatsApp account already makes your answers count: no need for a "
        "code. It was not used, so you can pass it on to a neighbour."
    )


FLOW = Flow(
    name="verification",
    drafts=[VerifyDraft],
    personal_data=[data.INVITE_CODES],
    dashboard=[dashboard.MEMBERS],
    steps=[
        Step(
            VerifyStep.CODE,
            ask_code,
            on_choice=cancel,
            on_text=handle_code,
            max_text_length=service.MAX_TYPED,
        )
    ],
    commands=[
        Command(
            "verify",
            verify,
            N_("enter the code your council gave you, so that your answers count"),
            words=frozenset({"code", "verifier", "verify", "رمز", "تحقق"}),
        )
    ],
)

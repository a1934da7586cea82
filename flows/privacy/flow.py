"""Privacy: /mydata sends what we keep, /forget erases it after a confirmation."""

from __future__ import annotations

import json

from flows.engine import (
    END,
    STAY,
    Action,
    Attachment,
    Command,
    Context,
    Flow,
    Next,
    Option,
    Prompt,
    Step,
    StepName,
)
from flows.i18n import N_
from flows.privacy import inactive, retention, service
from flows.privacy.buttons import StayButton


class PrivacyStep(StepName):
    """Erasing oneself."""

    CONFIRM_FORGET = "privacy.confirm_forget"


async def send_my_data(ctx: Context) -> Next:
    """Say in a few lines what we keep about the person, with the whole of it as a JSON file
    (one key per capability)."""
    if ctx.person is None:
        ctx.say(ctx._("We keep nothing about you."))
        return STAY
    capabilities = list(ctx.engine.personal_data.values())
    document = await service.everything_about(ctx.session, ctx.person, capabilities)
    lines = service.summary(ctx.t, document, capabilities)
    content = json.dumps(document, ensure_ascii=False, indent=2).encode()
    ctx.say(
        "\n".join(
            [ctx._("Here is everything we keep about you."), *(f"• {line}" for line in lines)]
        ),
        Attachment("mydata.json", content, "application/json"),
    )
    return STAY


async def forget(ctx: Context) -> Next:
    """Ask for confirmation before erasing."""
    if ctx.person is None:
        ctx.say(ctx._("There is nothing to erase: we keep nothing about you."))
        return STAY
    return PrivacyStep.CONFIRM_FORGET


async def ask_confirm_forget(ctx: Context) -> Prompt:
    """Make sure the person wants everything erased."""
    return Prompt(
        ctx._(
            "Erase everything we keep about you? You will leave your councils. "
            "This cannot be undone."
        ),
        [[Option("erase", ctx._("Yes, erase everything")), Option("keep", ctx._("No, keep it"))]],
    )


async def handle_confirm_forget(ctx: Context, value: str) -> Next:
    """Erase on yes; nothing changes on no."""
    if value == "keep":
        ctx.say(ctx._("Nothing was erased."))
        return END
    assert ctx.person is not None
    await service.forget(ctx.session, ctx.person, ctx.engine.personal_data.values())
    ctx.person = None
    ctx.drop_conversation = True
    ctx.say(
        ctx._(
            "Done: everything about you has been erased. Goodbye! "
            "Send /start if you want to come back."
        )
    )
    return END


FLOW = Flow(
    name="privacy",
    retention=retention.RULES,
    actions=[Action(StayButton, inactive.stay)],
    steps=[Step(PrivacyStep.CONFIRM_FORGET, ask_confirm_forget, on_choice=handle_confirm_forget)],
    commands=[
        Command(
            "mydata",
            send_my_data,
            N_("see everything we keep about you"),
            needs_consent=False,
            words=frozenset({"my data", "mes donnees", "بياناتي"}),
        ),
        Command(
            "forget",
            forget,
            N_("erase everything we keep about you"),
            needs_consent=False,
            words=frozenset({"oublier", "effacer", "احذف"}),
        ),
    ],
)

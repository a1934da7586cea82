"""/link: reach the same person on another app, and choose where the council writes.

On one app, /link gives a short code; sent from the other app ("/link K7P2QXMA"), it adds
that app to the same person, who then chooses which one the council's messages go to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from flows.drafts import Draft
from flows.engine import END, STAY, Command, Context, Flow, Next, Option, Prompt, Step, StepName
from flows.i18n import N_
from flows.linking import data, service
from flows.linking.service import Linked
from storage.models import utcnow


class LinkStep(StepName):
    """Choosing the app the council writes to."""

    PREFERRED = "link.preferred"


CHANNEL_NAMES = {
    "telegram": N_("Telegram"),
    "whatsapp": N_("WhatsApp"),
    "web": N_("the web chat"),
}


@dataclass
class LinkDraft(Draft, key="link"):
    """When wrong codes were sent lately (POSIX seconds), to slow down guessing."""

    failures: list[float] = field(default_factory=list)


def channel_name(ctx: Context, channel: str) -> str:
    return ctx._(CHANNEL_NAMES.get(channel, channel))


async def link(ctx: Context) -> Next:
    """Give a code to send from the other app, or take the code sent from this one."""
    code = ctx.inbound.argument.strip()
    if code:
        return await take_code(ctx, code)
    if ctx.person is None:
        ctx.say(ctx._("First, let's get you started: send /start."))
        return STAY
    minutes = int(service.LIFETIME / timedelta(minutes=1))
    new = await service.new_code(ctx.session, ctx.person, utcnow())
    ctx.say(
        ctx.ngettext(
            "To be reached on another app too (WhatsApp, Telegram or the web chat), send this "
            "message from it within {n} minute:",
            "To be reached on another app too (WhatsApp, Telegram or the web chat), send this "
            "message from it within {n} minutes:",
            minutes,
        ).format(n=ctx.t.number(minutes))
    )
    ctx.say(f"/link {new}")
    return STAY


async def take_code(ctx: Context, code: str) -> Next:
    """Link this chat to the person who asked for the code."""
    now = utcnow()
    draft = ctx.draft(LinkDraft)
    failures = [at for at in draft.failures if now.timestamp() - at < 3600]
    if len(failures) >= service.MAX_FAILURES:
        ctx.say(ctx._("Too many wrong codes. Please try again in an hour."))
        return STAY
    inbound = ctx.inbound
    linking = await service.use_code(
        ctx.session, code, inbound.channel, inbound.sender_id, inbound.username, ctx.person, now
    )
    if linking.outcome is Linked.INVALID:
        draft.failures = [*failures, now.timestamp()]
        ctx.say(
            ctx._(
                "This code does not work: it may be mistyped, used already or expired. "
                "Send /link on your other app for a new one."
            )
        )
        return STAY
    draft.failures = []
    if linking.outcome is Linked.ALREADY:
        ctx.say(ctx._("This app is already linked to your profile."))
        return LinkStep.PREFERRED
    if linking.outcome is Linked.OTHER_PERSON:
        ctx.say(
            ctx._(
                "This app already has its own membership, so it cannot be linked. To keep only "
                "one, erase this one with /forget, then send the code again."
            )
        )
        return STAY
    assert linking.person is not None
    ctx.person = linking.person
    ctx.conversation.person_id = linking.person.id
    ctx.set_locale(linking.person.locale)
    ctx.say(
        ctx._("Done: {name}, this app is now linked to your profile.").format(
            name=linking.person.first_name or "👋"
        )
    )
    return LinkStep.PREFERRED


async def ask_preferred(ctx: Context) -> Prompt:
    """Ask which app the council's messages should go to."""
    assert ctx.person is not None
    rows = []
    for identity in await service.identities(ctx.session, ctx.person):
        mark = "✅ " if identity.preferred else ""
        rows.append([Option(str(identity.id), mark + channel_name(ctx, identity.channel))])
    return Prompt(ctx._("Where should the council's messages reach you?"), rows)


async def handle_preferred(ctx: Context, value: str) -> Next:
    """Move the council's messages to the chosen app."""
    assert ctx.person is not None
    chosen = await service.prefer(ctx.session, ctx.person, int(value))
    if chosen is None:
        return LinkStep.PREFERRED
    ctx.say(
        ctx._("Done: the council's messages will reach you on {app}.").format(
            app=channel_name(ctx, chosen.channel)
        )
    )
    return END


FLOW = Flow(
    name="linking",
    drafts=[LinkDraft],
    retention=data.RETENTION,
    personal_data=[data.LINK_CODES],
    steps=[Step(LinkStep.PREFERRED, ask_preferred, on_choice=handle_preferred)],
    commands=[
        Command(
            "link",
            link,
            N_("use another app too (WhatsApp, Telegram, web chat)"),
            needs_consent=False,
            words=frozenset({"lier", "ربط"}),
        )
    ],
)

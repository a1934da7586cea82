"""/stop, or STOP / ARRÊT / توقف in any state: no more broadcasts until /start."""

from __future__ import annotations

from flows.engine import STAY, Command, Context, Flow, Next
from flows.i18n import N_
from flows.subscription import service

STOP_WORDS = frozenset(
    {"stop", "arret", "arrête", "arreter", "unsubscribe", "توقف", "إيقاف", "ايقاف"}
)


async def stop(ctx: Context) -> Next:
    """Stop the council's messages; the question the person was on stays open."""
    if ctx.person is None:
        ctx.say(ctx._("We send you nothing: you have not joined a council."))
        return STAY
    outcome = await service.stop(ctx.session, ctx.person)
    if outcome is service.Stopped.ALREADY:
        ctx.say(
            ctx._(
                "You already receive no messages from the council. "
                "Send /start to receive them again."
            )
        )
    else:
        ctx.say(
            ctx._(
                "Done: you will receive no more messages from the council. "
                "Send /start to receive them again."
            )
        )
    return STAY


FLOW = Flow(
    name="subscription",
    commands=[
        Command(
            "stop",
            stop,
            N_("receive no more messages from the council"),
            needs_consent=False,
            keywords=STOP_WORDS,
        )
    ],
    on_reachability=service.reachability,
)

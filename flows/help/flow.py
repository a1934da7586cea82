"""Help: what the person can do here, by role."""

from __future__ import annotations

from flows.engine import STAY, Command, Context, Flow, Next
from flows.i18n import N_
from storage.models import Role

# Whole sentences, so that each language can agree the role with its sentence.
YOUR_ROLE = {
    Role.RESIDENT: N_("You are a resident of {council}."),
    Role.ORGANISER: N_("You are an organiser of {council}."),
    Role.COORDINATOR: N_("You are a coordinator of {council}."),
}


async def summary(ctx: Context) -> str:
    """The commands this person may use, and the roles they hold."""
    held = await ctx.roles()
    held_roles = {role for _council, role in held}
    lines = [ctx._("Here is what you can do:")]
    for command in ctx.engine.commands.values():
        if not command.in_menu or (ctx.person is None and command.needs_consent):
            continue
        if command.roles and not (held_roles & command.roles or ctx.is_admin):
            continue
        lines.append(f"/{command.name} — {ctx._(command.description)}")
    for council, role in sorted(held, key=lambda pair: (pair[0].name, pair[1].value)):
        lines.append(ctx._(YOUR_ROLE[role]).format(council=council.name))
    if ctx.is_admin:
        lines.append(ctx._("You are an administrator of this bot."))
    if ctx.person is None:
        lines.append(ctx._("Send /start to join your neighbourhood council."))
    return "\n".join(lines)


async def show_help(ctx: Context) -> Next:
    """List what the person can do; the current question stays open."""
    ctx.say(await summary(ctx))
    return STAY


FLOW = Flow(
    name="help",
    commands=[
        Command(
            "help",
            show_help,
            N_("what I can do for you"),
            needs_consent=False,
            words=frozenset({"aide", "menu", "مساعدة"}),
        )
    ],
)

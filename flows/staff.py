"""Which councils a person may act for, checked on the server at every step."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from flows.engine import END, Context, Next, Option
from storage.models import Council, Role
from storage.queries import councils, people


async def councils_coordinated(
    session: AsyncSession, channel: str, sender_id: str, is_admin: bool
) -> list[Council]:
    """The councils this person coordinates (all of them for an administrator), by name."""
    if is_admin:
        return list(await councils.all_councils(session))
    held = await people.roles_of(session, channel, sender_id)
    return sorted({c for c, role in held if role == Role.COORDINATOR}, key=lambda c: c.name)


async def coordinated(
    session: AsyncSession, channel: str, sender_id: str, is_admin: bool, council_id: int
) -> Council | None:
    """The council, if this person coordinates it; None otherwise (forged or revoked)."""
    allowed = await councils_coordinated(session, channel, sender_id, is_admin)
    return next((council for council in allowed if council.id == council_id), None)


async def start_in_council(ctx: Context, key: str, first_step: str, choose_step: str) -> Next:
    """Begin a coordinator's task: in their council if they have one, else ask which."""
    allowed = await councils_coordinated(
        ctx.session, ctx.inbound.channel, ctx.inbound.sender_id, ctx.is_admin
    )
    if not allowed:
        ctx.say(ctx._("This command is for council coordinators and organisers."))
        return END
    if len(allowed) == 1:
        ctx.remember(**{key: allowed[0].id})
        return first_step
    return choose_step


async def council_options(ctx: Context) -> list[list[Option]]:
    """One button per council the sender coordinates."""
    allowed = await councils_coordinated(
        ctx.session, ctx.inbound.channel, ctx.inbound.sender_id, ctx.is_admin
    )
    return [[Option(str(council.id), council.name)] for council in allowed]


async def council_in_use(ctx: Context, key: str) -> Council | None:
    """The council a coordinator's task remembered under `key`, if they still coordinate it."""
    return await coordinated(
        ctx.session,
        ctx.inbound.channel,
        ctx.inbound.sender_id,
        ctx.is_admin,
        int(ctx.data.get(key, 0)),
    )

"""Which councils a person may act for, checked on the server at every step."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from flows.drafts import Draft
from flows.engine import END, Context, Next, Option, StepName
from storage.models import Council, Role
from storage.queries import councils, people

COORDINATING = frozenset({Role.COORDINATOR})
ORGANISING = frozenset({Role.COORDINATOR, Role.ORGANISER})  # meetings and consultations


@dataclass
class StaffDraft(Draft):
    """The part of a staff task's draft every one has: the council it is for (checked again
    at each step: roles can be revoked)."""

    council_id: int = 0


async def councils_coordinated(
    session: AsyncSession,
    channel: str,
    sender_id: str,
    is_admin: bool,
    roles: frozenset[Role] = COORDINATING,
) -> list[Council]:
    """The councils where this person holds one of these roles (all of them for an
    administrator), by name."""
    if is_admin:
        return list(await councils.all_councils(session))
    held = await people.roles_of(session, channel, sender_id)
    return sorted({c for c, role in held if role in roles}, key=lambda c: c.name)


async def coordinated(
    session: AsyncSession,
    channel: str,
    sender_id: str,
    is_admin: bool,
    council_id: int,
    roles: frozenset[Role] = COORDINATING,
) -> Council | None:
    """The council, if this person holds one of these roles in it; None otherwise (forged
    or revoked)."""
    allowed = await councils_coordinated(session, channel, sender_id, is_admin, roles)
    return next((council for council in allowed if council.id == council_id), None)


async def start_in_council(
    ctx: Context,
    draft: type[StaffDraft],
    first_step: StepName,
    choose_step: StepName,
    roles: frozenset[Role] = COORDINATING,
) -> Next:
    """Begin a staff task: in their council if they have one, else ask which."""
    allowed = await councils_coordinated(
        ctx.session, ctx.inbound.channel, ctx.inbound.sender_id, ctx.is_admin, roles
    )
    if not allowed:
        ctx.say(ctx._("This command is for council coordinators and organisers."))
        return END
    if len(allowed) == 1:
        ctx.draft(draft).council_id = allowed[0].id
        return first_step
    return choose_step


async def council_options(
    ctx: Context, roles: frozenset[Role] = COORDINATING
) -> list[list[Option]]:
    """One button per council where the sender holds one of these roles."""
    allowed = await councils_coordinated(
        ctx.session, ctx.inbound.channel, ctx.inbound.sender_id, ctx.is_admin, roles
    )
    return [[Option(str(council.id), council.name)] for council in allowed]


async def council_in_use(
    ctx: Context, draft: type[StaffDraft], roles: frozenset[Role] = COORDINATING
) -> Council | None:
    """The council of the task's draft, if they still hold the role there."""
    return await coordinated(
        ctx.session,
        ctx.inbound.channel,
        ctx.inbound.sender_id,
        ctx.is_admin,
        ctx.draft(draft).council_id,
        roles,
    )

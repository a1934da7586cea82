"""What a broadcast's preview says about its cost: messages a channel bills (WhatsApp's
templates, for people who have not written in the last 24 hours)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from flows.broadcasts.report import templates_line
from flows.engine import Context
from storage.models import Identity, utcnow

# Channels where a business writes freely only this long after the person's last message,
# and pays for a template otherwise.
WINDOWS: Final = {"whatsapp": timedelta(hours=24)}


async def templates_needed(session: AsyncSession, audience: Select[int], now: datetime) -> int:
    """How many of the audience would be reached by a billed template rather than a message."""
    people = audience.subquery()
    outside = [
        and_(
            Identity.channel == channel,
            or_(Identity.last_inbound_at.is_(None), Identity.last_inbound_at < now - window),
        )
        for channel, window in WINDOWS.items()
    ]
    query = (
        select(func.count())
        .select_from(Identity)
        .join(people, people.c[0] == Identity.person_id)
        .where(Identity.preferred.is_(True), or_(*outside))
    )
    return int(await session.scalar(query) or 0)


async def cost_line(ctx: Context, audience: Select[int]) -> str | None:
    """'Of whom 120 as WhatsApp templates (about €6.00)', or None when nothing is billed."""
    count = await templates_needed(ctx.session, audience, utcnow())
    if count == 0:
        return None
    return ctx._("Of whom: {templates}.").format(
        templates=templates_line(ctx.t, count, ctx.config.template_price)
    )

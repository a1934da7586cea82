"""The broadcasts among the council's pages: what went out, how far it got, and a button to
stop one that is still going."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from flows.broadcasts import service
from flows.i18n import N_, Translator
from flows.sections import DashboardSection, Page, Redirect, Route, Visit, whole_number
from flows.staff import COORDINATING
from storage.models import Broadcast, BroadcastStatus, Council, utcnow
from storage.queries import outbox

LISTED = 30


def _progress_text(
    t: Translator, counts: outbox.Counts, broadcast: Broadcast, council: Council
) -> str:
    # Imported here: the report imports the broadcasts' flow (its stop button), which
    # declares this section.
    from flows.broadcasts.report import progress

    return progress(
        t,
        counts,
        interrupted=broadcast.status == BroadcastStatus.INTERRUPTED,
        starts_at=broadcast.not_before if broadcast.not_before > utcnow() else None,
        timezone=council.timezone,
    )


async def broadcasts(v: Visit) -> Page:
    """The latest broadcasts, each with its progress."""
    found = list(
        await v.session.scalars(
            select(Broadcast)
            .where(Broadcast.council_id == v.council.id)
            .order_by(Broadcast.id.desc())
            .limit(LISTED)
        )
    )
    listed = []
    for broadcast in found:
        counts = await outbox.counts(v.session, broadcast.id)
        payload: dict[str, Any] = broadcast.payloads.get(v.t.locale) or next(
            iter(broadcast.payloads.values()), {}
        )
        text = str(payload.get("text", ""))
        running = broadcast.status in (BroadcastStatus.PENDING, BroadcastStatus.SENDING)
        listed.append(
            {
                "id": broadcast.id,
                "text": text if len(text) <= 160 else text[:159] + "…",
                "started": v.t.datetime(broadcast.created_at, v.council.timezone, "short"),
                "progress": _progress_text(v.t, counts, broadcast, v.council),
                "done": counts.total - counts.waiting,
                "total": counts.total,
                "running": running and not counts.finished,
            }
        )
    return Page(template="broadcasts.html", context={"broadcasts": listed})


async def stop(v: Visit) -> Redirect | None:
    """Stop sending a broadcast of this council (its coordinators only, as in the chat)."""
    broadcast_id = whole_number(v.params.get("id"))
    broadcast = await v.session.get(Broadcast, broadcast_id) if broadcast_id is not None else None
    if broadcast is None or broadcast.council_id != v.council.id:
        return None
    roles = {(v.council, role) for role in v.roles}
    await service.interrupt(v.session, broadcast.id, v.person, roles, v.is_admin)
    return Redirect("broadcasts")


BROADCASTS = DashboardSection(
    "broadcasts",
    N_("Broadcasts"),
    COORDINATING,
    50,
    broadcasts,
    routes=[Route("{id:\\d+}/stop", stop, method="POST")],
)

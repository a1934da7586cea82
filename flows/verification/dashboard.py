"""The members to verify among the council's pages: web chat members who do not count
yet, for a coordinator who knows them to vouch for them."""

from __future__ import annotations

import logging

from flows.i18n import N_
from flows.sections import DashboardSection, Page, Redirect, Route, Visit, whole_number
from flows.staff import COORDINATING
from flows.verification import service
from storage.queries import verified

log = logging.getLogger(__name__)

LISTED = 200


async def members(v: Visit) -> Page:
    """Web chat members who do not count yet, the newest first."""
    found = await verified.unverified_members(v.session, v.council.id, LISTED)
    listed = [
        {
            "id": member.person_id,
            "first_name": member.first_name or "—",
            "joined": v.t.day(member.joined_at, v.council.timezone, "long"),
        }
        for member in found
    ]
    done = v.query.get("verified", "")
    return Page(
        template="members.html",
        context={
            "members": listed,
            "more": len(found) == LISTED,
            "just_verified": done if done.isdigit() else "",
        },
    )


async def verify(v: Visit) -> Redirect | None:
    """Vouch for one of them."""
    person_id = whole_number(v.params.get("id"))
    if person_id is None:
        return None
    outcome = await service.approve(v.session, v.council, person_id)
    if outcome is service.Approved.NOT_FOUND:
        return None
    log.info(
        "dashboard: person %s verified member %s of %s", v.person.id, person_id, v.council.slug
    )
    return Redirect(f"members?verified={person_id}")


MEMBERS = DashboardSection(
    "members",
    N_("Members to verify"),
    COORDINATING,
    60,
    members,
    routes=[Route("{id:\\d+}/verify", verify, method="POST")],
)

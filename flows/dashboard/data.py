"""What the dashboard keeps about a person: sign-in links and signed-in browsers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from flows.engine import PersonalData
from storage.models import DashboardSession, LoginLink, Person


async def sign_ins_of(session: AsyncSession, person: Person) -> dict[str, Any]:
    links = await session.execute(
        select(LoginLink.created_at, LoginLink.used_at).where(LoginLink.person_id == person.id)
    )
    browsers = await session.execute(
        select(DashboardSession.created_at, DashboardSession.expires_at).where(
            DashboardSession.person_id == person.id
        )
    )
    return {
        "links": [
            {"sent_at": made.isoformat(), "used_at": used.isoformat() if used else None}
            for made, used in links
        ],
        "signed_in": [
            {"since": made.isoformat(), "until": until.isoformat()} for made, until in browsers
        ],
    }


SIGN_INS = PersonalData("dashboard", ("login_links", "dashboard_sessions"), sign_ins_of)

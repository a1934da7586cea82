"""What the dashboard keeps about a person: sign-in links and signed-in browsers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from flows.engine import PersonalData, Retention, deleted
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


async def expired_sign_ins(session: AsyncSession, before: datetime) -> int:
    links = await session.execute(delete(LoginLink).where(LoginLink.expires_at < before))
    browsers = await session.execute(
        delete(DashboardSession).where(DashboardSession.expires_at < before)
    )
    return deleted(links, browsers)


RETENTION = (Retention("expired dashboard sign-ins", timedelta(days=1), expired_sign_ins),)

"""Who may see what: sign-in by one-time link, sessions, CSRF, and roles per council.

Every request is checked on the server: the session cookie names a person, and the
person's staff roles (read again at each request, so a revoked role takes effect at once)
decide which councils and sections they see.
"""

from __future__ import annotations

import hmac
from collections import defaultdict
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from flows.staff import ORGANISING
from storage.models import Council, Identity, Person, PersonStatus, Role, utcnow
from storage.queries import councils, dashboard, people

SESSION_COOKIE = "cdp_dashboard"
LOGIN_COOKIE = "cdp_login"  # double-submit token for the sign-in form, before any session
COOKIE_PATH = "/dashboard"


@dataclass(frozen=True)
class Viewer:
    """The signed-in person and what they may do."""

    person: Person
    csrf_token: str
    roles: dict[int, frozenset[Role]]  # council id → roles held there
    councils: tuple[Council, ...]  # those where they hold a staff role, by name
    is_admin: bool

    def may(self, council: Council, allowed: frozenset[Role]) -> bool:
        return self.is_admin or bool(self.roles.get(council.id, frozenset()) & allowed)


async def viewer(
    session: AsyncSession, request: web.Request, admin_ids: frozenset[str]
) -> Viewer | None:
    """The signed-in person behind this request; None if not signed in (or no longer staff)."""
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return None
    signed = await dashboard.signed_in(session, secret, utcnow())
    if signed is None:
        return None
    person = await session.get(Person, signed.person_id)
    if person is None or person.status is not PersonStatus.ACTIVE:
        return None
    identities = list(
        await session.execute(
            select(Identity.channel, Identity.external_id).where(Identity.person_id == person.id)
        )
    )
    is_admin = any(channel == "telegram" and ext in admin_ids for channel, ext in identities)
    held: defaultdict[int, set[Role]] = defaultdict(set)
    by_id: dict[int, Council] = {}
    for channel, external_id in identities:
        for council, role in await people.roles_of(session, channel, external_id):
            if role in ORGANISING:
                held[council.id].add(role)
                by_id[council.id] = council
    if is_admin:
        by_id.update({council.id: council for council in await councils.all_councils(session)})
    if not by_id:
        return None
    return Viewer(
        person=person,
        csrf_token=signed.csrf_token,
        roles={council_id: frozenset(roles) for council_id, roles in held.items()},
        councils=tuple(sorted(by_id.values(), key=lambda c: c.name)),
        is_admin=is_admin,
    )


def same_origin(request: web.Request) -> bool:
    """A POST must come from our own pages: its Origin (when the browser sends one) is ours."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    return origin.split("://", 1)[-1] == request.host


def token_matches(given: object, expected: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())

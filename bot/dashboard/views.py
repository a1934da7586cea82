"""The coordinators' dashboard: server-rendered pages per council, signed in by a
one-time link that the bot sends on /dashboard."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jinja2
from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.dashboard.access import (
    COOKIE_PATH,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Viewer,
    same_origin,
    token_matches,
    viewer,
)
from flows import exports
from flows.broadcasts import service as broadcasts
from flows.broadcasts.report import progress
from flows.consultations import results as consultation_results
from flows.consultations.service import figures
from flows.engine import Flow
from flows.i18n import N_, Translator, first_language, negotiate
from flows.meetings import export as meeting_export
from flows.meetings import service as meeting_service
from flows.registry import FLOWS
from flows.staff import COORDINATING, ORGANISING
from flows.talents import export as talent_export
from flows.talents.catalogue import skill_label
from flows.talents.flow import AVAILABILITY
from flows.verification import service as verification
from storage.db import session_scope
from storage.models import (
    Broadcast,
    BroadcastStatus,
    Call,
    CallStatus,
    Consultation,
    ConsultationStatus,
    Council,
    Meeting,
    Membership,
    Role,
    TalentProfile,
    utcnow,
)
from storage.queries import councils, dashboard, outbox, talents, verified

log = logging.getLogger(__name__)

PAGE_SIZE = 50
MEMBERS_LISTED = 200
TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("bot.dashboard", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

# Each section of a council's pages, and the roles that may see it.
SECTIONS: tuple[tuple[str, str, frozenset[Role]], ...] = (
    ("directory", N_("Directory"), COORDINATING),
    ("calls", N_("Calls for talents"), COORDINATING),
    ("meetings", N_("Meetings"), ORGANISING),
    ("consultations", N_("Consultations"), ORGANISING),
    ("broadcasts", N_("Broadcasts"), COORDINATING),
    ("members", N_("Members to verify"), COORDINATING),
)
RSVP_LABELS = {
    "coming": N_("Coming"),
    "maybe": N_("Maybe"),
    "declined": N_("Not coming"),
    "waiting": N_("Waiting list"),
}
CALL_ANSWER_LABELS = {
    "yes": N_("Can help"),
    "maybe": N_("Maybe"),
    "no": N_("Not this time"),
}
STATUS_LABELS = {
    CallStatus.OPEN.value: N_("open"),
    CallStatus.CLOSED.value: N_("closed"),
    ConsultationStatus.SCHEDULED.value: N_("opens later"),
    "cancelled": N_("cancelled"),
    "scheduled": N_("planned"),
}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    # The sign-in link must not leak to other sites; "no-referrer" would also make browsers
    # send "Origin: null" with our own forms, which the CSRF check refuses.
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Visit:
    """One request to a council's pages, its session, council and role already checked."""

    request: web.Request
    session: AsyncSession
    who: Viewer
    council: Council
    t: Translator


Rendered = tuple[str, dict[str, Any]]  # a template and what it shows
Handler = Callable[[Visit], Awaitable[Rendered | web.StreamResponse]]


class Dashboard:
    """Adds the dashboard's routes to the web application."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        admin_ids: frozenset[str] = frozenset(),
        session_hours: float = 8.0,
        flows: Sequence[Flow] = FLOWS,
    ) -> None:
        self.sessions = sessions
        self.exports = exports.available(flows)  # what the capabilities declare
        self.admin_ids = admin_ids
        self.session_length = timedelta(hours=session_hours)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/dashboard", self.to_home)
        app.router.add_get("/dashboard/", self.home)
        app.router.add_get("/dashboard/login/{token}", self.login_page)
        app.router.add_post("/dashboard/login/{token}", self.login)
        app.router.add_post("/dashboard/logout", self.logout)
        app.router.add_get("/dashboard/{slug}/", self.council_page(self.overview, ORGANISING))
        for name, _label, roles in SECTIONS:
            app.router.add_get(
                f"/dashboard/{{slug}}/{name}", self.council_page(getattr(self, name), roles)
            )
        app.router.add_get(
            "/dashboard/{slug}/consultations/{id:\\d+}/chart-{number:\\d+}.png",
            self.council_page(self.chart, ORGANISING),
        )
        app.router.add_post(
            "/dashboard/{slug}/broadcasts/{id:\\d+}/stop",
            self.council_page(self.stop_broadcast, COORDINATING),
        )
        app.router.add_post(
            "/dashboard/{slug}/members/{id:\\d+}/verify",
            self.council_page(self.verify_member, COORDINATING),
        )
        app.router.add_get(
            "/dashboard/{slug}/export/{kind}.csv", self.council_page(self.export, ORGANISING)
        )

    # --- pages for everyone ---------------------------------------------------------------

    async def to_home(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/dashboard/")

    async def home(self, request: web.Request) -> web.Response:
        async with session_scope(self.sessions) as session:
            who = await viewer(session, request, self.admin_ids)
            if who is None:  # the landing page: how to sign in
                return self.signed_out(request, status=200)
            t = Translator(who.person.locale)
            return page(
                "home.html", t, who, councils=who.councils, roles=who.roles, labels=ROLE_LABELS
            )

    def signed_out(self, request: web.Request, status: int = 401) -> web.Response:
        t = browser_translator(request)
        return page(
            "message.html",
            t,
            None,
            status=status,
            title=t._("Sign in"),
            lines=[
                t._("To open the dashboard, send /dashboard to the bot."),
                t._("It answers with a link that works once, for a few minutes."),
            ],
        )

    async def login_page(self, request: web.Request) -> web.Response:
        """The link itself changes nothing (a link preview may fetch it): a button signs in."""
        t = browser_translator(request)
        token = request.match_info["token"]
        async with session_scope(self.sessions) as session:
            link = await dashboard.peek_link(session, token, utcnow())
        if link is None:
            return expired(t)
        check = secrets.token_urlsafe(24)
        response = page("login.html", t, None, csrf=check, action=request.path)
        response.set_cookie(
            LOGIN_COOKIE,
            check,
            max_age=15 * 60,
            path=COOKIE_PATH,
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )
        return response

    async def login(self, request: web.Request) -> web.Response:
        t = browser_translator(request)
        form = await request.post()
        expected = request.cookies.get(LOGIN_COOKIE, "")
        if (
            not same_origin(request)
            or not expected
            or not token_matches(form.get("csrf"), expected)
        ):
            return forbidden(t, t._("This form has expired. Open the link from the bot again."))
        now = utcnow()
        async with session_scope(self.sessions) as session:
            person_id = await dashboard.redeem_link(session, request.match_info["token"], now)
            if person_id is None:
                return expired(t)
            secret, signed = await dashboard.open_session(
                session, person_id, now, self.session_length
            )
        response = web.HTTPSeeOther("/dashboard/")
        response.set_cookie(
            SESSION_COOKIE,
            secret,
            max_age=int(self.session_length.total_seconds()),
            path=COOKIE_PATH,
            httponly=True,
            samesite="Lax",
            secure=request.secure,
        )
        response.del_cookie(LOGIN_COOKIE, path=COOKIE_PATH)
        log.info("dashboard: person %s signed in until %s", person_id, signed.expires_at)
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        async with session_scope(self.sessions) as session:
            who = await viewer(session, request, self.admin_ids)
            form = await request.post()
            if who is not None and (
                not same_origin(request) or not token_matches(form.get("csrf"), who.csrf_token)
            ):
                t = Translator(who.person.locale)
                return forbidden(t, t._("This form has expired. Reload the page and try again."))
            secret = request.cookies.get(SESSION_COOKIE)
            if secret:
                await dashboard.close_session(session, secret)
        response = web.HTTPSeeOther("/dashboard/")
        response.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)
        raise response

    # --- a council's pages ----------------------------------------------------------------

    def council_page(
        self, handler: Handler, roles: frozenset[Role]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Check the session, the council and the role on every request, then render."""

        async def checked(request: web.Request) -> web.StreamResponse:
            async with session_scope(self.sessions) as session:
                who = await viewer(session, request, self.admin_ids)
                if who is None:
                    return self.signed_out(request)
                t = Translator(who.person.locale)
                council = await councils.by_slug(session, request.match_info["slug"])
                if council is None or not who.may(council, ORGANISING):
                    return forbidden(t, t._("This council's pages are not open to you."))
                if not who.may(council, roles):
                    return forbidden(t, t._("This page is for the council's coordinators."))
                if request.method == "POST":
                    form = await request.post()
                    if not same_origin(request) or not token_matches(
                        form.get("csrf"), who.csrf_token
                    ):
                        return forbidden(
                            t, t._("This form has expired. Reload the page and try again.")
                        )
                result = await handler(Visit(request, session, who, council, t))
                if isinstance(result, web.StreamResponse):
                    return result
                template, context = result
                return page(
                    template,
                    t,
                    who,
                    council=council,
                    sections=[
                        (name, t._(label))
                        for name, label, allowed in SECTIONS
                        if who.may(council, allowed)
                    ],
                    **context,
                )

        return checked

    async def overview(self, v: Visit) -> Rendered:
        now = utcnow()

        async def count(query: Any) -> int:
            return int(await v.session.scalar(query) or 0)

        figures = [
            (
                v.t._("Members"),
                await count(select(func.count()).where(Membership.council_id == v.council.id)),
            ),
            (
                v.t._("In the directory"),
                await count(select(func.count()).where(TalentProfile.council_id == v.council.id)),
            ),
            (
                v.t._("Open calls"),
                await count(
                    select(func.count()).where(
                        Call.council_id == v.council.id, Call.status == CallStatus.OPEN
                    )
                ),
            ),
            (
                v.t._("Meetings to come"),
                await count(
                    select(func.count()).where(
                        Meeting.council_id == v.council.id, Meeting.starts_at > now
                    )
                ),
            ),
            (
                v.t._("Open consultations"),
                await count(
                    select(func.count()).where(
                        Consultation.council_id == v.council.id,
                        Consultation.status == ConsultationStatus.OPEN,
                    )
                ),
            ),
        ]
        downloads = [
            (kind, v.t._(export.title))
            for kind, export in self.exports.items()
            if v.who.may(v.council, export.roles)
        ]
        return "overview.html", {"figures": figures, "exports": downloads}

    async def directory(self, v: Visit) -> Rendered:
        skills = list(await talents.skills(v.session, v.council.id))
        names = {skill.id: skill_label(skill, v.t) for skill in skills}
        query = v.request.query
        skill_id = _int(query.get("skill"))
        when = query.get("when", "")
        place = query.get("neighbourhood", "")
        page_number = max(0, _int(query.get("page")) or 0)
        criteria = talents.Criteria(
            council_id=v.council.id,
            skill_id=skill_id if skill_id in names else None,
            weekdays=when == "weekdays",
            evenings=when == "evenings",
            weekends=when == "weekends",
            neighbourhood=place if place in v.council.neighbourhoods else None,
        )
        total, found = await talents.search(v.session, criteria, page_number * PAGE_SIZE, PAGE_SIZE)
        people = [
            {
                "first_name": person.first_name,
                "skills": ", ".join(names[s] for s in person.skill_ids if s in names),
                "free": ", ".join(
                    v.t._(label) for key, label in AVAILABILITY.items() if getattr(person, key)
                ),
                "neighbourhood": person.neighbourhood or "",
            }
            for person in found
        ]
        capped = total > talents.COUNT_CAP
        found_line = (
            v.t._("More than {count} people found").format(count=v.t.number(talents.COUNT_CAP))
            if capped
            else v.t.ngettext("{count} person found", "{count} people found", total).format(
                count=v.t.number(total)
            )
        )
        filters = {
            "skill": criteria.skill_id,
            "when": when,
            "neighbourhood": criteria.neighbourhood,
        }
        more = (page_number + 1) * PAGE_SIZE < total or (capped and len(found) == PAGE_SIZE)
        return "directory.html", {
            "people": people,
            "found_line": found_line,
            "skills": sorted(names.items(), key=lambda item: item[1]),
            "availability": [(key, v.t._(label)) for key, label in AVAILABILITY.items()],
            "filters": filters,
            "page_number": page_number,
            "more": more,
            "query": {key: value for key, value in filters.items() if value},
        }

    async def calls(self, v: Visit) -> Rendered:
        rows = await talent_export.call_answers(v.session, v.council)
        found = list(
            await v.session.scalars(
                select(Call).where(Call.council_id == v.council.id).order_by(Call.id)
            )
        )
        listed = []
        for call, row in reversed(list(zip(found, rows, strict=True))):
            listed.append(
                {
                    "title": call.title,
                    "status": v.t._(STATUS_LABELS[call.status.value]),
                    "deadline": v.t.moment(call.deadline, v.council.timezone),
                    "needed": call.people_needed,
                    "answers": [
                        (v.t._(label), [name for name in (row.get(key) or "").split(", ") if name])
                        for key, label in CALL_ANSWER_LABELS.items()
                    ],
                }
            )
        return "calls.html", {"calls": listed}

    async def meetings(self, v: Visit) -> Rendered:
        exported = await meeting_export.meetings(v.session, v.council)
        by_id = {
            meeting.id: meeting
            for meeting in await v.session.scalars(
                select(Meeting).where(Meeting.council_id == v.council.id)
            )
        }
        listed = []
        for item in reversed(exported):
            meeting = by_id[item["meeting_id"]]
            groups: dict[str, list[dict[str, Any]]] = {key: [] for key in RSVP_LABELS}
            for answer in item["answers"]:
                if answer["answer"] in groups:
                    groups[answer["answer"]].append(answer)
            listed.append(
                {
                    "title": meeting.title,
                    "when": v.t.moment(meeting.starts_at, v.council.timezone),
                    "place": meeting.place,
                    "capacity": meeting.capacity,
                    "summary": meeting_service.counts_text(
                        v.t, await meeting_service.counts(v.session, meeting.id)
                    ),
                    "cancelled": item["status"] == "cancelled",
                    "groups": [(v.t._(RSVP_LABELS[key]), groups[key]) for key in RSVP_LABELS],
                    "attended": [a["first_name"] for a in item["answers"] if a["attended"]],
                    "started": meeting.starts_at <= utcnow(),
                }
            )
        return "meetings.html", {"meetings": listed, "needs_labels": meeting_service.NEEDS}

    async def consultations(self, v: Visit) -> Rendered:
        found = list(
            await v.session.scalars(
                select(Consultation)
                .where(Consultation.council_id == v.council.id)
                .order_by(Consultation.opens_at.desc(), Consultation.id.desc())
            )
        )
        listed = []
        for consultation in found:
            results = await results_of(v.session, v.council, consultation)
            charts = 0
            if results is not None:
                charts = sum(1 for q in results["questions"] if q["kind"] != "text")
            listed.append(
                {
                    "id": consultation.id,
                    "title": consultation.title,
                    "status": consultation.status.value,
                    "status_label": v.t._(STATUS_LABELS.get(consultation.status.value, N_("open"))),
                    "closes": v.t.moment(consultation.closes_at, v.council.timezone),
                    "summary": (
                        consultation_results.summary(
                            v.t,
                            consultation,
                            results,
                            consultation.status == ConsultationStatus.CLOSED,
                        )
                        if results is not None
                        else ""
                    ),
                    "charts": range(1, charts + 1),
                }
            )
        return "consultations.html", {"consultations": listed}

    async def chart(self, v: Visit) -> web.Response:
        consultation = await v.session.get(Consultation, int(v.request.match_info["id"]))
        if consultation is None or consultation.council_id != v.council.id:
            raise web.HTTPNotFound()
        results = await results_of(v.session, v.council, consultation)
        files = consultation_results.chart_files(v.t, results) if results is not None else []
        number = int(v.request.match_info["number"])
        if not 1 <= number <= len(files):
            raise web.HTTPNotFound()
        return web.Response(
            body=files[number - 1].content,
            content_type="image/png",
            headers={"Cache-Control": "no-store"},
        )

    async def broadcasts(self, v: Visit) -> Rendered:
        found = list(
            await v.session.scalars(
                select(Broadcast)
                .where(Broadcast.council_id == v.council.id)
                .order_by(Broadcast.id.desc())
                .limit(30)
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
        return "broadcasts.html", {"broadcasts": listed}

    async def stop_broadcast(self, v: Visit) -> web.Response:
        broadcast = await v.session.get(Broadcast, int(v.request.match_info["id"]))
        if broadcast is None or broadcast.council_id != v.council.id:
            raise web.HTTPNotFound()
        roles = {(v.council, role) for role in v.who.roles.get(v.council.id, frozenset())}
        await broadcasts.interrupt(v.session, broadcast.id, v.who.person, roles, v.who.is_admin)
        # Returned, not raised: an exception would roll the transaction back.
        return web.Response(
            status=303, headers={"Location": f"/dashboard/{v.council.slug}/broadcasts"}
        )

    async def members(self, v: Visit) -> Rendered:
        """Web chat members who do not count yet, for a coordinator who knows them to vouch."""
        found = await verified.unverified_members(v.session, v.council.id, MEMBERS_LISTED)
        listed = [
            {
                "id": member.person_id,
                "first_name": member.first_name or "—",
                "joined": v.t.day(member.joined_at, v.council.timezone, "long"),
            }
            for member in found
        ]
        done = v.request.query.get("verified", "")
        return "members.html", {
            "members": listed,
            "more": len(found) == MEMBERS_LISTED,
            "just_verified": done if done.isdigit() else "",
        }

    async def verify_member(self, v: Visit) -> web.Response:
        outcome = await verification.approve(v.session, v.council, int(v.request.match_info["id"]))
        if outcome is verification.Approved.NOT_FOUND:
            raise web.HTTPNotFound()
        log.info(
            "dashboard: person %s verified member %s of %s",
            v.who.person.id,
            v.request.match_info["id"],
            v.council.slug,
        )
        # Returned, not raised: an exception would roll the transaction back.
        return web.Response(
            status=303,
            headers={
                "Location": f"/dashboard/{v.council.slug}/members"
                f"?verified={v.request.match_info['id']}"
            },
        )

    async def export(self, v: Visit) -> web.Response:
        kind = v.request.match_info["kind"]
        export = self.exports.get(kind)
        if export is None:
            raise web.HTTPNotFound()
        if not v.who.may(v.council, export.roles):
            return forbidden(v.t, v.t._("This page is for the council's coordinators."))
        table = exports.rows(export, await exports.records(v.session, v.council, export))
        log.info("dashboard: person %s exported %s of %s", v.who.person.id, kind, v.council.slug)
        return web.Response(
            body=("\ufeff" + exports.csv_text(table, line_end="\r\n")).encode(),
            content_type="text/csv",
            charset="utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{v.council.slug}-{kind}.csv"',
                **HEADERS,
            },
        )


ROLE_LABELS = {Role.COORDINATOR: N_("coordinator"), Role.ORGANISER: N_("organiser")}


async def results_of(
    session: AsyncSession, council: Council, consultation: Consultation
) -> Mapping[str, Any] | None:
    """The figures: stored once closed, computed live while open, none before opening."""
    return await figures(session, consultation, council)


def _progress_text(
    t: Translator, counts: outbox.Counts, broadcast: Broadcast, council: Council
) -> str:
    return progress(
        t,
        counts,
        interrupted=broadcast.status == BroadcastStatus.INTERRUPTED,
        starts_at=broadcast.not_before if broadcast.not_before > utcnow() else None,
        timezone=council.timezone,
    )


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except ValueError:
        return None


def browser_translator(request: web.Request) -> Translator:
    return Translator(negotiate(first_language(request.headers.get("Accept-Language"))))


def page(
    template: str, t: Translator, who: Viewer | None, *, status: int = 200, **context: Any
) -> web.Response:
    body = TEMPLATES.get_template(template).render(
        _=t._,
        ngettext=t.ngettext,
        t=t,
        lang=t.locale,
        dir="rtl" if t.rtl else "ltr",
        who=who,
        **context,
    )
    return web.Response(text=body, content_type="text/html", status=status, headers=HEADERS)


def expired(t: Translator) -> web.Response:
    return page(
        "message.html",
        t,
        None,
        status=410,
        title=t._("This link has expired"),
        lines=[
            t._("A dashboard link works once, for a few minutes."),
            t._("Send /dashboard to the bot for a new one."),
        ],
    )


def forbidden(t: Translator, reason: str) -> web.Response:
    return page("message.html", t, None, status=403, title=t._("Not allowed"), lines=[reason])

"""The coordinators' dashboard: server-rendered pages per council, signed in by a
one-time link that the bot sends on /dashboard."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
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
from flows.engine import Attachment, Flow
from flows.i18n import N_, Translator, first_language, negotiate
from flows.registry import FLOWS
from flows.sections import DashboardSection, Page, Redirect, View, dashboard_sections
from flows.sections import Visit as SectionVisit
from flows.staff import ORGANISING
from storage.db import session_scope
from storage.models import Council, Membership, Role, utcnow
from storage.queries import councils, dashboard

log = logging.getLogger(__name__)

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("bot.dashboard", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

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
        # What the capabilities declare: their pages and their exports.
        self.sections = dashboard_sections(flows)
        self.exports = exports.available(flows)
        self.admin_ids = admin_ids
        self.session_length = timedelta(hours=session_hours)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/dashboard", self.to_home)
        app.router.add_get("/dashboard/", self.home)
        app.router.add_get("/dashboard/login/{token}", self.login_page)
        app.router.add_post("/dashboard/login/{token}", self.login)
        app.router.add_post("/dashboard/logout", self.logout)
        app.router.add_get("/dashboard/{slug}/", self.council_page(self.overview, ORGANISING))
        for section in self.sections:
            path = f"/dashboard/{{slug}}/{section.name}"
            app.router.add_get(path, self.council_page(shown(section, section.view), section.roles))
            for route in section.routes:
                handler = self.council_page(shown(section, route.view), section.roles)
                if route.method == "GET":  # and HEAD, as for every page
                    app.router.add_get(f"{path}/{route.path}", handler)
                else:
                    app.router.add_route(route.method, f"{path}/{route.path}", handler)
        app.router.add_get(
            "/dashboard/{slug}/export/{kind:[^/.]+}.{format:csv|xlsx}",
            self.council_page(self.export, ORGANISING),
        )

    # --- pages for everyone ---------------------------------------------------------------

    async def to_home(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/dashboard/")

    async def home(self, request: web.Request) -> web.Response:
        async with session_scope(self.sessions) as session:
            who = await viewer(session, request, self.admin_ids)
            if who is None:  # the landing page: how to sign in
                return self.signed_out(request, status=200)
            if len(who.councils) == 1:  # nothing to choose: straight to its overview
                raise web.HTTPFound(f"/dashboard/{who.councils[0].slug}/")
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
                        (section.name, t._(section.label))
                        for section in self.sections
                        if who.may(council, section.roles)
                    ],
                    **context,
                )

        return checked

    async def overview(self, v: Visit) -> Rendered:
        members = await v.session.scalar(
            select(func.count()).where(Membership.council_id == v.council.id)
        )
        figures = [(v.t._("Members"), int(members or 0))]
        for section in self.sections:
            if section.figures is not None:
                figures += [
                    (v.t._(figure.label), figure.value)
                    for figure in await section.figures(v.session, v.council)
                ]
        downloads = [
            (kind, v.t._(export.title))
            for kind, export in self.exports.items()
            if v.who.may(v.council, export.roles)
        ]
        return "overview.html", {"figures": figures, "exports": downloads}

    async def export(self, v: Visit) -> web.Response:
        """An export as a spreadsheet file (CSV or XLSX), in the council's language."""
        kind = v.request.match_info["kind"]
        format = exports.Format(v.request.match_info["format"])
        export = self.exports.get(kind)
        if export is None:
            raise web.HTTPNotFound()
        if not v.who.may(v.council, export.roles):
            return forbidden(v.t, v.t._("This page is for the council's coordinators."))
        exported = await exports.records(v.session, v.council, export)
        # Written in a worker thread: a large workbook would hold up every other request.
        content = await asyncio.to_thread(
            exports.file, export, exported, format, v.council.locale, v.council.timezone
        )
        log.info(
            "dashboard: person %s exported %s of %s as %s",
            v.who.person.id,
            kind,
            v.council.slug,
            format,
        )
        return web.Response(
            body=content,
            content_type=format.content_type,
            charset="utf-8" if format is exports.Format.CSV else None,
            headers={
                "Content-Disposition": (f'attachment; filename="{v.council.slug}-{kind}.{format}"'),
                **HEADERS,
            },
        )


ROLE_LABELS = {Role.COORDINATOR: N_("coordinator"), Role.ORGANISER: N_("organiser")}


def shown(section: DashboardSection, view: View) -> Handler:
    """A capability's view as one of the council's pages: what it gives is rendered here
    (a page in its template, a file, where to go after a form; nothing is "not found")."""

    async def handle(v: Visit) -> Rendered | web.StreamResponse:
        result = await view(
            SectionVisit(
                session=v.session,
                council=v.council,
                t=v.t,
                person=v.who.person,
                roles=v.who.roles.get(v.council.id, frozenset()),
                is_admin=v.who.is_admin,
                query=v.request.query,
                params=v.request.match_info,
            )
        )
        if result is None:
            raise web.HTTPNotFound()
        if isinstance(result, Attachment):
            return web.Response(
                body=result.content,
                content_type=result.mime_type,
                headers={"Cache-Control": "no-store"},
            )
        if isinstance(result, Redirect):
            # Returned, not raised: an exception would roll the transaction back.
            return web.Response(
                status=303, headers={"Location": f"/dashboard/{v.council.slug}/{result.to}"}
            )
        return _rendered(section, v.t, result)

    return handle


def _rendered(section: DashboardSection, t: Translator, page: Page) -> Rendered:
    if page.template is not None:
        return page.template, dict(page.context)
    return "section.html", {
        "current": section.name,
        "title": t._(section.label),
        "cards": page.cards,
        "empty": page.empty,
    }


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

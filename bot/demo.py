"""`coupdepouce demo`: a seeded demo council, the web chat and the dashboard, with no token
and no internet.

The council has its skills catalogue, a dozen residents in the directory, a meeting next
week and an open consultation with some answers. Its coordinator talks to the bot in the
web chat too: the address printed at start opens the chat as them.

Everyone in the demo talks in the web chat, where a member counts once verified. So that a
visitor takes part in everything (their answers count, calls that refuse unverified members
take theirs), the demo council vouches for its seeded people and for each visitor as they
join it, as a coordinator would; consultations keep their usual rule (verified only), which
the visitor can still see at work by creating one as the coordinator.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import CoupDePouce
from bot.settings import Settings
from flows.broadcasts.service import ReportTo
from flows.consultations import service as consultations
from flows.councils import create as create_council
from flows.dashboard.flow import LOGIN_PATH
from flows.engine import Flow, Reply
from flows.meetings import service as meetings
from flows.onboarding import service as onboarding
from flows.registry import FLOWS
from flows.talents import service as talents
from storage.db import create_engine, session_factory, session_scope
from storage.models import (
    Council,
    Person,
    QuestionKind,
    Role,
    Rsvp,
    utcnow,
)
from storage.queries import councils, dashboard, people, verified
from storage.queries import talents as skills

log = logging.getLogger(__name__)

DEMO_SLUG = "demo"
DEMO_NAME = "Conseil citoyen de démonstration"
NEIGHBOURHOODS = ["Nord", "Centre", "Gare"]
COORDINATOR_CHAT = "demo-coordinator"
CHANNEL = "web"


@dataclass(frozen=True)
class Resident:
    first_name: str
    locale: str
    skills: tuple[str, ...]
    neighbourhood: str
    weekdays: bool = False
    evenings: bool = False
    weekends: bool = False


RESIDENTS = (
    Resident("Aïcha", "fr", ("cooking", "childcare"), "Nord", evenings=True, weekends=True),
    Resident("Bruno", "fr", ("diy", "van"), "Centre", weekends=True),
    Resident("Chen", "en", ("it_help", "photo_video"), "Gare", evenings=True),
    Resident("Djamila", "ar", ("translation", "paperwork"), "Nord", weekdays=True),
    Resident("Élodie", "fr", ("music", "event_setup"), "Centre", weekends=True),
    Resident("Fatou", "fr", ("sewing", "cooking"), "Gare", weekdays=True, evenings=True),
    Resident("Gabriel", "fr", ("sport", "tutoring"), "Nord", evenings=True),
    Resident("Hamid", "ar", ("gardening", "diy"), "Gare", weekends=True),
    Resident("Inès", "fr", ("design", "photo_video"), "Centre", evenings=True),
    Resident("Jules", "en", ("tutoring", "it_help"), "Nord", weekdays=True),
    Resident("Karima", "fr", ("childcare", "paperwork"), "Centre", weekdays=True, weekends=True),
    Resident("Léo", "fr", ("van", "event_setup"), "Gare", weekends=True),
)
# Answers already given to the meeting: answer, people coming along, needs.
RSVPS: tuple[tuple[Rsvp, int, list[str]], ...] = (
    (Rsvp.COMING, 2, ["childcare"]),
    (Rsvp.COMING, 0, []),
    (Rsvp.MAYBE, 0, []),
    (Rsvp.COMING, 1, ["interpreting"]),
    (Rsvp.DECLINED, 0, []),
    (Rsvp.COMING, 0, ["access"]),
)
# Answers already given to the consultation: day (0 Saturday, 1 Sunday), interest 1 to 5.
ANSWERS = ((0, 5), (0, 4), (1, 3), (0, 5), (1, 4), (0, 2), (1, 5), (0, 4))


async def seed(settings: Settings) -> None:
    """Create the demo council and its people, meeting and consultation, unless it exists."""
    engine = create_engine(settings.database_url)
    try:
        async with session_scope(session_factory(engine)) as session:
            if await councils.by_slug(session, DEMO_SLUG) is None:
                await seed_council(session, utcnow())
                log.info("seeded the demo council %r", DEMO_SLUG)
    finally:
        await engine.dispose()


async def seed_council(session: AsyncSession, now: datetime) -> Council:
    council = await create_council(session, DEMO_SLUG, DEMO_NAME, neighbourhoods=NEIGHBOURHOODS)
    council.quiet_start = council.quiet_end = None  # a demo may be tried at any hour
    coordinator = await person(session, council, "Nadia", "fr", COORDINATOR_CHAT)
    await people.grant_role(session, council, CHANNEL, COORDINATOR_CHAT, Role.COORDINATOR)
    by_key = {skill.key: skill.id for skill in await skills.skills(session, council.id)}
    residents = []
    for number, resident in enumerate(RESIDENTS, start=1):
        someone = await person(
            session, council, resident.first_name, resident.locale, f"demo-resident-{number}"
        )
        residents.append(someone)
        await talents.save(
            session,
            council,
            someone.id,
            talents.Draft(
                skill_ids=[by_key[key] for key in resident.skills],
                weekdays=resident.weekdays,
                evenings=resident.evenings,
                weekends=resident.weekends,
                neighbourhood=resident.neighbourhood,
            ),
        )
    report_to = ReportTo(CHANNEL, COORDINATOR_CHAT, coordinator.locale)
    zone = ZoneInfo(council.timezone)
    day = (now.astimezone(zone) + timedelta(days=6)).date()
    starts = datetime.combine(day, time(18, 30), tzinfo=zone)
    _sent, meeting = await meetings.send(
        session,
        council,
        meetings.NewMeeting(
            title="Réunion publique : la fête de quartier",
            description="On prépare ensemble la fête de juin : programme, stands, bénévoles.",
            place="Maison de quartier, 12 rue des Lilas",
            starts_at=starts,
            ends_at=starts + timedelta(hours=2),
            capacity=40,
            rsvp_deadline=starts - timedelta(days=1),
        ),
        coordinator,
        report_to,
        now=now,
    )
    assert meeting is not None
    for someone, (answer, guests, needs) in zip(residents, RSVPS, strict=False):
        await meetings.respond(session, meeting.id, someone, answer, now=now)
        await meetings.set_guests(session, meeting.id, someone, guests, now=now)
        await meetings.set_needs(session, meeting.id, someone, needs)
    consultation = await consultations.create(
        session,
        council,
        consultations.NewConsultation(
            title="La fête de quartier",
            questions=[
                consultations.NewQuestion(
                    QuestionKind.SINGLE, "Quel jour préférez-vous ?", ["Samedi", "Dimanche"]
                ),
                consultations.NewQuestion(QuestionKind.SCALE, "Viendrez-vous ? (1 à 5)"),
                consultations.NewQuestion(QuestionKind.TEXT, "Une idée pour la fête ?"),
            ],
            opens_at=now,
            closes_at=now + timedelta(days=7),
            live_results=True,
        ),
        coordinator,
        report_to,
        now=now,
    )
    questions = await consultations.questions_of(session, consultation.id)
    for someone, (day_choice, interest) in zip(residents, ANSWERS, strict=False):
        ballot = await consultations.ballot_for(session, consultation, someone)
        await consultations.record(session, someone, ballot, questions[0], [day_choice])
        await consultations.record(session, someone, ballot, questions[1], [interest])
    return council


async def person(
    session: AsyncSession, council: Council, first_name: str, locale: str, chat_id: str
) -> Person:
    """A verified member of the council who talks to the bot in the web chat."""
    newcomer = onboarding.Newcomer(
        channel=CHANNEL, external_id=chat_id, first_name=first_name, username=None, locale=locale
    )
    someone = await onboarding.register(session, newcomer, council)
    await verified.vouch(session, someone.id, verified.By.COORDINATOR)
    return someone


async def vouch_for_visitors(
    session: AsyncSession, someone: Person, council: Council
) -> list[Reply]:
    """A visitor who joins the demo council is verified by it, so that they count."""
    if council.slug == DEMO_SLUG:
        await verified.vouch(session, someone.id, verified.By.COORDINATOR)
    return []


# The demo's flows: every capability, and the demo council's welcome of visitors.
DEMO_FLOWS: tuple[Flow, ...] = (*FLOWS, Flow(name="demo", on_join=vouch_for_visitors))


DASHBOARD_PATH = "/demo/dashboard"


def let_in_as_coordinator(app: CoupDePouce) -> None:
    """Whoever tries the demo may open the coordinator's chat at /chat/as/coordinator, and
    the coordinator's dashboard at /demo/dashboard: a fresh one-time sign-in link at each
    visit (one made at start would expire while the demo runs)."""
    app.webchat.open_as["coordinator"] = COORDINATOR_CHAT

    async def dashboard_link(_request: web.Request) -> web.Response:
        raise web.HTTPFound(await coordinator_link(app))

    def add_route(web_app: web.Application) -> None:
        web_app.router.add_get(DASHBOARD_PATH, dashboard_link)

    app.extra_routes.append(add_route)


async def coordinator_link(app: CoupDePouce) -> str:
    """A one-time dashboard link for the demo's coordinator."""
    async with session_scope(app.sessions) as session:
        found = await people.person_by_identity(session, CHANNEL, COORDINATOR_CHAT)
        if found is None:
            return f"{app.public_url}/dashboard/"
        token = await dashboard.create_link(
            session,
            found.id,
            utcnow(),
            timedelta(minutes=app.settings.dashboard_link_minutes),
        )
    return f"{app.public_url}{LOGIN_PATH}{token}"


async def run_demo(settings: Settings) -> None:
    """Seed, then serve the web chat and the dashboard until interrupted."""
    await seed(settings)
    app = CoupDePouce(settings, flows=DEMO_FLOWS, telegram=False)
    let_in_as_coordinator(app)

    async def announce() -> None:
        base = app.public_url
        print(
            "Coup de pouce demo (Ctrl+C to stop)\n"
            f"  as a resident:       {base}/?start={DEMO_SLUG}\n"
            f"  as the coordinator:  {base}/chat/as/coordinator\n"
            f"  dashboard:           {base}{DASHBOARD_PATH}",
            flush=True,
        )

    await app.serve_forever(on_started=announce)

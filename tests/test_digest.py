"""The periodic digest: once a week (or as the council says), one short message to the
council's group with new directory members, calls for help, meetings coming up with their
answers and consultations — counts and titles, never a name; posted once per period, on
time, and not at all when there is nothing to tell."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import CoupDePouce
from flows.calls import digest as calls_digest
from flows.consultations import service as consultations
from flows.councils import create as create_council
from flows.digest import service
from flows.i18n import Translator
from flows.registry import FLOWS
from storage.models import (
    Answer,
    Call,
    CallAnswer,
    CallStatus,
    Consultation,
    ConsultationStatus,
    Council,
    Meeting,
    MeetingInvite,
    MeetingStatus,
    OutboxMessage,
    Person,
    Question,
    QuestionKind,
    Rsvp,
    TalentProfile,
    utcnow,
)
from tests.conftest import in_transaction
from tests.emulator import BotApiEmulator, FakeGroup, SentMessage
from tests.factories import add_residents
from tests.helpers import EN, FR
from tests.test_talents import coordinator_of

PARIS = ZoneInfo("Europe/Paris")
NADIA = 63_001  # the coordinator who registers the group
RESIDENTS = [63_101, 63_102, 63_103, 63_104, 63_105]
OUTSIDERS = [63_201, 63_202]  # residents of another council
GROUP = -1_006_300
DIGESTS = service.job(FLOWS)  # as the application schedules it


def text_of(message: SentMessage) -> str:
    return message.plain_text or ""


async def set_council(app: CoupDePouce, council_id: int, **values: Any) -> None:
    await in_transaction(
        app, lambda s: s.execute(update(Council).where(Council.id == council_id).values(**values))
    )


async def schedule_of(app: CoupDePouce, council_id: int) -> tuple[datetime | None, datetime | None]:
    """The council's next and last digest."""

    async def run(session: AsyncSession) -> tuple[datetime | None, datetime | None]:
        found = await session.get_one(Council, council_id)
        return found.next_digest_at, found.last_digest_at

    result: tuple[datetime | None, datetime | None] = await in_transaction(app, run)
    return result


async def digests_queued(app: CoupDePouce) -> list[str]:
    rows = await in_transaction(
        app,
        lambda s: s.scalars(
            select(OutboxMessage.payload)
            .where(OutboxMessage.idempotency_key.like("digest:%"))
            .order_by(OutboxMessage.id)
        ),
    )
    return [str(payload["text"]) for payload in rows]


async def register(
    app: CoupDePouce, emulator: BotApiEmulator, council: Council, t: Translator = EN
) -> FakeGroup:
    """A coordinator sends /register in the group; the group gets the confirmation in the
    council's language `t`."""
    nadia = await coordinator_of(app, emulator, council, NADIA)
    group = emulator.group(GROUP, title="Conseil citoyen")
    group.send(nadia, "/register")
    await emulator.wait_until(lambda: group.inbox or None)
    assert text_of(group.inbox[-1]) == t._(
        "This group now receives the results of {council}'s consultations and its digest."
    ).format(council=council.name)
    return group


def short(t: Translator, moment: datetime) -> str:
    """A deadline as the digest writes it: "Fri, Dec 12 at 6:00 PM"."""
    return t._("{date} at {time}").format(
        date=t.day_label(moment.astimezone(PARIS).date()), time=t.hour(moment, "Europe/Paris")
    )


def at(day: datetime, hour: int) -> datetime:
    """That day (in Paris) at that hour, as a UTC time."""
    local = datetime.combine(day.astimezone(PARIS).date(), time(hour), tzinfo=PARIS)
    return local.astimezone(ZoneInfo("UTC"))


class Seeded:
    """What `seed_activity` made, for the expectations."""

    call_deadline: datetime
    meeting_start: datetime
    party_start: datetime
    consultation_closes: datetime
    call_id: int
    consultation_id: int


async def seed_activity(app: CoupDePouce, council_id: int, due: datetime) -> Seeded:
    """A week of activity before `due`: two new directory members, a call for help with
    answers, a meeting with answers (and one three weeks ahead, one cancelled), and a
    consultation that opened with a few answers."""
    seeded = Seeded()
    seeded.call_deadline = at(due + timedelta(days=5), 18)
    seeded.meeting_start = at(due + timedelta(days=3), 14)
    seeded.party_start = at(due + timedelta(days=20), 18)
    seeded.consultation_closes = at(due + timedelta(days=2), 18)

    async def seed(session: AsyncSession) -> None:
        council = await session.get_one(Council, council_id)
        people = await add_residents(session, council, RESIDENTS, ["en"])
        anna, bob, chloe, david, eva = people
        for person in (anna, bob):
            session.add(TalentProfile(council_id=council_id, person_id=person.id))
        call = Call(
            council_id=council_id,
            title="Repas solidaire",
            description="Cuisiner pour la fête",
            skill_ids=[],
            needed_when="samedi",
            people_needed=3,
            deadline=seeded.call_deadline,
            status=CallStatus.OPEN,
        )
        session.add(call)
        await session.flush()
        seeded.call_id = call.id
        for person, said in (
            (anna, Answer.YES),
            (bob, Answer.YES),
            (chloe, Answer.MAYBE),
            (david, Answer.NO),
        ):
            session.add(CallAnswer(call_id=call.id, person_id=person.id, answer=said))
        meetings = {
            "Assemblée de quartier": (seeded.meeting_start, MeetingStatus.SCHEDULED),
            "Fête des voisins": (seeded.party_start, MeetingStatus.SCHEDULED),
            "Réunion annulée": (at(due + timedelta(days=4), 18), MeetingStatus.CANCELLED),
        }
        for index, (title, (starts, status)) in enumerate(meetings.items()):
            meeting = Meeting(
                council_id=council_id,
                uid=f"digest-{index}@test",
                title=title,
                place="Maison de quartier",
                starts_at=starts,
                ends_at=starts + timedelta(hours=2),
                status=status,
                reminder_hours=[],
                skill_ids=[],
            )
            session.add(meeting)
            await session.flush()
            for person, rsvp, guests in (
                (anna, Rsvp.COMING, 1),
                (bob, Rsvp.COMING, 0),
                (chloe, Rsvp.MAYBE, 0),
                (david, Rsvp.DECLINED, 0),
                (eva, Rsvp.INVITED, 0),
            ):
                session.add(
                    MeetingInvite(
                        meeting_id=meeting.id, person_id=person.id, rsvp=rsvp, guests=guests
                    )
                )
        consultation = Consultation(
            council_id=council_id,
            title="Le square Pasteur",
            opens_at=utcnow(),
            opened_at=utcnow(),
            closes_at=seeded.consultation_closes,
            status=ConsultationStatus.OPEN,
            audience_size=5,
            ballot_key=b"k" * 32,
        )
        session.add(consultation)
        await session.flush()
        seeded.consultation_id = consultation.id
        question = Question(
            consultation_id=consultation.id,
            position=1,
            kind=QuestionKind.SINGLE,
            text="Que faire du square ?",
            options=["Un jardin", "Des bancs"],
        )
        session.add(question)
        await session.flush()
        for person, option in ((anna, 0), (bob, 1), (chloe, 0), (david, None)):
            ballot = await consultations.ballot_for(session, consultation, person)
            # David opened it and answered nothing: not counted.
            chosen = [] if option is None else [option]
            await consultations.record(session, person, ballot, question, chosen)

    await in_transaction(app, seed)
    return seeded


async def seed_elsewhere(app: CoupDePouce) -> int:
    """Another council, without a group, with its own new member and call."""

    async def seed(session: AsyncSession) -> int:
        other = await create_council(session, "quartier-sud", "Conseil citoyen Quartier Sud")
        other.locale = "en"
        people = await add_residents(session, other, OUTSIDERS, ["en"])
        session.add(TalentProfile(council_id=other.id, person_id=people[0].id))
        session.add(
            Call(
                council_id=other.id,
                title="Jardin de la gare",
                description="Planter",
                skill_ids=[],
                needed_when="dimanche",
                people_needed=2,
                deadline=utcnow() + timedelta(days=10),
                status=CallStatus.OPEN,
            )
        )
        return other.id

    other_id: int = await in_transaction(app, seed)
    return other_id


async def test_the_group_gets_one_digest_a_week_with_the_figures(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await set_council(bot, council.id, locale="en")
    registered_at = utcnow()
    group = await register(bot, emulator, council)
    due, last = await schedule_of(bot, council.id)
    assert due is not None and last is None
    assert timedelta(days=7) <= due - registered_at < timedelta(days=7, minutes=1)

    seeded = await seed_activity(bot, council.id, due)
    other_id = await seed_elsewhere(bot)
    await set_council(bot, other_id, next_digest_at=due - timedelta(days=1))

    # Not before its time.
    assert await bot.scheduler.tick(DIGESTS, due - timedelta(minutes=1)) == 0
    assert await digests_queued(bot) == []

    assert await bot.scheduler.tick(DIGESTS, due) == 1
    assert await bot.scheduler.tick(DIGESTS, due) == 0  # never twice
    assert await bot.scheduler.tick(DIGESTS, due + timedelta(minutes=5)) == 0
    assert len(await digests_queued(bot)) == 1
    assert await schedule_of(bot, council.id) == (due + timedelta(days=7), due)

    digest = await emulator.wait_until(lambda: group.inbox[1] if len(group.inbox) > 1 else None)
    assert text_of(digest) == "\n".join(
        [
            "📰 News of the week — Conseil citoyen Quartier Nord",
            "",
            "🌱 2 new people in the talent directory",
            "",
            "🤝 Calls for help",
            f"• “Repas solidaire”: 2 can help, 1 maybe, until {short(EN, seeded.call_deadline)}",
            "",
            "📅 Upcoming meetings",
            f"• “Assemblée de quartier”, {EN.moment(seeded.meeting_start, 'Europe/Paris')}",
            "  2 coming (+1 guest), 1 maybe",
            "",
            "📝 Consultations",
            "• 🆕 “Le square Pasteur”: 3 answers, until " + short(EN, seeded.consultation_closes),
        ]
    )
    assert digest.buttons == []
    for name in ("Habitant", "Nadia"):  # a group chat: counts and titles, no names
        assert name not in text_of(digest)
    assert "Jardin de la gare" not in text_of(digest)  # another council's call
    assert await schedule_of(bot, other_id) == (due - timedelta(days=1), None)  # no group

    # A week later: what happened in between, and nothing of what was already told.
    second = due + timedelta(days=7)

    async def a_week_passes(session: AsyncSession) -> None:
        chloe = await session.scalar(select(Person).where(Person.first_name == "Habitant 63103"))
        assert chloe is not None
        joined = due + timedelta(days=1)
        session.add(TalentProfile(council_id=council.id, person_id=chloe.id, created_at=joined))
        await session.execute(
            update(Call)
            .where(Call.id == seeded.call_id)
            .values(status=CallStatus.CLOSED, closed_at=due + timedelta(days=5))
        )
        await session.execute(
            update(Consultation)
            .where(Consultation.id == seeded.consultation_id)
            .values(
                status=ConsultationStatus.CLOSED,
                closed_at=due + timedelta(days=2),
                results={"respondents": 3, "audience": 4, "questions": []},
            )
        )

    await in_transaction(bot, a_week_passes)
    assert await bot.scheduler.tick(DIGESTS, second - timedelta(minutes=1)) == 0
    assert await bot.scheduler.tick(DIGESTS, second) == 1
    assert await bot.scheduler.tick(DIGESTS, second) == 0
    later = await emulator.wait_until(
        lambda: group.inbox[2] if len(group.inbox) > 2 else None, timeout=20
    )
    assert text_of(later) == "\n".join(
        [
            "📰 News of the week — Conseil citoyen Quartier Nord",
            "",
            "🌱 1 new person in the talent directory",
            "",
            "🤝 Calls for help",
            "• “Repas solidaire” closed: 2 could help",
            "",
            "📅 Upcoming meetings",  # now less than two weeks away
            f"• “Fête des voisins”, {EN.moment(seeded.party_start, 'Europe/Paris')}",
            "  2 coming (+1 guest), 1 maybe",
            "",
            "📝 Consultations",
            "• “Le square Pasteur” closed: 3 of 4 answered (75%)",
        ]
    )
    assert await schedule_of(bot, council.id) == (second + timedelta(days=7), second)

    # The week after, nothing happened: nothing is posted, and the schedule moves on.
    third = second + timedelta(days=7)
    assert await bot.scheduler.tick(DIGESTS, third) == 0
    assert await schedule_of(bot, council.id) == (third + timedelta(days=7), third)
    assert len(await digests_queued(bot)) == 2
    assert len(group.inbox) == 3


async def test_nothing_new_nothing_posted(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await set_council(bot, council.id, locale="en")
    group = await register(bot, emulator, council)
    due, _ = await schedule_of(bot, council.id)
    assert due is not None
    previous = due - timedelta(days=7)  # as if a digest had gone out a week ago
    await set_council(bot, council.id, last_digest_at=previous)
    before = previous - timedelta(days=1)
    call_deadline = at(due + timedelta(days=10), 18)

    async def old_news(session: AsyncSession) -> list[int]:
        """All told last time: a member who joined, a call and a consultation that closed, a
        call still open and a meeting in a few days, neither answered since."""
        stored = await session.get_one(Council, council.id)
        anna, bob, chloe = await add_residents(session, stored, RESIDENTS[:3], ["en"])
        session.add(TalentProfile(council_id=council.id, person_id=anna.id, created_at=before))
        closed = Call(
            council_id=council.id,
            title="Déménagement",
            description="Porter des cartons",
            skill_ids=[],
            needed_when="",
            people_needed=2,
            deadline=before,
            status=CallStatus.CLOSED,
            closed_at=before,
            created_at=before - timedelta(days=7),
        )
        still_open = Call(
            council_id=council.id,
            title="Repas solidaire",
            description="Cuisiner",
            skill_ids=[],
            needed_when="",
            people_needed=3,
            deadline=call_deadline,
            status=CallStatus.OPEN,
            created_at=before,
        )
        meeting = Meeting(
            council_id=council.id,
            uid="digest-old@test",
            title="Assemblée de quartier",
            place="Maison de quartier",
            starts_at=at(due + timedelta(days=3), 14),
            ends_at=at(due + timedelta(days=3), 16),
            reminder_hours=[],
            skill_ids=[],
            created_at=before,
        )
        session.add_all([closed, still_open, meeting])
        await session.flush()
        session.add(
            CallAnswer(
                call_id=still_open.id, person_id=anna.id, answer=Answer.YES, answered_at=before
            )
        )
        session.add(
            MeetingInvite(
                meeting_id=meeting.id, person_id=anna.id, rsvp=Rsvp.COMING, answered_at=before
            )
        )
        session.add(
            Consultation(
                council_id=council.id,
                title="Les poubelles",
                opens_at=before - timedelta(days=7),
                opened_at=before - timedelta(days=7),
                closes_at=before,
                closed_at=before,
                status=ConsultationStatus.CLOSED,
            )
        )
        return [still_open.id, bob.id, chloe.id]

    call_id, bob_id, chloe_id = await in_transaction(bot, old_news)
    assert await bot.scheduler.tick(DIGESTS, due) == 0
    assert await schedule_of(bot, council.id) == (due + timedelta(days=7), due)
    assert await digests_queued(bot) == []

    # In the week that follows, two more answers to the open call: worth a digest.
    async def answers(session: AsyncSession) -> None:
        later = due + timedelta(days=1)
        for person_id, said in ((bob_id, Answer.YES), (chloe_id, Answer.MAYBE)):
            session.add(
                CallAnswer(call_id=call_id, person_id=person_id, answer=said, answered_at=later)
            )

    await in_transaction(bot, answers)
    second = due + timedelta(days=7)
    assert await bot.scheduler.tick(DIGESTS, second) == 1
    digest = await emulator.wait_until(
        lambda: group.inbox[1] if len(group.inbox) > 1 else None, timeout=20
    )
    assert text_of(digest) == "\n".join(
        [
            "📰 News of the week — Conseil citoyen Quartier Nord",
            "",
            "🤝 Calls for help",
            f"• “Repas solidaire”: 2 can help, 1 maybe, until {short(EN, call_deadline)}",
        ]
    )


async def test_no_digest_when_the_council_turned_it_off(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await set_council(bot, council.id, locale="en", digest_days=0)
    group = await register(bot, emulator, council)
    assert await schedule_of(bot, council.id) == (None, None)
    now = utcnow()
    await seed_activity(bot, council.id, now)
    for days in (7, 8, 30):
        assert await bot.scheduler.tick(DIGESTS, now + timedelta(days=days)) == 0
    assert await schedule_of(bot, council.id) == (None, None)

    # Turned off while a digest was planned: none either.
    await set_council(bot, council.id, digest_days=0, next_digest_at=now + timedelta(days=1))
    assert await bot.scheduler.tick(DIGESTS, now + timedelta(days=2)) == 0
    assert await digests_queued(bot) == []

    # Turned on again, every 3 days: the first comes one period after it was noticed.
    await set_council(bot, council.id, digest_days=3, next_digest_at=None)
    assert await bot.scheduler.tick(DIGESTS, now) == 0
    assert await schedule_of(bot, council.id) == (now + timedelta(days=3), None)
    assert await bot.scheduler.tick(DIGESTS, now + timedelta(days=3)) == 1
    digest = await emulator.wait_until(
        lambda: group.inbox[1] if len(group.inbox) > 1 else None, timeout=20
    )
    assert text_of(digest).startswith(
        "📰 News of the last 3 days — Conseil citoyen Quartier Nord\n\n"
        "🌱 2 new people in the talent directory"
    )


async def test_no_digest_without_a_group(bot: CoupDePouce, council: Council) -> None:
    now = utcnow()
    await seed_activity(bot, council.id, now)
    other_id = await seed_elsewhere(bot)
    for council_id in (council.id, other_id):
        await set_council(bot, council_id, next_digest_at=now - timedelta(days=1))
    assert await bot.scheduler.tick(DIGESTS, now) == 0
    assert await bot.scheduler.tick(DIGESTS, now + timedelta(days=7)) == 0
    assert await digests_queued(bot) == []
    count = await in_transaction(
        bot, lambda s: s.scalar(select(func.count()).where(Council.last_digest_at.is_not(None)))
    )
    assert count == 0


async def test_a_digest_due_at_night_waits_for_the_morning(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    await set_council(bot, council.id, locale="en", quiet_start=time(21), quiet_end=time(8))
    group = await register(bot, emulator, council)
    night = at(utcnow() + timedelta(days=3), 23)
    morning = at(night + timedelta(days=1), 8)
    await set_council(bot, council.id, next_digest_at=night)
    await seed_activity(bot, council.id, night)

    assert await bot.scheduler.tick(DIGESTS, night) == 0
    assert await schedule_of(bot, council.id) == (morning, None)
    assert await bot.scheduler.tick(DIGESTS, morning - timedelta(minutes=1)) == 0
    assert await bot.scheduler.tick(DIGESTS, morning) == 1
    assert await schedule_of(bot, council.id) == (morning + timedelta(days=7), morning)
    digest = await emulator.wait_until(
        lambda: group.inbox[1] if len(group.inbox) > 1 else None, timeout=20
    )
    assert "🌱 2 new people in the talent directory" in text_of(digest)


async def test_the_digest_is_in_the_councils_language(
    bot: CoupDePouce, emulator: BotApiEmulator, council: Council
) -> None:
    group = await register(bot, emulator, council, FR)  # quartier-nord speaks French
    due, _ = await schedule_of(bot, council.id)
    assert due is not None
    seeded = await seed_activity(bot, council.id, due)
    assert await bot.scheduler.tick(DIGESTS, due) == 1
    digest = await emulator.wait_until(
        lambda: group.inbox[1] if len(group.inbox) > 1 else None, timeout=20
    )
    text = text_of(digest)
    assert FR.moment(seeded.meeting_start, "Europe/Paris") in text
    assert short(FR, seeded.call_deadline) in text
    assert FR.ngettext("{count} coming", "{count} coming", 2).format(count="2") in text
    assert FR.ngettext("{count} can help", "{count} can help", 2).format(count="2") in text


def test_long_lists_are_cut_short() -> None:
    """Five of each kind at most, and how many more."""
    now = utcnow()
    council = Council(name="Conseil citoyen Quartier Nord", timezone="Europe/Paris", digest_days=7)
    news = calls_digest.CallNews(
        open=[
            calls_digest.OpenCall(f"Appel {n}", now + timedelta(days=n), n, 0, fresh=True)
            for n in range(1, 9)
        ]
    )
    lines = service.write(EN, council, [(calls_digest.SECTION, news)]).splitlines()
    assert lines[:4] == [
        "📰 News of the week — Conseil citoyen Quartier Nord",
        "",
        "🤝 Calls for help",
        f"• “Appel 1”: 1 can help, 0 maybe, until {short(EN, now + timedelta(days=1))}",
    ]
    assert len([line for line in lines if line.startswith("• ")]) == 5
    assert lines[-1] == "  …and 3 more"

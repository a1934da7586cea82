"""Consultations: who is asked, answers saved one by one, and closing with results.

Each answer is written as it is given (nothing is lost if the resident stops half-way).
At closing the scheduler computes the figures once and keeps them on the consultation.

An anonymous consultation is anonymous by design, not cut loose at closing: its ballots
never hold a person. While it is open, a ballot is found again (to change answers) by its
`voter`, a keyed hash of the person under a key of the consultation's own; who took part is
kept apart, with nothing that joins a ballot. At closing the key and the voters are erased,
and who took part and the answers are written again in an order that is not the order in
which people answered: from then on nothing in the database ties an answer to a person.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    delete,
    func,
    insert,
    not_,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from flows.broadcasts import service as broadcasts
from flows.calls import service as calls
from flows.consultations.buttons import AnswerButton
from flows.engine import Choice, Notice, NoticeKind, Reply
from flows.i18n import Translator
from flows.scheduling import each_due, not_failed
from storage.models import (
    Ballot,
    Consultation,
    ConsultationStatus,
    Council,
    Membership,
    Participant,
    Person,
    PersonStatus,
    Question,
    QuestionKind,
    Response,
    TalentProfile,
    random_id,
    utcnow,
)
from storage.queries import verified
from storage.queries.consultations import consultation_for_update

MAX_QUESTIONS = 5
MAX_OPTIONS = 8
TEXT_LIMIT = 300
SCALE = (1, 2, 3, 4, 5)
OPEN_JOB = "open-consultations"
CLOSE_JOB = "close-consultations"


class Audience(enum.StrEnum):
    ALL = "all"
    NEIGHBOURHOOD = "neighbourhood"
    SKILLS = "skills"


@dataclass(frozen=True)
class NewQuestion:
    kind: QuestionKind
    text: str
    options: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class NewConsultation:
    title: str
    questions: list[NewQuestion]
    opens_at: datetime
    closes_at: datetime
    audience: Audience = Audience.ALL
    neighbourhood: str | None = None
    skill_ids: list[int] = field(default_factory=list)
    anonymous: bool = True
    live_results: bool = False
    counts_unverified: bool = False  # by default only verified members' answers count


def neighbourhood_of_member() -> ColumnElement[Any]:
    """A member's neighbourhood: what they told a consultation, else their directory profile."""
    from_profile = (
        select(TalentProfile.neighbourhood)
        .where(
            TalentProfile.person_id == Membership.person_id,
            TalentProfile.council_id == Membership.council_id,
        )
        .scalar_subquery()
    )
    return func.coalesce(Membership.neighbourhood, from_profile)


def audience(
    council: Council, audience_kind: str, neighbourhood: str | None, skills: list[int]
) -> Select[int]:
    """Who is asked."""
    if audience_kind == Audience.SKILLS and skills:
        return calls.audience(council, skills, [])
    members = broadcasts.members(council)
    if audience_kind == Audience.NEIGHBOURHOOD and neighbourhood:
        return members.where(neighbourhood_of_member() == neighbourhood)
    return members


def audience_of(council: Council, consultation: Consultation) -> Select[int]:
    return audience(
        council, consultation.audience, consultation.neighbourhood, consultation.skill_ids
    )


async def reach(session: AsyncSession, council: Council, new: NewConsultation) -> int:
    who = audience(council, new.audience, new.neighbourhood, new.skill_ids)
    return await broadcasts.audience_size(session, who)


# --- creating and opening ----------------------------------------------------------------------


async def create(
    session: AsyncSession,
    council: Council,
    new: NewConsultation,
    organiser: Person | None,
    report_to: broadcasts.ReportTo,
    now: datetime | None = None,
) -> Consultation:
    """Record the consultation; it opens now (the invitations go out) or at its time."""
    now = now or utcnow()
    consultation = Consultation(
        council_id=council.id,
        created_by=organiser.id if organiser else None,
        organiser_channel=report_to.channel,
        organiser_chat=report_to.chat_id,
        organiser_locale=report_to.locale,
        title=new.title,
        anonymous=new.anonymous,
        live_results=new.live_results,
        counts_unverified=new.counts_unverified,
        audience=new.audience.value,
        neighbourhood=new.neighbourhood,
        skill_ids=list(new.skill_ids),
        opens_at=max(new.opens_at, now),
        closes_at=new.closes_at,
        status=ConsultationStatus.SCHEDULED,
        audience_size=0,
        ballot_key=secrets.token_bytes(32) if new.anonymous else None,
    )
    session.add(consultation)
    await session.flush()
    for position, question in enumerate(new.questions[:MAX_QUESTIONS]):
        session.add(
            Question(
                consultation_id=consultation.id,
                position=position,
                kind=question.kind,
                text=question.text,
                options=list(question.options[:MAX_OPTIONS]),
            )
        )
    await session.flush()
    if consultation.opens_at <= now:
        await open_consultation(session, consultation, council, organiser)
    return consultation


def invitation(council: Council, consultation: Consultation, questions: int) -> broadcasts.Render:
    def render(t: Translator) -> Reply:
        lines = [
            "📝 " + t._("Your opinion — {council}").format(council=council.name),
            "",
            consultation.title,
            "",
            t.ngettext(
                "{count} question, about a minute.",
                "{count} questions, about a minute.",
                questions,
            ).format(count=t.number(questions)),
            t._("Answer by {date}.").format(
                date=t.moment(consultation.closes_at, council.timezone)
            ),
        ]
        if consultation.anonymous:
            lines.append(t._("Your answers are anonymous."))
        button = Choice("✏️ " + t._("Answer"), AnswerButton(consultation.id).pack())
        about = Notice(
            NoticeKind.CONSULTATION, t.locale, council=council.name, title=consultation.title
        )
        return Reply("\n".join(lines), ((button,),), notice=about)

    return render


async def questions_of(session: AsyncSession, consultation_id: int) -> list[Question]:
    found = await session.scalars(
        select(Question)
        .where(Question.consultation_id == consultation_id)
        .order_by(Question.position)
    )
    return list(found)


async def open_consultation(
    session: AsyncSession,
    consultation: Consultation,
    council: Council,
    organiser: Person | None = None,
    now: datetime | None = None,
) -> None:
    """Send the invitations to the audience, in each person's language."""
    questions = await questions_of(session, consultation.id)
    report_to = None
    if consultation.organiser_chat and consultation.organiser_channel:
        report_to = broadcasts.ReportTo(
            consultation.organiser_channel,
            consultation.organiser_chat,
            consultation.organiser_locale,
        )
    broadcast = await broadcasts.start_broadcast(
        session,
        council=council,
        kind="consultation",
        subject=f"consultation:{consultation.id}",
        audience=audience_of(council, consultation),
        render=invitation(council, consultation, len(questions)),
        started_by=organiser,
        report_to=report_to,
    )
    consultation.broadcast_id = broadcast.id
    consultation.audience_size = broadcast.audience_size
    consultation.status = ConsultationStatus.OPEN
    consultation.opened_at = now or utcnow()


async def open_due(session: AsyncSession, now: datetime) -> int:
    """The scheduler's tick: open the consultations whose time came (each by one process)."""
    due = await session.scalars(
        select(Consultation)
        .where(
            Consultation.status == ConsultationStatus.SCHEDULED,
            Consultation.opens_at <= now,
            not_failed(OPEN_JOB, Consultation.id),
        )
        .limit(20)
        .with_for_update(skip_locked=True)
    )

    async def work(consultation: Consultation) -> bool:
        council = await session.get_one(Council, consultation.council_id)
        if consultation.closes_at <= now:  # its whole time passed while the bot was down
            consultation.status = ConsultationStatus.CLOSED
            consultation.closed_at = now
            return False
        await open_consultation(session, consultation, council, now=now)
        return True

    return await each_due(session, OPEN_JOB, due, work, now=now)


# --- answering ---------------------------------------------------------------------------------


class Opened(enum.Enum):
    OK = "ok"
    CLOSED = "closed"
    NOT_YET = "not_yet"
    NOT_ALLOWED = "not_allowed"


async def is_open(consultation: Consultation, now: datetime | None = None) -> Opened:
    now = now or utcnow()
    if consultation.status == ConsultationStatus.SCHEDULED:
        return Opened.NOT_YET
    if consultation.status == ConsultationStatus.CLOSED or now >= consultation.closes_at:
        return Opened.CLOSED
    return Opened.OK


async def may_answer(session: AsyncSession, consultation: Consultation, person: Person) -> bool:
    """Only the people the consultation was sent to: in its audience, and members since it
    opened, or asked on joining (checked again at each tap: buttons can be forged or passed
    on)."""
    council = await session.get_one(Council, consultation.council_id)
    who = audience_of(council, consultation).subquery()
    found = await session.scalar(select(who.c[0]).where(who.c[0] == person.id).limit(1))
    if found is None:
        return False
    joined = await session.scalar(
        select(Membership.joined_at).where(
            Membership.person_id == person.id, Membership.council_id == council.id
        )
    )
    opened = consultation.opened_at or consultation.opens_at
    # Those who joined since were asked on joining when it is asked of every member.
    return joined is not None and (joined <= opened or consultation.audience == Audience.ALL)


def voter_of(consultation: Consultation, person_id: int) -> str:
    """Who a person is on an open anonymous consultation's ballots: a keyed hash that the
    consultation's key alone turns back into them (erased at closing)."""
    assert consultation.ballot_key is not None, "an open anonymous consultation has its key"
    return hmac.new(consultation.ballot_key, str(person_id).encode(), hashlib.sha256).hexdigest()


def ballot_of(consultation: Consultation, person_id: int) -> ColumnElement[bool]:
    """The condition that finds a person's ballot: by person if named, by voter if not."""
    if consultation.anonymous:
        return and_(
            Ballot.consultation_id == consultation.id,
            Ballot.voter == voter_of(consultation, person_id),
        )
    return and_(Ballot.consultation_id == consultation.id, Ballot.person_id == person_id)


async def ballot_for(session: AsyncSession, consultation: Consultation, person: Person) -> Ballot:
    """The person's ballot, made at their first answer, with their neighbourhood and whether
    they count as a verified member now (read with the ballot, in the same query)."""
    found = (
        await session.execute(
            select(Ballot, verified.is_verified(person.id)).where(
                ballot_of(consultation, person.id)
            )
        )
    ).first()
    if found is None:
        anonymous = consultation.anonymous
        ballot = Ballot(
            consultation_id=consultation.id,
            person_id=None if anonymous else person.id,
            voter=voter_of(consultation, person.id) if anonymous else None,
            neighbourhood=await neighbourhood_of(session, consultation.council_id, person.id),
            verified=await verified.verified(session, person.id),
        )
        session.add(ballot)
        await session.flush()
        return ballot
    ballot, counts = found
    if ballot.verified != bool(counts):
        ballot.verified = bool(counts)
    return ballot


async def took_part(
    session: AsyncSession, consultation: Consultation, person: Person, ballot: Ballot
) -> None:
    """Keep who has answered apart from what they answered: a participant while their
    ballot answers something (to send them the results), with their neighbourhood."""
    where = (
        Participant.consultation_id == consultation.id,
        Participant.person_id == person.id,
    )
    present = await session.scalar(select(Participant.id).where(*where))
    if ballot.answered and present is None:
        session.add(
            Participant(
                consultation_id=consultation.id,
                person_id=person.id,
                neighbourhood=ballot.neighbourhood,
            )
        )
        await session.flush()
    elif not ballot.answered and present is not None:
        await session.execute(delete(Participant).where(*where))


async def neighbourhood_of(session: AsyncSession, council_id: int, person_id: int) -> str | None:
    found = await session.scalar(
        select(neighbourhood_of_member()).where(
            Membership.council_id == council_id, Membership.person_id == person_id
        )
    )
    return str(found) if found else None


async def set_neighbourhood(
    session: AsyncSession, council: Council, person: Person, neighbourhood: str
) -> None:
    """Remember where a member lives (asked once; "" if they would rather not say), and
    file their open ballots under it."""
    if neighbourhood and neighbourhood not in council.neighbourhoods:
        return  # "" means they would rather not say
    await session.execute(
        update(Membership)
        .where(Membership.council_id == council.id, Membership.person_id == person.id)
        .values(neighbourhood=neighbourhood)
    )
    still_open = list(
        await session.scalars(
            select(Consultation).where(
                Consultation.council_id == council.id,
                Consultation.status == ConsultationStatus.OPEN,
            )
        )
    )
    if not still_open:
        return
    open_ballots = select(Ballot.id).where(
        or_(*(ballot_of(consultation, person.id) for consultation in still_open))
    )
    place = neighbourhood or None
    await session.execute(
        update(Ballot).where(Ballot.id.in_(open_ballots)).values(neighbourhood=place)
    )
    await session.execute(
        update(Response).where(Response.ballot_id.in_(open_ballots)).values(neighbourhood=place)
    )
    await session.execute(
        update(Participant)
        .where(
            Participant.person_id == person.id,
            Participant.consultation_id.in_([c.id for c in still_open]),
        )
        .values(neighbourhood=place)
    )


async def record(
    session: AsyncSession,
    person: Person,
    ballot: Ballot,
    question: Question,
    options: Sequence[int] = (),
    text: str | None = None,
) -> None:
    """Replace the answer to one question (nothing given: the question is skipped)."""
    await session.execute(
        delete(Response).where(Response.ballot_id == ballot.id, Response.question_id == question.id)
    )
    ballot.answered &= ~(1 << question.position)
    if question.kind is QuestionKind.TEXT:
        if text:
            ballot.answered |= 1 << question.position
            session.add(
                Response(
                    ballot_id=ballot.id,
                    question_id=question.id,
                    text=text[:TEXT_LIMIT],
                    neighbourhood=ballot.neighbourhood,
                )
            )
    else:
        allowed = SCALE if question.kind is QuestionKind.SCALE else range(len(question.options))
        chosen = sorted({o for o in options if o in allowed})
        if question.kind is not QuestionKind.MULTIPLE:
            chosen = chosen[:1]
        if chosen:
            ballot.answered |= 1 << question.position
        for option in chosen:
            session.add(
                Response(
                    ballot_id=ballot.id,
                    question_id=question.id,
                    option=option,
                    neighbourhood=ballot.neighbourhood,
                )
            )
    await session.flush()
    consultation = await session.get_one(Consultation, ballot.consultation_id)
    await took_part(session, consultation, person, ballot)


async def given(
    session: AsyncSession, ballot: Ballot, question: Question
) -> tuple[list[int], str | None]:
    """What the person answered to a question so far."""
    if not ballot.answered & (1 << question.position):
        return [], None  # nothing yet: no need to ask the database
    rows = (
        await session.execute(
            select(Response.option, Response.text).where(
                Response.ballot_id == ballot.id, Response.question_id == question.id
            )
        )
    ).all()
    return [r[0] for r in rows if r[0] is not None], next((r[1] for r in rows if r[1]), None)


# --- closing and results -----------------------------------------------------------------------


@dataclass
class Cell:
    """The answers of one group of respondents to one question."""

    answered: int = 0
    counts: list[int] = field(default_factory=list)  # per option, or per scale value 1..5
    mean: float | None = None  # scales only

    def as_json(self) -> dict[str, object]:
        return {"answered": self.answered, "counts": self.counts, "mean": self.mean}


OTHER = "*other*"  # small neighbourhoods merged
UNKNOWN = "*unknown*"  # respondents whose neighbourhood is not known


async def aggregate(
    session: AsyncSession, consultation: Consultation, threshold: int
) -> dict[str, Any]:
    """The figures: per question, counts and shares (or the mean), and by neighbourhood,
    where a group smaller than `threshold` is merged with the other small ones, or hidden.
    Three GROUP BY queries over the answers, whatever their number.

    Unless the consultation counts everyone, the answers of unverified members are left
    aside, and how many there were is said. Their options, few as a rule, are counted apart
    and taken off the totals: the main count still reads the answers' index alone."""
    questions = await questions_of(session, consultation.id)
    ids = [q.id for q in questions]
    everyone = consultation.counts_unverified
    counted: ColumnElement[bool] = true() if everyone else Ballot.verified.is_(True)
    by_key: dict[tuple[int, str], dict[int, int]] = {}
    if ids:
        rows = await session.execute(
            select(
                Response.question_id,
                Response.neighbourhood,
                Response.option,
                func.count(),
            )
            .where(Response.question_id.in_(ids), Response.option.is_not(None))
            .group_by(Response.question_id, Response.neighbourhood, Response.option)
        )
        for question_id, place, option, count in rows:
            by_key.setdefault((question_id, place or UNKNOWN), {})[int(option or 0)] = int(count)
        if not everyone:
            aside_options = await session.execute(
                select(
                    Response.question_id,
                    Response.neighbourhood,
                    Response.option,
                    func.count(),
                )
                .join(Ballot, Ballot.id == Response.ballot_id)
                .where(
                    Ballot.consultation_id == consultation.id,
                    Ballot.verified.is_(False),
                    Response.option.is_not(None),
                )
                .group_by(Response.question_id, Response.neighbourhood, Response.option)
            )
            for question_id, place, option, count in aside_options:
                tally = by_key.setdefault((question_id, place or UNKNOWN), {})
                tally[int(option or 0)] = tally.get(int(option or 0), 0) - int(count)
    answered: dict[tuple[int, str], int] = {}
    respondents = aside = 0
    if questions:
        bits = [
            func.sum(
                case((and_(Ballot.answered.op("&")(1 << q.position) != 0, counted), 1), else_=0)
            )
            for q in questions
        ]
        per_place = await session.execute(
            select(
                Ballot.neighbourhood,
                func.sum(case((and_(Ballot.answered != 0, counted), 1), else_=0)),
                func.sum(case((and_(Ballot.answered != 0, not_(counted)), 1), else_=0)),
                *bits,
            )
            .where(Ballot.consultation_id == consultation.id)
            .group_by(Ballot.neighbourhood)
        )
        for place, people, unverified, *per_question in per_place:
            respondents += int(people or 0)
            aside += int(unverified or 0)
            for question, count in zip(questions, per_question, strict=True):
                if count:
                    answered[(question.id, place or UNKNOWN)] = int(count)
    texts: dict[int, list[str]] = {}
    text_ids = [q.id for q in questions if q.kind is QuestionKind.TEXT]
    if text_ids:
        named = not consultation.anonymous
        query = (
            select(Response.question_id, Response.text, Person.first_name)
            .join(Ballot, Ballot.id == Response.ballot_id)
            .outerjoin(Person, Person.id == Ballot.person_id)
            .where(Response.question_id.in_(text_ids), Response.text.is_not(None), counted)
            .order_by(Response.id)
        )
        for question_id, text, name in await session.execute(query):
            texts.setdefault(question_id, []).append(
                f"{name}: {text}" if named and name else str(text)
            )

    out_questions = []
    for question in questions:
        size = len(SCALE) if question.kind is QuestionKind.SCALE else len(question.options)
        places = {place for (qid, place) in answered if qid == question.id}
        cells = {
            place: cell_of(
                question, size, by_key.get((question.id, place), {}), answered[(question.id, place)]
            )
            for place in places
        }
        whole = merge(question, size, list(cells.values()))
        shown: dict[str, Cell] = {}
        small: list[Cell] = []
        for place, cell in sorted(cells.items()):
            if cell.answered >= threshold:
                shown[place] = cell
            else:
                small.append(cell)
        if small:
            merged = merge(question, size, small)
            if merged.answered >= threshold:
                shown[OTHER] = merged
        out_questions.append(
            {
                "id": question.id,
                "position": question.position,
                "kind": question.kind.value,
                "text": question.text,
                "options": list(question.options)
                if question.kind is not QuestionKind.SCALE
                else [str(v) for v in SCALE],
                "all": whole.as_json(),
                "by_neighbourhood": {place: cell.as_json() for place, cell in shown.items()},
                "texts": texts.get(question.id, []),
            }
        )
    return {
        "respondents": respondents,
        "unverified_aside": aside,
        "counts_unverified": everyone,
        "audience": consultation.audience_size,
        "threshold": threshold,
        "anonymous": consultation.anonymous,
        "questions": out_questions,
    }


async def figures(
    session: AsyncSession, consultation: Consultation, council: Council
) -> dict[str, Any] | None:
    """The figures as they may be shown now: none before opening, those kept at closing,
    and live ones while open; but an anonymous consultation's live figures only once the
    council's small-group threshold of people have answered (before that, each new answer
    would show who said what to whoever knows who just answered): until then, only how many
    answered."""
    if consultation.status is ConsultationStatus.SCHEDULED:
        return None
    if consultation.status is ConsultationStatus.CLOSED:
        return consultation.results
    live = await aggregate(session, consultation, council.small_group_threshold)
    if consultation.anonymous and live["respondents"] < council.small_group_threshold:
        return {**live, "withheld": True, "questions": []}
    return live


def cell_of(question: Question, size: int, counts: dict[int, int], answered: int) -> Cell:
    if question.kind is QuestionKind.SCALE:
        values = [counts.get(v, 0) for v in SCALE]
        total = sum(values)
        mean = sum(v * c for v, c in zip(SCALE, values, strict=True)) / total if total else None
        return Cell(answered, values, mean)
    if question.kind is QuestionKind.TEXT:
        return Cell(answered, [])
    return Cell(answered, [counts.get(i, 0) for i in range(size)])


def merge(question: Question, size: int, cells: Sequence[Cell]) -> Cell:
    width = len(SCALE) if question.kind is QuestionKind.SCALE else size
    if question.kind is QuestionKind.TEXT:
        width = 0
    counts = [sum(c.counts[i] for c in cells if len(c.counts) > i) for i in range(width)]
    merged = Cell(sum(c.answered for c in cells), counts)
    if question.kind is QuestionKind.SCALE:
        total = sum(counts)
        merged.mean = (
            sum(v * c for v, c in zip(SCALE, counts, strict=True)) / total if total else None
        )
    return merged


class AlreadyClosedError(Exception):
    """The consultation was no longer open once locked: closed by someone else meanwhile."""


async def close_consultation(
    session: AsyncSession, consultation: Consultation, now: datetime
) -> dict[str, object]:
    """Close: compute the results, keep who took part, cut answers from people if anonymous.

    The consultation is locked and read again first: if it was closed meanwhile (the
    scheduler at its deadline, or another organiser), nothing is done twice and
    `AlreadyClosedError` is raised, so the caller announces nothing."""
    locked = await consultation_for_update(session, consultation.id)
    if locked is None or locked.status is not ConsultationStatus.OPEN:
        raise AlreadyClosedError(consultation.id)
    council = await session.get_one(Council, consultation.council_id)
    consultation.status = ConsultationStatus.CLOSED
    consultation.closed_at = now
    if consultation.closes_at > now:
        consultation.closes_at = now  # closed early
    # Whoever was verified by now counts, whatever happened since their last answer.
    await count_the_verified(session, consultation)
    results = await aggregate(session, consultation, council.small_group_threshold)
    consultation.results = results
    if consultation.anonymous:
        await forget_who_counted(session, consultation)
        await unlink(session, consultation)
        await blur_small_places(session, consultation, council.small_group_threshold)
    return results


async def count_the_verified(session: AsyncSession, consultation: Consultation) -> None:
    """Mark each ballot verified or not as its person is now (the last time the anonymous
    ballots can be told from whom they are)."""
    if not consultation.anonymous:
        await session.execute(
            update(Ballot)
            .where(Ballot.consultation_id == consultation.id, Ballot.person_id.is_not(None))
            .values(verified=verified.is_verified(Ballot.person_id))
            .execution_options(synchronize_session=False)
        )
        return
    rows = await session.execute(
        select(Participant.person_id, verified.is_verified(Participant.person_id)).where(
            Participant.consultation_id == consultation.id
        )
    )
    unverified = [voter_of(consultation, person_id) for person_id, counts in rows if not counts]
    await session.execute(
        update(Ballot)
        .where(Ballot.consultation_id == consultation.id, Ballot.voter.is_not(None))
        .values(verified=Ballot.voter.not_in(unverified) if unverified else true())
        .execution_options(synchronize_session=False)
    )


async def unlink(session: AsyncSession, consultation: Consultation) -> None:
    """The end of the link between an anonymous consultation's answers and its people: the
    key and the voters go, and who took part and the answers are written again, in an order
    that says nothing of when anyone answered (person order; ballot ids are random)."""
    consultation.ballot_key = None
    await session.execute(
        update(Ballot)
        .where(Ballot.consultation_id == consultation.id)
        .values(voter=None, verified=True)
        .execution_options(synchronize_session=False)
    )
    took_part = (
        await session.execute(
            select(Participant.person_id, Participant.neighbourhood)
            .where(Participant.consultation_id == consultation.id)
            .order_by(Participant.person_id)
        )
    ).all()
    await session.execute(delete(Participant).where(Participant.consultation_id == consultation.id))
    if took_part:
        await session.execute(
            insert(Participant),
            [
                {
                    "id": random_id(),
                    "consultation_id": consultation.id,
                    "person_id": person_id,
                    "neighbourhood": place,
                }
                for person_id, place in took_part
            ],
        )
    questions = select(Question.id).where(Question.consultation_id == consultation.id)
    last = await session.scalar(
        select(func.max(Response.id)).where(Response.question_id.in_(questions))
    )
    if last is None:
        return
    columns = ["ballot_id", "question_id", "option", "text", "neighbourhood"]
    await session.execute(
        insert(Response).from_select(
            columns,
            select(
                Response.ballot_id,
                Response.question_id,
                Response.option,
                Response.text,
                Response.neighbourhood,
            )
            .where(Response.question_id.in_(questions))
            .order_by(Response.ballot_id, Response.question_id, Response.option),
        )
    )
    await session.execute(
        delete(Response).where(Response.question_id.in_(questions), Response.id <= last)
    )


async def forget_who_counted(session: AsyncSession, consultation: Consultation) -> None:
    """In an anonymous consultation, a ballot marked unverified would point to the few
    unverified members who took part: the answers left aside (counted in the results) go."""
    if consultation.counts_unverified:
        return
    aside = select(Ballot.id).where(
        Ballot.consultation_id == consultation.id, Ballot.verified.is_(False)
    )
    await session.execute(delete(Response).where(Response.ballot_id.in_(aside)))
    await session.execute(
        delete(Ballot).where(Ballot.consultation_id == consultation.id, Ballot.verified.is_(False))
    )


async def blur_small_places(
    session: AsyncSession, consultation: Consultation, threshold: int
) -> None:
    """In a neighbourhood with fewer respondents than the threshold, a ballot's place would
    point to the few people who live there (members' neighbourhoods are known): the raw
    answers forget it. And if the ballots without a place are then fewer than the threshold,
    a group too small to hide in, more are chosen at random to join them, until they are
    enough (the figures were computed before: they do not change)."""
    grouped = await session.execute(
        select(Ballot.neighbourhood, func.count())
        .where(Ballot.consultation_id == consultation.id)
        .group_by(Ballot.neighbourhood)
    )
    sizes: dict[str | None, int] = {place: count for place, count in grouped}
    small = {place for place, count in sizes.items() if place is not None and count < threshold}
    placeless = sizes.get(None, 0) + sum(sizes[place] for place in small)
    blurred = list(small)
    chosen: list[int] = []
    if 0 < placeless < threshold:
        others = list(
            await session.scalars(
                select(Ballot.id).where(
                    Ballot.consultation_id == consultation.id,
                    Ballot.neighbourhood.is_not(None),
                    Ballot.neighbourhood.not_in(small) if small else true(),
                )
            )
        )
        chosen = secrets.SystemRandom().sample(others, min(threshold - placeless, len(others)))
    if not blurred and not chosen:
        return
    ballots = select(Ballot.id).where(
        Ballot.consultation_id == consultation.id,
        or_(Ballot.neighbourhood.in_(blurred), Ballot.id.in_(chosen)),
    )
    await session.execute(
        update(Response).where(Response.ballot_id.in_(ballots)).values(neighbourhood=None)
    )
    await session.execute(
        update(Ballot)
        .where(Ballot.id.in_(ballots))
        .values(neighbourhood=None)
        .execution_options(synchronize_session=False)
    )


async def close_due(session: AsyncSession, now: datetime) -> list[Consultation]:
    """Claim the open consultations past their deadline (those an organiser is closing now
    are locked, hence skipped) and close them; what an organiser closed since the claim's
    look is left alone."""
    due = await session.scalars(
        select(Consultation)
        .where(
            Consultation.status == ConsultationStatus.OPEN,
            Consultation.closes_at <= now,
            not_failed(CLOSE_JOB, Consultation.id),
        )
        .limit(10)
        .with_for_update(skip_locked=True)
    )
    closed = []

    async def work(consultation: Consultation) -> bool:
        try:
            await close_consultation(session, consultation, now)
        except AlreadyClosedError:
            return False
        closed.append(consultation)
        return True

    await each_due(session, CLOSE_JOB, due, work, now=now)
    return closed


def participants(consultation_id: int) -> Select[int]:
    """Those who took part and still listen."""
    return (
        select(Participant.person_id)
        .join(Person, Person.id == Participant.person_id)
        .where(Participant.consultation_id == consultation_id, Person.status == PersonStatus.ACTIVE)
    )


def participants_in(consultation_id: int, neighbourhood: str | None) -> Select[int]:
    """Those who took part in one neighbourhood (None: neighbourhood not known)."""
    if neighbourhood is None:
        return participants(consultation_id).where(Participant.neighbourhood.is_(None))
    return participants(consultation_id).where(Participant.neighbourhood == neighbourhood)


async def participant_places(session: AsyncSession, consultation_id: int) -> list[str | None]:
    rows = await session.scalars(
        select(Participant.neighbourhood)
        .where(Participant.consultation_id == consultation_id)
        .distinct()
    )
    return list(rows)


async def consultations_of(
    session: AsyncSession, council_ids: Sequence[int], since: datetime
) -> list[Consultation]:
    if not council_ids:
        return []
    found = await session.scalars(
        select(Consultation)
        .where(
            Consultation.council_id.in_(list(council_ids)),
            or_(
                Consultation.status != ConsultationStatus.CLOSED,
                Consultation.closed_at >= since,
            ),
        )
        .order_by(Consultation.closes_at)
        .limit(10)
    )
    return list(found)


async def invite_newcomer(session: AsyncSession, person: Person, council: Council) -> list[Reply]:
    """Someone joined the council: the open consultations asked of every member ask them too.
    They count in the audience from now on, so the response rate stays true."""
    now = utcnow()
    found = await session.scalars(
        select(Consultation)
        .where(
            Consultation.council_id == council.id,
            Consultation.audience == Audience.ALL.value,
            Consultation.status == ConsultationStatus.OPEN,
            Consultation.closes_at > now,
        )
        .order_by(Consultation.closes_at)
        .with_for_update()
    )
    t = Translator(person.locale)
    replies = []
    for consultation in list(found):
        consultation.audience_size += 1
        questions = len(await questions_of(session, consultation.id))
        replies.append(invitation(council, consultation, questions)(t))
    return replies

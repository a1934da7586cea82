"""What the consultations keep about a person, for /mydata."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from flows.consultations import service
from flows.engine import PersonalData
from flows.i18n import Translator
from storage.models import (
    Ballot,
    Consultation,
    Membership,
    Participant,
    Person,
    Question,
    QuestionKind,
    Response,
)


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment else None


async def consultations_of(session: AsyncSession, person: Person) -> list[dict[str, Any]]:
    """The person's answers that can still be found from them (named consultations, and
    anonymous ones while open, through the consultation's key), and the consultations they
    took part in whose answers no longer lead to them (anonymous ones, once closed)."""
    kept: list[dict[str, Any]] = []
    took_part = list(
        await session.scalars(
            select(Consultation)
            .join(Participant, Participant.consultation_id == Consultation.id)
            .where(Participant.person_id == person.id)
        )
    )
    named = await session.scalars(
        select(Consultation)
        .join(Ballot, Ballot.consultation_id == Consultation.id)
        .where(Ballot.person_id == person.id)
    )
    consultations = {c.id: c for c in [*took_part, *named]}
    for consultation in sorted(consultations.values(), key=lambda c: (c.opens_at, c.id)):
        entry: dict[str, Any] = {
            "consultation": consultation.title,
            "status": consultation.status.value,
            "anonymous": consultation.anonymous,
        }
        ballot = None
        if not consultation.anonymous or consultation.ballot_key is not None:
            ballot = await session.scalar(
                select(Ballot).where(service.ballot_of(consultation, person.id))
            )
        if ballot is None:
            entry["answers"] = []
            entry["note"] = "anonymous: you took part; your answers are kept with no link to you"
        else:
            entry["answers"] = await _answers(session, ballot)
            entry["neighbourhood"] = ballot.neighbourhood
        kept.append(entry)
    return kept


async def _answers(session: AsyncSession, ballot: Ballot) -> list[dict[str, str]]:
    rows = await session.execute(
        select(Question, Response)
        .join(Response, Response.question_id == Question.id)
        .where(Response.ballot_id == ballot.id)
        .order_by(Question.position, Response.option)
    )
    answers = []
    for question, response in rows:
        if response.text is not None:
            given = response.text
        elif question.kind is QuestionKind.SCALE:
            given = str(response.option)
        else:
            given = question.options[response.option or 0]
        answers.append({"question": question.text, "answer": given})
    return answers


async def let_go(session: AsyncSession, person: Person) -> None:
    """/forget: an open anonymous consultation's ballot stops leading to the person (its
    answers stay, counted, pointing to nobody). Named ballots let go by their foreign key."""
    still_keyed = await session.scalars(
        select(Consultation)
        .join(Membership, Membership.council_id == Consultation.council_id)
        .where(Membership.person_id == person.id, Consultation.ballot_key.is_not(None))
    )
    for consultation in still_keyed:
        await session.execute(
            update(Ballot)
            .where(service.ballot_of(consultation, person.id))
            .values(voter=None)
            .execution_options(synchronize_session=False)
        )


async def organised_by(session: AsyncSession, person: Person) -> list[dict[str, Any]]:
    consultations = await session.scalars(
        select(Consultation).where(Consultation.created_by == person.id).order_by(Consultation.id)
    )
    return [{"consultation": c.title, "opens_at": _iso(c.opens_at)} for c in consultations]


def answers_line(t: Translator, consultations: list[dict[str, Any]]) -> str | None:
    if not consultations:
        return None
    return t.ngettext(
        "Your part in {count} consultation",
        "Your part in {count} consultations",
        len(consultations),
    ).format(count=t.number(len(consultations)))


def organised_line(t: Translator, consultations: list[dict[str, Any]]) -> str | None:
    if not consultations:
        return None
    return t.ngettext(
        "{count} consultation you organised",
        "{count} consultations you organised",
        len(consultations),
    ).format(count=t.number(len(consultations)))


ANSWERS = PersonalData(
    "consultations",
    ("ballots", "consultation_participants", "responses"),
    consultations_of,
    answers_line,
    erase=let_go,
)
ORGANISED = PersonalData(
    "consultations_organised", ("consultations",), organised_by, organised_line
)

"""What the consultations keep about a person, for /mydata."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from flows.engine import PersonalData
from flows.i18n import Translator
from storage.models import (
    Ballot,
    Consultation,
    Participant,
    Person,
    Question,
    QuestionKind,
    Response,
)


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment else None


async def consultations_of(session: AsyncSession, person: Person) -> list[dict[str, Any]]:
    """Answers still linked to the person, and the consultations they took part in whose
    answers are no longer linked to them (anonymous ones, once closed)."""
    kept: list[dict[str, Any]] = []
    ballots = await session.execute(
        select(Ballot, Consultation)
        .join(Consultation, Consultation.id == Ballot.consultation_id)
        .where(Ballot.person_id == person.id)
        .order_by(Consultation.opens_at)
    )
    seen: set[int] = set()
    for ballot, consultation in ballots:
        seen.add(consultation.id)
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
        kept.append(
            {
                "consultation": consultation.title,
                "status": consultation.status.value,
                "anonymous": consultation.anonymous,
                "answers": answers,
                "neighbourhood": ballot.neighbourhood,
            }
        )
    took_part = await session.scalars(
        select(Consultation)
        .join(Participant, Participant.consultation_id == Consultation.id)
        .where(Participant.person_id == person.id)
    )
    for consultation in took_part:
        if consultation.id in seen:
            continue
        kept.append(
            {
                "consultation": consultation.title,
                "status": consultation.status.value,
                "anonymous": consultation.anonymous,
                "answers": [],
                "note": "anonymous: you took part; your answers are kept with no link to you",
            }
        )
    return kept


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
)
ORGANISED = PersonalData(
    "consultations_organised", ("consultations",), organised_by, organised_line
)

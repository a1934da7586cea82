"""What the calls for talents keep about a person, for /mydata."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from flows.engine import PersonalData, Retention, deleted
from flows.i18n import Translator
from storage.models import Call, CallAnswer, Introduction, Person


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


async def answers_of(session: AsyncSession, person: Person) -> list[dict[str, Any]]:
    """Their answers to calls, with the message they added."""
    rows = await session.execute(
        select(CallAnswer, Call.title)
        .join(Call, Call.id == CallAnswer.call_id)
        .where(CallAnswer.person_id == person.id)
        .order_by(CallAnswer.answered_at)
    )
    return [
        {
            "call": title,
            "answer": answer.answer.value,
            "message": answer.message,
            "answered_at": _iso(answer.answered_at),
        }
        for answer, title in rows
    ]


async def introductions_of(session: AsyncSession, person: Person) -> dict[str, Any]:
    """Introductions asked of them (and what they said), and those they asked for."""
    about = await session.execute(
        select(Introduction, Call.title)
        .join(Call, Call.id == Introduction.call_id)
        .where(Introduction.person_id == person.id)
    )
    asked = await session.execute(
        select(Introduction.asked_at, Call.title)
        .join(Call, Call.id == Introduction.call_id)
        .where(Introduction.requested_by == person.id)
    )
    return {
        "asked_of_you": [
            {
                "call": title,
                "status": introduction.status.value,
                "asked_at": _iso(introduction.asked_at),
                "answered_at": _iso(introduction.answered_at),
            }
            for introduction, title in about
        ],
        "asked_by_you": [{"call": title, "asked_at": _iso(at)} for at, title in asked],
    }


async def calls_by(session: AsyncSession, person: Person) -> list[dict[str, Any]]:
    calls = await session.scalars(
        select(Call).where(Call.created_by == person.id).order_by(Call.id)
    )
    return [{"call": call.title, "created_at": _iso(call.created_at)} for call in calls]


def answers_line(t: Translator, answers: list[dict[str, Any]]) -> str | None:
    if not answers:
        return None
    return t.ngettext(
        "Your answer to {count} call for help",
        "Your answers to {count} calls for help",
        len(answers),
    ).format(count=t.number(len(answers)))


def introductions_line(t: Translator, introductions: dict[str, Any]) -> str | None:
    count = len(introductions["asked_of_you"]) + len(introductions["asked_by_you"])
    if not count:
        return None
    return t.ngettext("{count} introduction", "{count} introductions", count).format(
        count=t.number(count)
    )


def calls_line(t: Translator, calls: list[dict[str, Any]]) -> str | None:
    if not calls:
        return None
    return t.ngettext("{count} call you sent", "{count} calls you sent", len(calls)).format(
        count=t.number(len(calls))
    )


ANSWERS = PersonalData("call_answers", ("call_answers",), answers_of, answers_line)
INTRODUCTIONS = PersonalData(
    "introductions", ("introductions",), introductions_of, introductions_line
)
CALLS = PersonalData("calls_sent", ("calls",), calls_by, calls_line)


async def closed_calls_answers(session: AsyncSession, before: datetime) -> int:
    """Who answered a call, and the introductions for it, once the call is long closed."""
    old = select(Call.id).where(Call.closed_at < before)
    answers = await session.execute(delete(CallAnswer).where(CallAnswer.call_id.in_(old)))
    introductions = await session.execute(delete(Introduction).where(Introduction.call_id.in_(old)))
    return deleted(answers, introductions)


RETENTION = (Retention("answers to closed calls", timedelta(days=365), closed_calls_answers),)

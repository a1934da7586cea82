"""Calls for talents: who matches, answers, and the summary at the deadline."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, exists, false, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from flows.broadcasts import service as broadcasts
from flows.calls.buttons import AnswerButton
from flows.engine import Choice, Notice, NoticeKind, Reply
from flows.i18n import Translator
from flows.talents.catalogue import AVAILABILITY, skill_label
from storage.models import (
    Answer,
    Call,
    CallAnswer,
    CallStatus,
    Council,
    Membership,
    OutboxMessage,
    Person,
    PersonStatus,
    ProfileSkill,
    Skill,
    TalentProfile,
    utcnow,
)
from storage.queries import talents, verified

WHEN = ("weekdays", "evenings", "weekends")


def audience(council: Council, skill_ids: list[int], when: list[str]) -> Select[int]:
    """Who gets the call: directory members with one of the skills, free at one of the times.

    With no skill given, every member of the council (when they are free is not known
    for people outside the directory).
    """
    if not skill_ids:
        return broadcasts.members(council)
    conditions = [
        TalentProfile.council_id == council.id,
        TalentProfile.hidden_at.is_(None),
        Person.status == PersonStatus.ACTIVE,
        exists().where(
            ProfileSkill.profile_id == TalentProfile.id, ProfileSkill.skill_id.in_(skill_ids)
        ),
    ]
    times = [getattr(TalentProfile, key).is_(True) for key in when if key in WHEN]
    if times:
        conditions.append(or_(false(), *times))
    return select(TalentProfile.person_id).join(Person).where(*conditions)


def invitation(
    council: Council, call: Call, skills: list[Skill], timezone: str
) -> broadcasts.Render:
    """The call as a resident reads it, in their language, with the three answers."""

    def render(t: Translator) -> Reply:
        lines = [
            "🤝 " + t._("Call for talents — {council}").format(council=council.name),
            "",
            call.title,
            call.description,
            "",
        ]
        if skills:
            names = ", ".join(skill_label(skill, t) for skill in skills)
            lines.append(t._("Looking for: {skills}").format(skills=names))
        times = [
            t._(AVAILABILITY[key]) for key in call.needed_when.split(",") if key in AVAILABILITY
        ]
        if times:
            lines.append(t._("When: {times}").format(times=", ".join(times)))
        lines.append(
            t.ngettext("{count} person needed", "{count} people needed", call.people_needed).format(
                count=t.number(call.people_needed)
            )
        )
        lines.append(
            t._("Answer by {date}").format(date=t.datetime(call.deadline, timezone, "medium"))
        )
        buttons = (
            (Choice("🙋 " + t._("I can help"), AnswerButton(call.id, Answer.YES).pack()),),
            (Choice(t._("Maybe, tell me more"), AnswerButton(call.id, Answer.MAYBE).pack()),),
            (Choice(t._("Not this time"), AnswerButton(call.id, Answer.NO).pack()),),
        )
        about = Notice(NoticeKind.CALL, t.locale, council=council.name, title=call.title)
        return Reply("\n".join(lines), buttons, notice=about)

    return render


@dataclass(frozen=True)
class NewCall:
    title: str
    description: str
    skill_ids: list[int]
    when: list[str]
    people_needed: int
    deadline: datetime
    accepts_unverified: bool = True  # unverified web chat members may answer


class Sent(enum.Enum):
    SENT = "sent"
    NOBODY = "nobody"


async def matches(session: AsyncSession, council: Council, new: NewCall) -> int:
    return await broadcasts.audience_size(session, audience(council, new.skill_ids, new.when))


async def send(
    session: AsyncSession,
    council: Council,
    new: NewCall,
    starter: Person | None,
    report_to: broadcasts.ReportTo,
) -> tuple[Sent, Call | None]:
    """Record the call and queue it to the matching residents, in one transaction."""
    valid = {skill.id: skill for skill in await talents.skills(session, council.id)}
    skill_ids = [skill_id for skill_id in new.skill_ids if skill_id in valid]
    who = audience(council, skill_ids, new.when)
    if await broadcasts.audience_size(session, who) == 0:
        return Sent.NOBODY, None
    call = Call(
        council_id=council.id,
        created_by=starter.id if starter else None,
        holder_channel=report_to.channel,
        holder_chat=report_to.chat_id,
        holder_locale=report_to.locale,
        title=new.title,
        description=new.description,
        skill_ids=skill_ids,
        needed_when=",".join(new.when),
        people_needed=new.people_needed,
        accepts_unverified=new.accepts_unverified,
        deadline=new.deadline,
        status=CallStatus.OPEN,
    )
    session.add(call)
    await session.flush()
    broadcast = await broadcasts.start_broadcast(
        session,
        council=council,
        kind="call",
        subject=f"call:{call.id}",
        audience=who,
        render=invitation(council, call, [valid[s] for s in skill_ids], council.timezone),
        started_by=starter,
        report_to=report_to,
    )
    call.broadcast_id = broadcast.id
    return Sent.SENT, call


class Answered(enum.Enum):
    RECORDED = "recorded"
    CLOSED = "closed"
    NOT_ALLOWED = "not_allowed"
    UNVERIFIED = "unverified"  # the call takes verified members only


async def answer(
    session: AsyncSession, call_id: int, person: Person, choice: Answer
) -> tuple[Answered, Call | None]:
    """Record (or change) a resident's answer; only the people the call was sent to may (a
    button can be copied to another member, or forged)."""
    call = await session.get(Call, call_id)
    if call is None:
        return Answered.NOT_ALLOWED, None
    member = await session.scalar(
        select(Membership.id).where(
            Membership.person_id == person.id, Membership.council_id == call.council_id
        )
    )
    if member is None or not await was_asked(session, call, person.id):
        return Answered.NOT_ALLOWED, None
    if call.status != CallStatus.OPEN or call.deadline <= utcnow():
        return Answered.CLOSED, call
    if not call.accepts_unverified and not await verified.verified(session, person.id):
        return Answered.UNVERIFIED, call
    existing = await session.scalar(
        select(CallAnswer).where(CallAnswer.call_id == call.id, CallAnswer.person_id == person.id)
    )
    if existing is None:
        session.add(CallAnswer(call_id=call.id, person_id=person.id, answer=choice))
    else:
        existing.answer, existing.answered_at = choice, utcnow()
    await session.flush()
    return Answered.RECORDED, call


async def was_asked(session: AsyncSession, call: Call, person_id: int) -> bool:
    """Whether the call was sent to this person: its broadcast was queued for them.

    The outbox rows are the record of who was asked when it went out; the skills and times
    asked for would also let in those who entered the directory since, who never got it.
    A call whose broadcast is gone falls back to them. No one is asked a call on joining.
    """
    if call.broadcast_id is not None:
        queued = await session.scalar(
            select(OutboxMessage.id)
            .where(
                OutboxMessage.broadcast_id == call.broadcast_id,
                OutboxMessage.person_id == person_id,
            )
            .limit(1)
        )
        return queued is not None
    council = await session.get_one(Council, call.council_id)
    who = audience(council, call.skill_ids, call.needed_when.split(",")).subquery()
    found = await session.scalar(select(who.c[0]).where(who.c[0] == person_id).limit(1))
    return found is not None


async def add_message(session: AsyncSession, call_id: int, person: Person, text: str) -> bool:
    result = await session.execute(
        update(CallAnswer)
        .where(CallAnswer.call_id == call_id, CallAnswer.person_id == person.id)
        .values(message=text[:300])
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Helper:
    first_name: str
    verified: bool


async def tally(session: AsyncSession, call_id: int) -> dict[Answer, list[Helper]]:
    """First names by answer, each saying whether its person is a verified member."""
    rows = await session.execute(
        select(CallAnswer.answer, Person.first_name, verified.is_verified(Person.id))
        .join(Person, Person.id == CallAnswer.person_id)
        .where(CallAnswer.call_id == call_id)
        .order_by(CallAnswer.answered_at)
    )
    grouped: dict[Answer, list[Helper]] = {choice: [] for choice in Answer}
    for choice, name, counts in rows:
        grouped[Answer(choice)].append(Helper(name, bool(counts)))
    return grouped


async def close_due(session: AsyncSession, now: datetime) -> list[Call]:
    """Close the calls whose deadline passed; each is closed by one process only."""
    closed = await session.scalars(
        update(Call)
        .where(Call.status == CallStatus.OPEN, Call.deadline <= now)
        .values(status=CallStatus.CLOSED, closed_at=now)
        .returning(Call)
    )
    return list(closed)


async def answers_count(session: AsyncSession, call_id: int) -> int:
    return int(await session.scalar(select(func.count()).where(CallAnswer.call_id == call_id)) or 0)

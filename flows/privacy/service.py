"""What we keep about a person, and erasing it."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Ballot,
    Consultation,
    Meeting,
    MeetingInvite,
    Participant,
    Person,
    PushSubscription,
    Question,
    QuestionKind,
    Response,
    utcnow,
)
from storage.queries import people, webchat


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


async def everything_about(session: AsyncSession, person: Person) -> dict[str, Any]:
    """Every record that concerns the person, as plain JSON-ready data."""
    memberships = await people.memberships(session, person)
    grants = await people.role_grants_for(session, person)
    conversations = await people.conversations_of(session, person)
    invitations = await session.execute(
        select(MeetingInvite, Meeting)
        .join(Meeting, Meeting.id == MeetingInvite.meeting_id)
        .where(MeetingInvite.person_id == person.id)
        .order_by(Meeting.starts_at)
    )
    consultations = await consultations_of(session, person)
    web_chats = [i.external_id for i in person.identities if i.channel == "web"]
    return {
        "generated_at": _iso(utcnow()),
        "person": {
            "first_name": person.first_name,
            "language": person.locale,
            "status": person.status.value,
            "consent": {"version": person.consent_version, "given_at": _iso(person.consented_at)},
            "created_at": _iso(person.created_at),
            # Who vouched for them (an invitation code, a coordinator), if anyone did.
            "verified": {"by": person.verified_by, "at": _iso(person.verified_at)},
        },
        "accounts": [
            {
                "channel": identity.channel,
                "id": identity.external_id,
                "username": identity.username,
                "added_at": _iso(identity.created_at),
                "preferred": identity.preferred,
                "last_message_at": _iso(identity.last_inbound_at),
            }
            for identity in person.identities
        ],
        "councils": [
            {"council": m.council.slug, "name": m.council.name, "joined_at": _iso(m.joined_at)}
            for m in memberships
        ],
        "roles": [
            {
                "council": grant.council.slug,
                "role": grant.role.value,
                "granted_at": _iso(grant.granted_at),
            }
            for grant in grants
        ],
        "conversations": [
            {
                "step": conversation.step,
                "data": conversation.data,
                "updated_at": _iso(conversation.updated_at),
            }
            for conversation in conversations
        ],
        "meetings": [
            {
                "meeting": meeting.title,
                "starts_at": _iso(meeting.starts_at),
                "place": meeting.place,
                "answer": invite.rsvp.value,
                "guests": invite.guests,
                "needs": invite.needs,
                "answered_at": _iso(invite.answered_at),
                "attended": invite.attended,
            }
            for invite, meeting in invitations
        ],
        "consultations": consultations,
        "web_chat": {
            "messages": await webchat.conversation_of(session, web_chats),
            "notifications": [
                {"service": urlsplit(endpoint).hostname, "since": _iso(since)}
                for endpoint, since in await session.execute(
                    select(PushSubscription.endpoint, PushSubscription.created_at).where(
                        PushSubscription.chat_id.in_(web_chats)
                    )
                )
            ],
        },
    }


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


async def forget(session: AsyncSession, person: Person) -> None:
    """Erase the person; anonymous aggregates that no longer point to them stay."""
    await people.erase(session, person)

"""What we keep about a person, and erasing it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Meeting, MeetingInvite, Person, utcnow
from storage.queries import people


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
    return {
        "generated_at": _iso(utcnow()),
        "person": {
            "first_name": person.first_name,
            "language": person.locale,
            "status": person.status.value,
            "consent": {"version": person.consent_version, "given_at": _iso(person.consented_at)},
            "created_at": _iso(person.created_at),
        },
        "accounts": [
            {
                "channel": identity.channel,
                "id": identity.external_id,
                "username": identity.username,
                "added_at": _iso(identity.created_at),
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
    }


async def forget(session: AsyncSession, person: Person) -> None:
    """Erase the person; anonymous aggregates that no longer point to them stay."""
    await people.erase(session, person)

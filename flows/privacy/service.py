"""What we keep about a person, and erasing it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from flows.engine import PersonalData
from flows.i18n import Translator, language_name
from storage.models import OutboxMessage, Person, ProcessedEvent, PushSubscription, utcnow
from storage.queries import people, webchat


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


async def everything_about(
    session: AsyncSession, person: Person, capabilities: Iterable[PersonalData] = ()
) -> dict[str, Any]:
    """Every record that concerns the person, as plain JSON-ready data: who they are and how
    they are reached (kept here), then what each capability declares it keeps."""
    document = {"generated_at": _iso(utcnow()), **await _core(session, person)}
    for data in capabilities:
        document[data.key] = await data.collect(session, person)
    return document


async def _core(session: AsyncSession, person: Person) -> dict[str, Any]:
    memberships = await people.memberships(session, person)
    grants = await people.role_grants_for(session, person)
    conversations = await people.conversations_of(session, person)
    web_chats = [i.external_id for i in person.identities if i.channel == "web"]
    return {
        "person": {
            "first_name": person.first_name,
            "language": person.locale,
            "status": person.status.value,
            "consent": {"version": person.consent_version, "given_at": _iso(person.consented_at)},
            "created_at": _iso(person.created_at),
            "last_seen_at": _iso(person.last_seen_at),
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
            {
                "council": m.council.slug,
                "name": m.council.name,
                "time_zone": m.council.timezone,
                "joined_at": _iso(m.joined_at),
                "neighbourhood": m.neighbourhood,
            }
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
        "answers_just_sent": [
            {"at": _iso(at), "messages": [reply["text"] for reply in replies or ()]}
            for at, replies in await session.execute(
                select(ProcessedEvent.processed_at, ProcessedEvent.replies).where(
                    tuple_(ProcessedEvent.channel, ProcessedEvent.chat_id).in_(
                        [(i.channel, i.external_id) for i in person.identities]
                    ),
                    ProcessedEvent.replies.is_not(None),
                )
            )
        ],
        "messages_queued": [
            {"at": _iso(at), "status": status.value}
            for at, status in await session.execute(
                select(OutboxMessage.created_at, OutboxMessage.status)
                .where(OutboxMessage.person_id == person.id)
                .order_by(OutboxMessage.id)
            )
        ],
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


def summary(
    t: Translator, document: dict[str, Any], capabilities: Iterable[PersonalData]
) -> list[str]:
    """The document in a few lines the person can read, in their language."""
    channels = {"telegram": "Telegram", "whatsapp": "WhatsApp", "web": t._("the web chat")}
    lines = [
        t._("Your first name and language: {name}, {language}").format(
            name=document["person"]["first_name"] or "—",
            language=language_name(document["person"]["language"]),
        ),
        t._("How we reach you: {channels}").format(
            channels=", ".join(
                channels.get(account["channel"], account["channel"])
                for account in document["accounts"]
            )
        ),
    ]
    if document["councils"]:
        lines.append(
            t._("Your councils: {councils}").format(
                councils=", ".join(
                    t._("{council} (since {date})").format(
                        council=council["name"],
                        date=t.day(
                            datetime.fromisoformat(council["joined_at"]),
                            council["time_zone"],
                            format="long",
                        ),
                    )
                    for council in document["councils"]
                )
            )
        )
    messages = len(document["web_chat"]["messages"])
    if messages:
        lines.append(
            t.ngettext(
                "{count} message in the web chat", "{count} messages in the web chat", messages
            ).format(count=t.number(messages))
        )
    for data in capabilities:
        line = data.summary(t, document[data.key]) if data.summary else None
        if line:
            lines.append(line)
    return lines


# What this module keeps itself: who the person is, how they are reached, what is on its way
# to them. (WhatsApp menus are the channel's paging state, erased with the person.)
CORE_TABLES = (
    "persons",
    "identities",
    "memberships",
    "role_grants",
    "conversations",
    "outbox",
    "web_messages",
    "push_subscriptions",
    "whatsapp_menus",
    "processed_events",  # what was just answered, kept in case the update comes again
)


async def forget(
    session: AsyncSession, person: Person, capabilities: Iterable[PersonalData] = ()
) -> None:
    """Erase the person; anonymous aggregates that no longer point to them stay. Each
    capability first lets go of what points to them other than by a foreign key."""
    for data in capabilities:
        if data.erase is not None:
            await data.erase(session, person)
    await people.erase(session, person)

"""Persons, their channel identities, memberships and staff roles."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, delete, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from storage.models import (
    Conversation,
    Council,
    Identity,
    Membership,
    OutboxMessage,
    Person,
    ProcessedEvent,
    PushSubscription,
    Role,
    RoleGrant,
    WebMessage,
    WhatsAppMenu,
)


async def person_by_identity(
    session: AsyncSession, channel: str, external_id: str
) -> Person | None:
    query = (
        select(Person)
        .join(Identity)
        .where(Identity.channel == channel, Identity.external_id == external_id)
        .options(selectinload(Person.identities))
    )
    return await session.scalar(query)


async def memberships(session: AsyncSession, person: Person) -> Sequence[Membership]:
    query = (
        select(Membership)
        .where(Membership.person_id == person.id)
        .options(selectinload(Membership.council))
        .order_by(Membership.joined_at.desc(), Membership.id.desc())
    )
    return (await session.scalars(query)).all()


async def membership(session: AsyncSession, person: Person, council: Council) -> Membership | None:
    return await session.scalar(
        select(Membership).where(
            Membership.person_id == person.id, Membership.council_id == council.id
        )
    )


async def roles_of(
    session: AsyncSession, channel: str, external_id: str
) -> set[tuple[Council, Role]]:
    """The roles granted to this identity, or to any other identity of the same person (a
    coordinator named on Telegram keeps the role on the WhatsApp they linked)."""
    person = (
        select(Identity.person_id)
        .where(Identity.channel == channel, Identity.external_id == external_id)
        .scalar_subquery()
    )
    linked = select(Identity.channel, Identity.external_id).where(Identity.person_id == person)
    query = (
        select(RoleGrant)
        .where(
            or_(
                and_(RoleGrant.channel == channel, RoleGrant.external_id == external_id),
                tuple_(RoleGrant.channel, RoleGrant.external_id).in_(linked),
            )
        )
        .options(selectinload(RoleGrant.council))
    )
    return {(grant.council, grant.role) for grant in await session.scalars(query)}


async def grant_role(
    session: AsyncSession, council: Council, channel: str, external_id: str, role: Role
) -> RoleGrant:
    """Give a role in a council (replacing any earlier role there)."""
    grant = await session.scalar(
        select(RoleGrant).where(
            RoleGrant.council_id == council.id,
            RoleGrant.channel == channel,
            RoleGrant.external_id == external_id,
        )
    )
    if grant is None:
        grant = RoleGrant(
            council_id=council.id, channel=channel, external_id=external_id, role=role
        )
        session.add(grant)
    else:
        grant.role = role
    await session.flush()
    return grant


async def role_grants_for(session: AsyncSession, person: Person) -> Sequence[RoleGrant]:
    pairs = [(identity.channel, identity.external_id) for identity in person.identities]
    grants: list[RoleGrant] = []
    for channel, external_id in pairs:
        query = (
            select(RoleGrant)
            .where(RoleGrant.channel == channel, RoleGrant.external_id == external_id)
            .options(selectinload(RoleGrant.council))
        )
        grants.extend(await session.scalars(query))
    return grants


async def conversations_of(session: AsyncSession, person: Person) -> Sequence[Conversation]:
    return (
        await session.scalars(select(Conversation).where(Conversation.person_id == person.id))
    ).all()


async def erase(session: AsyncSession, person: Person) -> None:
    """Delete the person and everything that points to them, staff roles included."""
    for identity in person.identities:
        await session.execute(
            delete(RoleGrant).where(
                RoleGrant.channel == identity.channel, RoleGrant.external_id == identity.external_id
            )
        )
        await session.execute(
            delete(Conversation).where(
                Conversation.channel == identity.channel,
                Conversation.external_id == identity.external_id,
            )
        )
        await session.execute(
            update(ProcessedEvent)
            .where(
                ProcessedEvent.channel == identity.channel,
                ProcessedEvent.chat_id == identity.external_id,
            )
            .values(replies=None, chat_id=None)
        )
        if identity.channel == "web":
            await session.execute(
                delete(WebMessage).where(WebMessage.chat_id == identity.external_id)
            )
            await session.execute(
                delete(PushSubscription).where(PushSubscription.chat_id == identity.external_id)
            )
        if identity.channel == "whatsapp":
            await session.execute(
                delete(WhatsAppMenu).where(WhatsAppMenu.chat_id == identity.external_id)
            )
    await session.execute(delete(Conversation).where(Conversation.person_id == person.id))
    await session.execute(delete(OutboxMessage).where(OutboxMessage.person_id == person.id))
    await session.execute(delete(Person).where(Person.id == person.id))


async def address_of(session: AsyncSession, person_id: int) -> tuple[str, str] | None:
    """Where to write to a person: their preferred channel identity (channel, chat id)."""
    row = (
        await session.execute(
            select(Identity.channel, Identity.external_id)
            .where(Identity.person_id == person_id)
            .order_by(Identity.preferred.desc(), Identity.id)
            .limit(1)
        )
    ).first()
    return None if row is None else (row[0], row[1])

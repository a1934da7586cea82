"""Introductions: a resident's contact goes to a project holder only if they say yes.

Each introduction is asked for one call and one resident. On yes, the holder gets the
resident's Telegram username when the resident allowed direct contact, or else a relay:
messages pass through the bot, and neither side sees the other's account. A no is
respected silently: the holder is not told.
"""

from __future__ import annotations

import enum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from flows.broadcasts.service import to_payload
from flows.calls.buttons import Consent, IntroductionButton, RelayButton
from flows.engine import Choice, Reply
from flows.i18n import Translator
from flows.staff import coordinated
from storage.models import (
    Answer,
    Call,
    CallAnswer,
    Identity,
    Introduction,
    IntroductionStatus,
    Person,
    Priority,
    TalentProfile,
    utcnow,
)
from storage.queries import outbox, people


class Asked(enum.Enum):
    ASKED = "asked"
    ALREADY = "already"
    NOT_ALLOWED = "not_allowed"


async def ask(
    session: AsyncSession,
    call_id: int,
    person_id: int,
    coordinator: Person,
    channel: str,
    sender_id: str,
    is_admin: bool,
) -> Asked:
    """Ask a resident who offered help whether their contact may be shared."""
    call = await session.get(Call, call_id)
    if call is None or not await coordinated(
        session, channel, sender_id, is_admin, call.council_id
    ):
        return Asked.NOT_ALLOWED
    offered = await session.scalar(
        select(CallAnswer.id).where(
            CallAnswer.call_id == call.id,
            CallAnswer.person_id == person_id,
            CallAnswer.answer.in_([Answer.YES, Answer.MAYBE]),
        )
    )
    resident = await session.get(Person, person_id)
    address = await people.address_of(session, person_id)
    if offered is None or resident is None or address is None:
        return Asked.NOT_ALLOWED
    existing = await session.scalar(
        select(Introduction).where(
            Introduction.call_id == call.id, Introduction.person_id == person_id
        )
    )
    if existing is not None:
        return Asked.ALREADY
    introduction = Introduction(
        call_id=call.id,
        person_id=person_id,
        requested_by=coordinator.id,
        status=IntroductionStatus.ASKED,
    )
    session.add(introduction)
    await session.flush()
    t = Translator(resident.locale)
    yes, no = (IntroductionButton(introduction.id, consent) for consent in Consent)
    question = Reply(
        t._("About “{title}”: may we share your contact with {name}, who runs it?").format(
            title=call.title, name=coordinator.first_name or "—"
        ),
        (
            (
                Choice(t._("Yes, share it"), yes.pack()),
                Choice(t._("No"), no.pack()),
            ),
        ),
    )
    await _send(session, address, question, call.council_id, person_id)
    return Asked.ASKED


class Decided(enum.Enum):
    ACCEPTED = "accepted"
    DECLINED = "declined"
    ALREADY = "already"
    NOT_ALLOWED = "not_allowed"


async def decide(
    session: AsyncSession, introduction_id: int, person: Person, accept: bool
) -> tuple[Decided, Introduction | None]:
    """The resident's answer; only they can give it, once."""
    introduction = await session.get(Introduction, introduction_id, with_for_update=True)
    if introduction is None or introduction.person_id != person.id:
        return Decided.NOT_ALLOWED, None
    if introduction.status != IntroductionStatus.ASKED:
        return Decided.ALREADY, introduction
    introduction.status = IntroductionStatus.ACCEPTED if accept else IntroductionStatus.DECLINED
    introduction.answered_at = utcnow()
    return (Decided.ACCEPTED if accept else Decided.DECLINED), introduction


async def direct_contact(
    session: AsyncSession, introduction: Introduction, call: Call
) -> str | None:
    """The resident's @username, if they allowed direct contact and have one."""
    allowed = await session.scalar(
        select(TalentProfile.contact_ok).where(
            TalentProfile.person_id == introduction.person_id,
            TalentProfile.council_id == call.council_id,
        )
    )
    if not allowed:
        return None
    username = await session.scalar(
        select(Identity.username).where(
            Identity.person_id == introduction.person_id,
            Identity.channel == "telegram",
            Identity.username.is_not(None),
        )
    )
    return f"@{username}" if username else None


async def tell_holder(
    session: AsyncSession, introduction: Introduction, call: Call, resident: Person
) -> None:
    """Give the holder the contact, or a way to write through the bot."""
    if call.holder_chat is None or call.holder_channel is None:
        return
    t = Translator(call.holder_locale)
    contact = await direct_contact(session, introduction, call)
    if contact is not None:
        reply = Reply(
            t._("{name} agreed to be put in touch about “{title}”: {contact}").format(
                name=resident.first_name, title=call.title, contact=contact
            )
        )
    else:
        reply = Reply(
            t._(
                "{name} agreed to be put in touch about “{title}”, through this bot: "
                "write to them with the button."
            ).format(name=resident.first_name, title=call.title),
            ((Choice("✉️ " + t._("Write to them"), RelayButton(introduction.id).pack()),),),
        )
    await _send(session, (call.holder_channel, call.holder_chat), reply, call.council_id, None)


class Relay(enum.Enum):
    TO_RESIDENT = "to_resident"
    TO_HOLDER = "to_holder"
    NOT_ALLOWED = "not_allowed"


async def relay_direction(
    session: AsyncSession, introduction_id: int, person: Person
) -> tuple[Relay, Introduction | None, Call | None]:
    """Who the writer is writing to; only the two sides of an accepted introduction may."""
    introduction = await session.get(Introduction, introduction_id)
    if introduction is None or introduction.status != IntroductionStatus.ACCEPTED:
        return Relay.NOT_ALLOWED, None, None
    call = await session.get(Call, introduction.call_id)
    if call is None:
        return Relay.NOT_ALLOWED, None, None
    if person.id == introduction.requested_by:
        return Relay.TO_RESIDENT, introduction, call
    if person.id == introduction.person_id:
        return Relay.TO_HOLDER, introduction, call
    return Relay.NOT_ALLOWED, None, None


async def relay(
    session: AsyncSession,
    introduction: Introduction,
    call: Call,
    writer: Person,
    direction: Relay,
    text: str,
) -> bool:
    """Pass a message to the other side, with a button to answer."""
    if direction is Relay.TO_RESIDENT:
        resident = await session.get(Person, introduction.person_id)
        address = await people.address_of(session, introduction.person_id)
        locale = resident.locale if resident else "fr"
    else:
        address = (
            (call.holder_channel, call.holder_chat)
            if call.holder_channel and call.holder_chat
            else None
        )
        locale = call.holder_locale
    if address is None:
        return False
    t = Translator(locale)
    reply = Reply(
        "✉️ "
        + t._("{name} about “{title}”:").format(name=writer.first_name, title=call.title)
        + f"\n\n{text}",
        ((Choice(t._("Answer"), RelayButton(introduction.id).pack()),),),
    )
    await _send(
        session,
        address,
        reply,
        call.council_id,
        introduction.person_id if direction is Relay.TO_RESIDENT else None,
    )
    return True


async def _send(
    session: AsyncSession,
    address: tuple[str, str],
    reply: Reply,
    council_id: int,
    person_id: int | None,
) -> None:
    await outbox.enqueue_one(
        session,
        channel=address[0],
        chat_id=address[1],
        payload=to_payload(reply),
        priority=Priority.REPORT,
        council_id=council_id,
        person_id=person_id,
    )

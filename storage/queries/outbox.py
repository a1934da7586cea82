"""The outbox: enqueue in bulk, claim what is due, record what happened."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Select,
    and_,
    case,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from storage.models import (
    Broadcast,
    BroadcastStatus,
    Identity,
    OutboxMessage,
    OutboxStatus,
    Person,
    PersonStatus,
    utcnow,
)

UNREACHABLE = "unreachable"  # last_error of a message whose recipient blocked the bot
TEMPLATE_REFUSED = "template:"  # last_error of one whose template the channel refused
UNANNOUNCED = "unannounced"  # in a web chat mailbox, with no open page and no notification
LOCALE_KEY = "broadcast_locale"  # a broadcast's row names its language; the text is stored once
QUEUED = "outbox"  # the notice that something was queued (PostgreSQL's NOTIFY)


async def announce(session: AsyncSession) -> None:
    """Tell the sending process, when this transaction commits, that something is due now: it
    looks at once rather than at its next poll, whichever process it is (`Lease.listen`).
    PostgreSQL sends one notice per transaction however often it is asked; SQLite is one
    process, whose dispatcher looks again within a quarter of a second."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.pg_notify(QUEUED, "")))


async def enqueue_for_audience(
    session: AsyncSession,
    broadcast: Broadcast,
    audience: Select[int],
    payloads: Mapping[str, dict[str, Any]],
    default_locale: str,
    priority: int,
) -> int:
    """Queue one message per person of the audience, in their language; returns how many.

    One INSERT … SELECT: the database streams the audience, and nothing is built in
    memory, whatever its size. Each row names its recipient's language; the messages
    themselves are stored once, on the broadcast.
    """
    audience_ids = audience.subquery()
    in_their_language = case(
        {locale: literal({LOCALE_KEY: locale}, JSON) for locale in payloads},
        value=Person.locale,
        else_=literal({LOCALE_KEY: default_locale}, JSON),
    )
    rows = (
        select(
            literal(broadcast.id),
            literal(broadcast.council_id),
            Person.id,
            Identity.channel,
            Identity.external_id,
            in_their_language,
            literal(priority),
            literal(OutboxStatus.PENDING.value),
            literal(0),
            literal(broadcast.not_before),
            literal(utcnow()),
        )
        .select_from(Person)
        .join(audience_ids, audience_ids.c[0] == Person.id)
        .join(Identity, Identity.person_id == Person.id)
        .where(Person.status == PersonStatus.ACTIVE, Identity.preferred.is_(True))
    )
    result = await session.execute(
        insert(OutboxMessage).from_select(
            [
                "broadcast_id",
                "council_id",
                "person_id",
                "channel",
                "chat_id",
                "payload",
                "priority",
                "status",
                "attempts",
                "next_attempt_at",
                "created_at",
            ],
            rows,
        )
    )
    queued = max(result.rowcount or 0, 0)  # type: ignore[attr-defined]
    if queued:
        await announce(session)
    return queued


@dataclass(frozen=True)
class Claimed:
    """A message a dispatcher took: everything needed to send it."""

    id: int
    broadcast_id: int | None
    council_id: int | None
    person_id: int | None
    channel: str
    chat_id: str
    payload: dict[str, Any]
    priority: int
    attempts: int
    locale: str | None = None  # the recipient's language
    last_inbound_at: datetime | None = None  # when the recipient last wrote on this channel
    parts_sent: int = 0  # of a long message cut in several, those sent at earlier attempts


async def claim(
    session: AsyncSession,
    dispatcher: str,
    channels: Sequence[str],
    limit: int,
    now: datetime,
    windowed: Iterable[str] = (),
) -> list[Claimed]:
    """Take up to `limit` due messages, most urgent first, skipping rows other dispatchers hold.

    Messages due to someone who stopped or became unreachable since they were queued are
    cancelled here, as they come due, with the person's status as the reason: queueing and
    stopping then never need to look up a person's messages, and the outbox needs no index
    on its recipients.

    For channels in `windowed` (WhatsApp), each message also says when its recipient last
    wrote there, read for those messages only.
    """
    due = (
        select(OutboxMessage.id, Person.status, Person.locale)
        .outerjoin(Person, Person.id == OutboxMessage.person_id)
        .where(
            OutboxMessage.status == OutboxStatus.PENDING,
            OutboxMessage.next_attempt_at <= now,
            OutboxMessage.channel.in_(channels),
        )
        .order_by(OutboxMessage.priority, OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
        .with_for_update(of=OutboxMessage, skip_locked=True)
    )
    taken = (await session.execute(due)).all()
    ids = [row.id for row in taken if row.status in (None, PersonStatus.ACTIVE)]
    locales = {row.id: row.locale for row in taken}
    gone: dict[str, list[int]] = {}
    for row in taken:
        if row.status not in (None, PersonStatus.ACTIVE):
            gone.setdefault(PersonStatus(row.status).value, []).append(row.id)
    for reason, gone_ids in gone.items():
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(gone_ids))
            .values(status=OutboxStatus.CANCELLED, last_error=reason)
        )
    if not ids:
        return []
    rows = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids))
        .values(status=OutboxStatus.SENDING, claimed_by=dispatcher, claimed_at=now)
        .returning(
            OutboxMessage.id,
            OutboxMessage.broadcast_id,
            OutboxMessage.council_id,
            OutboxMessage.person_id,
            OutboxMessage.channel,
            OutboxMessage.chat_id,
            OutboxMessage.payload,
            OutboxMessage.priority,
            OutboxMessage.attempts,
            OutboxMessage.parts_sent,
        )
    )
    claimed = [
        Claimed(
            id=row.id,
            broadcast_id=row.broadcast_id,
            council_id=row.council_id,
            person_id=row.person_id,
            channel=row.channel,
            chat_id=row.chat_id,
            payload=row.payload,
            priority=row.priority,
            attempts=row.attempts,
            locale=locales[row.id],
            parts_sent=row.parts_sent,
        )
        for row in rows
    ]
    windowed = set(windowed)
    chats = {(m.channel, m.chat_id) for m in claimed if m.channel in windowed}
    if chats:
        wrote = {
            (channel, external_id): at
            for channel, external_id, at in await session.execute(
                select(Identity.channel, Identity.external_id, Identity.last_inbound_at).where(
                    tuple_(Identity.channel, Identity.external_id).in_(list(chats))
                )
            )
        }
        claimed = [
            replace(m, last_inbound_at=wrote.get((m.channel, m.chat_id)))
            if m.channel in windowed
            else m
            for m in claimed
        ]
    claimed.sort(key=lambda message: (message.priority, message.id))
    return claimed


async def mark_sent(session: AsyncSession, ids: Iterable[int], now: datetime) -> None:
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(list(ids)), OutboxMessage.status == OutboxStatus.SENDING)
        .values(
            status=OutboxStatus.SENT,
            sent_at=now,
            attempts=OutboxMessage.attempts + 1,
            claimed_by=None,
            last_error=None,
        )
    )


async def mark_failed(session: AsyncSession, message_id: int, error: str) -> None:
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(
            status=OutboxStatus.FAILED,
            attempts=OutboxMessage.attempts + 1,
            claimed_by=None,
            last_error=error[:200],
        )
    )


async def release(
    session: AsyncSession,
    message_id: int,
    at: datetime,
    error: str | None,
    count_attempt: bool,
    parts_sent: int | None = None,
) -> None:
    """Put a claimed message back in the queue, due at `at` (with how many parts of it
    went, if it was cut in several: the next attempt sends the rest)."""
    progress = {} if parts_sent is None else {"parts_sent": parts_sent}
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(
            status=OutboxStatus.PENDING,
            next_attempt_at=at,
            claimed_by=None,
            attempts=OutboxMessage.attempts + (1 if count_attempt else 0),
            last_error=None if error is None else error[:200],
            **progress,
        )
    )


async def mark_unreachable(session: AsyncSession, person_id: int, message_id: int | None) -> None:
    """The person blocked the bot: mark them and fail this message.

    What else is queued for them is cancelled by `claim` as it comes due.
    """
    await session.execute(
        update(Person)
        .where(Person.id == person_id, Person.status == PersonStatus.ACTIVE)
        .values(status=PersonStatus.UNREACHABLE)
    )
    if message_id is not None:
        await mark_failed(session, message_id, UNREACHABLE)


async def cancel_broadcast(session: AsyncSession, broadcast_id: int) -> int:
    """Cancel what a broadcast has not sent yet (what is being sent finishes)."""
    result = await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.broadcast_id == broadcast_id, OutboxMessage.status == OutboxStatus.PENDING
        )
        .values(status=OutboxStatus.CANCELLED, last_error="interrupted")
    )
    return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


async def cancel_message(session: AsyncSession, message_id: int, reason: str) -> None:
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(status=OutboxStatus.CANCELLED, claimed_by=None, last_error=reason)
    )


async def interrupted_among(session: AsyncSession, broadcast_ids: set[int | None]) -> set[int]:
    """Which of these broadcasts their coordinator stopped."""
    if not broadcast_ids:
        return set()
    query = select(Broadcast.id).where(
        Broadcast.id.in_(broadcast_ids), Broadcast.status == BroadcastStatus.INTERRUPTED
    )
    return set(await session.scalars(query))


async def broadcast_details(
    session: AsyncSession, broadcast_ids: set[int]
) -> dict[int, tuple[float | None, dict[str, Any]]]:
    """Each broadcast's own pace (if smoothed over a duration) and its message per language."""
    if not broadcast_ids:
        return {}
    rows = await session.execute(
        select(Broadcast.id, Broadcast.max_rate, Broadcast.payloads).where(
            Broadcast.id.in_(broadcast_ids)
        )
    )
    return {broadcast_id: (rate, payloads) for broadcast_id, rate, payloads in rows}


async def reclaim_abandoned(session: AsyncSession, older_than: datetime) -> int:
    """Put back messages claimed by a dispatcher that died before recording them."""
    result = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.status == OutboxStatus.SENDING, OutboxMessage.claimed_at < older_than)
        .values(status=OutboxStatus.PENDING, claimed_by=None)
    )
    return max(result.rowcount or 0, 0)  # type: ignore[attr-defined]


async def renew_claims(session: AsyncSession, dispatcher: str, now: datetime) -> None:
    """A live dispatcher still holds these: keep others from taking them back."""
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.status == OutboxStatus.SENDING, OutboxMessage.claimed_by == dispatcher)
        .values(claimed_at=now)
    )


@dataclass(frozen=True)
class Counts:
    total: int
    sent: int
    failed: int
    unreachable: int
    cancelled: int
    waiting: int  # pending or being sent
    templates: int = 0  # sent as WhatsApp templates (billed)
    unannounced: int = 0  # waiting in a web chat mailbox, nobody notified
    refused_templates: tuple[str, ...] = ()  # templates the channel refused, one per message

    @property
    def finished(self) -> bool:
        return self.waiting == 0


async def counts(session: AsyncSession, broadcast_id: int) -> Counts:
    """Where a broadcast stands, counted from its messages."""
    status = OutboxMessage.status
    row = (
        await session.execute(
            select(
                func.count(),
                func.sum(case((status == OutboxStatus.SENT, 1), else_=0)),
                func.sum(
                    case(
                        (
                            and_(
                                status == OutboxStatus.FAILED,
                                OutboxMessage.last_error != UNREACHABLE,
                            ),
                            1,
                        ),
                        else_=0,
                    )
                ),
                func.sum(
                    case(
                        (
                            and_(
                                status == OutboxStatus.FAILED,
                                OutboxMessage.last_error == UNREACHABLE,
                            ),
                            1,
                        ),
                        else_=0,
                    )
                ),
                func.sum(case((status == OutboxStatus.CANCELLED, 1), else_=0)),
                func.sum(
                    case(
                        (and_(status == OutboxStatus.SENT, OutboxMessage.template.is_not(None)), 1),
                        else_=0,
                    )
                ),
                func.sum(
                    case(
                        (
                            and_(status == OutboxStatus.SENT, OutboxMessage.receipt == UNANNOUNCED),
                            1,
                        ),
                        else_=0,
                    )
                ),
            ).where(OutboxMessage.broadcast_id == broadcast_id)
        )
    ).one()
    total, sent, failed, unreachable, cancelled, templates, unannounced = (
        int(value or 0) for value in row
    )
    refused: tuple[str, ...] = ()
    if failed:
        refused = tuple(
            str(error).removeprefix(TEMPLATE_REFUSED)
            for error in await session.scalars(
                select(OutboxMessage.last_error).where(
                    OutboxMessage.broadcast_id == broadcast_id,
                    OutboxMessage.status == OutboxStatus.FAILED,
                    OutboxMessage.last_error.startswith(TEMPLATE_REFUSED),
                )
            )
        )
    return Counts(
        total=total,
        sent=sent,
        failed=failed - len(refused),
        unreachable=unreachable,
        cancelled=cancelled,
        waiting=total - sent - failed - unreachable - cancelled,
        templates=templates,
        refused_templates=refused,
        unannounced=unannounced,
    )


async def broadcasts_to_report(
    session: AsyncSession, now: datetime, every: timedelta
) -> list[Broadcast]:
    """Broadcasts whose progress report is due, taken by this process alone."""
    query = (
        select(Broadcast)
        .where(
            Broadcast.finished_at.is_(None),
            Broadcast.status != BroadcastStatus.DONE,
            or_(Broadcast.reported_at.is_(None), Broadcast.reported_at <= now - every),
        )
        .order_by(Broadcast.id)
        .limit(20)
        .with_for_update(skip_locked=True)
    )
    due = list(await session.scalars(query))
    for broadcast in due:
        broadcast.reported_at = now
    return due


async def enqueue_one(
    session: AsyncSession,
    *,
    channel: str,
    chat_id: str,
    payload: dict[str, Any],
    priority: int,
    person_id: int | None = None,
    council_id: int | None = None,
    key: str | None = None,
    at: datetime | None = None,
) -> OutboxMessage:
    """Queue a single message (a reply sent later, a notice to one person)."""
    message = OutboxMessage(
        channel=channel,
        chat_id=chat_id,
        payload=payload,
        priority=priority,
        person_id=person_id,
        council_id=council_id,
        idempotency_key=key,
        next_attempt_at=at or utcnow(),
        status=OutboxStatus.PENDING,
        attempts=0,
    )
    session.add(message)
    await session.flush()
    await announce(session)
    return message


# --- channels that announce a message before showing it (WhatsApp templates) ---------------

RECEIPT_ORDER = {"sent": 0, "delivered": 1, "read": 2}


async def note_sent(
    session: AsyncSession,
    message_id: int,
    provider_id: str | None,
    template: str | None,
    *,
    receipt: str | None = None,
) -> None:
    """Remember the channel's id of a sent message, the template it went out as, and what is
    known of its arrival (`UNANNOUNCED`: it waits in a mailbox nobody was told about)."""
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(provider_id=provider_id, template=template, receipt=receipt)
    )


async def by_provider_id(session: AsyncSession, provider_id: str) -> OutboxMessage | None:
    return await session.scalar(
        select(OutboxMessage).where(OutboxMessage.provider_id == provider_id).with_for_update()
    )


async def note_receipts(session: AsyncSession, receipts: Mapping[str, str]) -> set[str]:
    """Mark messages delivered or read, by the channel's ids; a receipt never goes back
    ('read' is not overwritten by a 'delivered' that arrived late). Returns the ids no row
    has yet: a receipt can come before its message is recorded as sent."""
    ids = list(receipts)
    known: dict[str, str | None] = {}
    for start in range(0, len(ids), 500):
        rows = await session.execute(
            select(OutboxMessage.provider_id, OutboxMessage.receipt).where(
                OutboxMessage.provider_id.in_(ids[start : start + 500])
            )
        )
        known.update({str(provider_id): receipt for provider_id, receipt in rows})
    for status in RECEIPT_ORDER:
        better = [
            provider_id
            for provider_id, given in receipts.items()
            if given == status
            and provider_id in known
            and better_receipt(known[provider_id], given)
        ]
        for start in range(0, len(better), 500):
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.provider_id.in_(better[start : start + 500]))
                .values(receipt=status)
            )
    return set(receipts) - set(known)


def better_receipt(current: str | None, new: str) -> bool:
    """Receipts arrive out of order: 'read' is never overwritten by 'delivered'."""
    return RECEIPT_ORDER.get(new, -1) > RECEIPT_ORDER.get(current or "", -1)


async def send_again(session: AsyncSession, message: OutboxMessage, now: datetime) -> None:
    """A sent message the channel could not deliver after all: queue it again, now."""
    message.status = OutboxStatus.PENDING
    message.next_attempt_at = now
    message.provider_id = None
    message.template = None
    message.claimed_by = None
    await announce(session)


@dataclass(frozen=True)
class Held:
    """A message that went out as a template, whose full text the person may now read."""

    id: int
    person_id: int | None
    council_id: int | None
    payload: dict[str, Any]


async def open_held(
    session: AsyncSession, channel: str, chat_id: str, now: datetime, tapped: int | None = None
) -> list[Held]:
    """The messages announced by template to this chat whose full text has not followed yet,
    marked as opened (each comes out once), their text in the recipient's language.

    `tapped` is the message whose template's button was tapped: it counts even if the
    dispatcher has not yet recorded that it went out as a template."""
    announced: ColumnElement[bool] = OutboxMessage.template.is_not(None)
    if tapped is not None:
        announced = or_(announced, OutboxMessage.id == tapped)
    rows = (
        await session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.channel == channel,
                OutboxMessage.chat_id == chat_id,
                announced,
                OutboxMessage.opened_at.is_(None),
            )
            .order_by(OutboxMessage.id)
            .with_for_update()
        )
    ).all()
    broadcasts = await broadcast_details(
        session, {row.broadcast_id for row in rows if row.broadcast_id is not None}
    )
    held: list[Held] = []
    for row in rows:
        row.opened_at = now
        payload = row.payload
        locale = payload.get(LOCALE_KEY)
        if row.broadcast_id is not None and locale is not None:
            texts = broadcasts.get(row.broadcast_id, (None, {}))[1]
            payload = texts.get(str(locale)) or next(iter(texts.values()), {})
        if payload:
            held.append(Held(row.id, row.person_id, row.council_id, payload))
    return held

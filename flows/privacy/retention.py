"""How long what is not any capability's own is kept: processed update ids, the outbox's
sent messages, web chat conversations."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from flows.engine import Retention, deleted
from storage.models import (
    Broadcast,
    BroadcastStatus,
    Identity,
    OutboxMessage,
    OutboxStatus,
    ProcessedEvent,
    WebMessage,
)


async def processed_events(session: AsyncSession, before: datetime) -> int:
    """Update ids are kept to refuse a re-delivered one; Telegram re-delivers within hours."""
    return deleted(
        await session.execute(delete(ProcessedEvent).where(ProcessedEvent.processed_at < before))
    )


async def answers_kept_for_a_redelivery(session: AsyncSession, before: datetime) -> int:
    """What an update answered, kept in case it is delivered again after a crash (see
    `ProcessedEvent`): by then, it went."""
    result = await session.execute(
        update(ProcessedEvent)
        .where(ProcessedEvent.replies.is_not(None), ProcessedEvent.processed_at < before)
        .values(replies=None, chat_id=None)
        .execution_options(synchronize_session=False)
    )
    return deleted(result)


async def sent_messages(session: AsyncSession, before: datetime) -> int:
    """Messages that went (or failed, or were cancelled), once their broadcast is over: its
    figures are kept on the broadcast itself."""
    finished = select(Broadcast.id).where(
        Broadcast.status.in_([BroadcastStatus.DONE, BroadcastStatus.INTERRUPTED])
    )
    return deleted(
        await session.execute(
            delete(OutboxMessage)
            .where(
                OutboxMessage.status.in_(
                    [OutboxStatus.SENT, OutboxStatus.FAILED, OutboxStatus.CANCELLED]
                ),
                OutboxMessage.created_at < before,
                or_(
                    OutboxMessage.broadcast_id.is_(None),
                    OutboxMessage.broadcast_id.in_(finished),
                ),
            )
            .execution_options(synchronize_session=False)
        )
    )


async def old_conversations(session: AsyncSession, before: datetime) -> int:
    """Web chat messages shown long ago (the mailbox's waiting ones stay)."""
    return deleted(
        await session.execute(
            delete(WebMessage)
            .where(
                WebMessage.created_at < before,
                or_(WebMessage.mailed.is_(False), WebMessage.delivered_at.is_not(None)),
            )
            .execution_options(synchronize_session=False)
        )
    )


async def visitors_who_never_joined(session: AsyncSession, before: datetime) -> int:
    """The web chat of someone who opened the page and never consented: nobody to keep it for."""
    members = select(Identity.external_id).where(Identity.channel == "web")
    return deleted(
        await session.execute(
            delete(WebMessage)
            .where(and_(WebMessage.created_at < before, WebMessage.chat_id.not_in(members)))
            .execution_options(synchronize_session=False)
        )
    )


RULES = (
    Retention("processed update ids", timedelta(days=7), processed_events),
    Retention(
        "answers kept for an update delivered again",
        timedelta(hours=1),
        answers_kept_for_a_redelivery,
    ),
    Retention("sent messages of the outbox", timedelta(days=90), sent_messages),
    Retention("web chat conversations", timedelta(days=365), old_conversations),
    Retention(
        "web chats of visitors who never joined", timedelta(days=30), visitors_who_never_joined
    ),
)

"""Web Push subscriptions: one row per browser, found by its endpoint.

A browser has one endpoint per site. When it subscribes again under another chat id (its
cookie was lost, or someone else signed in on the same device) the row moves to the new
chat: notifications follow the browser, never the old chat.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import PushSubscription, utcnow

CHUNK = 500  # chat ids per IN (…): well under SQLite's and asyncpg's parameter limits


async def subscribe(
    session: AsyncSession, chat_id: str, endpoint: str, p256dh: str, auth: str
) -> None:
    """Keep a browser's subscription for this chat, taking it from any other chat.

    One INSERT … ON CONFLICT on the endpoint: two pages of the same browser subscribing at
    once leave one row, whichever wins.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(PushSubscription).values(
        chat_id=chat_id, endpoint=endpoint, p256dh=p256dh, auth=auth, created_at=utcnow()
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[PushSubscription.endpoint],
            set_={
                "chat_id": statement.excluded.chat_id,
                "p256dh": statement.excluded.p256dh,
                "auth": statement.excluded.auth,
                "created_at": statement.excluded.created_at,
            },
        )
    )


async def subscriptions_of(session: AsyncSession, chat_id: str) -> Sequence[PushSubscription]:
    """Every browser that asked to be told about this chat's messages, oldest first."""
    rows = await session.scalars(
        select(PushSubscription)
        .where(PushSubscription.chat_id == chat_id)
        .order_by(PushSubscription.id)
    )
    return rows.all()


async def unsubscribe(session: AsyncSession, endpoint: str, chat_id: str | None = None) -> bool:
    """Forget one subscription; True if there was one.

    With `chat_id`, only if it belongs to that chat: a page may unsubscribe its own browser,
    not someone else's. Without it (the push service said the endpoint is gone), whoever's.
    """
    statement = delete(PushSubscription).where(PushSubscription.endpoint == endpoint)
    if chat_id is not None:
        statement = statement.where(PushSubscription.chat_id == chat_id)
    result = await session.execute(statement)
    return bool(getattr(result, "rowcount", 0))


async def forget_chat(session: AsyncSession, chat_id: str) -> int:
    """Delete every subscription of a chat (the person asked to be forgotten); how many."""
    result = await session.execute(
        delete(PushSubscription).where(PushSubscription.chat_id == chat_id)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def without_subscription(session: AsyncSession, chat_ids: Iterable[str]) -> set[str]:
    """Those of these chats that no browser subscribed for: their messages wait in the web
    chat until they open it (a broadcast's report says how many)."""
    wanted = set(chat_ids)
    subscribed: set[str] = set()
    ordered = sorted(wanted)
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start : start + CHUNK]
        subscribed.update(
            await session.scalars(
                select(PushSubscription.chat_id)
                .where(PushSubscription.chat_id.in_(chunk))
                .distinct()
            )
        )
    return wanted - subscribed


async def count_without_subscription(session: AsyncSession, chat_ids: Iterable[str]) -> int:
    """How many of these chats have no subscription."""
    return len(await without_subscription(session, chat_ids))

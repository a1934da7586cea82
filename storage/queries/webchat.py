"""A web chat conversation, kept both ways: what the person said, what the bot answered, and
what the council sent them (the mailbox)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import WebMessage, utcnow

BOT = "bot"
ME = "me"


async def recent(session: AsyncSession, chat_id: str, limit: int) -> list[WebMessage]:
    """The conversation's last `limit` messages, and any older one still waiting to be shown,
    oldest first."""
    newest = (
        select(WebMessage.id)
        .where(WebMessage.chat_id == chat_id)
        .order_by(WebMessage.id.desc())
        .limit(limit)
    )
    floor = await session.scalar(select(newest.subquery().c.id).order_by("id").limit(1))
    if floor is None:
        return []
    rows = await session.scalars(
        select(WebMessage)
        .where(
            WebMessage.chat_id == chat_id,
            or_(
                WebMessage.id >= floor,
                and_(WebMessage.mailed.is_(True), WebMessage.delivered_at.is_(None)),
            ),
        )
        .order_by(WebMessage.id)
    )
    return list(rows)


async def said(
    session: AsyncSession,
    chat_id: str,
    author: str,
    payload: dict[str, Any],
    *,
    mailed: bool = False,
    delivered: bool = False,
) -> WebMessage:
    """Add a message; `mailed` for a council's message (its buttons stay good when the
    conversation moves on), not yet `delivered` when no page may have shown it."""
    row = WebMessage(
        chat_id=chat_id,
        author=author,
        payload=payload,
        mailed=mailed,
        delivered_at=utcnow() if delivered else None,
    )
    session.add(row)
    await session.flush()
    return row


async def one(session: AsyncSession, chat_id: str, message_id: int) -> WebMessage | None:
    """A message of this conversation; None for another person's or a made-up id."""
    row = await session.get(WebMessage, message_id)
    return row if row is not None and row.chat_id == chat_id else None


async def several(
    session: AsyncSession, chat_id: str, message_ids: Sequence[int]
) -> dict[int, WebMessage]:
    """Messages of this conversation by id (those still kept)."""
    if not message_ids:
        return {}
    rows = await session.scalars(
        select(WebMessage).where(WebMessage.chat_id == chat_id, WebMessage.id.in_(message_ids))
    )
    return {row.id: row for row in rows}


async def spend_questions(
    session: AsyncSession, chat_id: str, *, sparing: int | None = None
) -> Sequence[int]:
    """The bot asks something new: the questions it asked before in the conversation (not the
    council's messages, whose buttons stay good) stop answering. Returns their ids."""
    query = (
        update(WebMessage)
        .where(
            WebMessage.chat_id == chat_id,
            WebMessage.author == BOT,
            WebMessage.mailed.is_(False),
            WebMessage.spent.is_(False),
        )
        .values(spent=True)
        .returning(WebMessage.id)
        .execution_options(synchronize_session=False)
    )
    if sparing is not None:
        query = query.where(WebMessage.id != sparing)
    spent = sorted((await session.scalars(query)).all())
    # Questions asked off the record (an anonymous ballot's) go once past, with their ticks.
    unkept = [
        row.id
        for row in await session.scalars(select(WebMessage).where(WebMessage.id.in_(spent)))
        if row.payload.get("unkept")
    ]
    if unkept:
        await session.execute(delete(WebMessage).where(WebMessage.id.in_(unkept)))
    return spent


async def acknowledge(session: AsyncSession, chat_id: str, message_id: int) -> None:
    """A page showed a message from the mailbox: it no longer waits."""
    await session.execute(
        update(WebMessage)
        .where(
            WebMessage.id == message_id,
            WebMessage.chat_id == chat_id,
            WebMessage.delivered_at.is_(None),
        )
        .values(delivered_at=utcnow())
    )


async def erase(session: AsyncSession, chat_id: str) -> None:
    await session.execute(delete(WebMessage).where(WebMessage.chat_id == chat_id))


async def conversation_of(session: AsyncSession, chat_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Every message kept for these web chats, for /mydata (files named, not included)."""
    rows = await session.scalars(
        select(WebMessage).where(WebMessage.chat_id.in_(chat_ids)).order_by(WebMessage.id)
    )
    kept: list[dict[str, Any]] = []
    for row in rows:
        entry: dict[str, Any] = {
            "at": row.created_at.isoformat(),
            "from": "you" if row.author == ME else "bot",
            "text": row.payload.get("text", ""),
        }
        attachment = row.payload.get("attachment")
        if isinstance(attachment, dict):
            entry["file"] = attachment.get("filename")
        kept.append(entry)
    return kept

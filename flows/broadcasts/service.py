"""Start a broadcast in the same transaction as the record that causes it.

Flows describe what to say (a function from a Translator to a Reply) and to whom
(a SELECT of person ids); the outbox gets one message per person, in their language.
"""

from __future__ import annotations

import base64
import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from flows.broadcasts.quiet import next_allowed
from flows.engine import Attachment, Choice, Notice, NoticeKind, Reply
from flows.i18n import DEFAULT_LOCALE, SHIPPED_LOCALES, Translator
from storage.models import (
    Broadcast,
    BroadcastStatus,
    Council,
    Membership,
    Person,
    PersonStatus,
    Priority,
    Role,
    utcnow,
)
from storage.queries import outbox

Render = Callable[[Translator], Reply]


def to_payload(reply: Reply) -> dict[str, Any]:
    """A reply as stored in the outbox (JSON; a file, such as a calendar file, in base64)."""
    payload: dict[str, Any] = {
        "text": reply.text,
        "choices": [[{"label": c.label, "data": c.data} for c in row] for row in reply.choices],
    }
    if reply.attachment is not None:
        file = reply.attachment
        payload["attachment"] = {
            "filename": file.filename,
            "mime_type": file.mime_type,
            "kind": file.kind,
            "content": base64.b64encode(file.content).decode("ascii"),
        }
    if reply.notice is not None:
        notice = reply.notice
        payload["notice"] = {
            "kind": notice.kind.value,
            "locale": notice.locale,
            "council": notice.council,
            "title": notice.title,
            "when": notice.when,
            "place": notice.place,
        }
    return payload


def from_payload(payload: dict[str, Any]) -> Reply:
    """The reply an outbox payload describes."""
    choices = tuple(
        tuple(Choice(str(c["label"]), str(c["data"])) for c in row)
        for row in payload.get("choices", [])
    )
    file = payload.get("attachment")
    attachment = None
    if isinstance(file, dict):
        attachment = Attachment(
            filename=str(file["filename"]),
            content=base64.b64decode(file["content"]),
            mime_type=str(file["mime_type"]),
            kind=str(file.get("kind", "document")),
        )
    notice = None
    about = payload.get("notice")
    if isinstance(about, dict) and about.get("kind") in NoticeKind._value2member_map_:
        notice = Notice(
            kind=NoticeKind(about["kind"]),
            locale=str(about.get("locale", DEFAULT_LOCALE)),
            council=str(about.get("council", "")),
            title=str(about.get("title", "")),
            when=str(about.get("when", "")),
            place=str(about.get("place", "")),
        )
    return Reply(
        text=str(payload.get("text", "")), choices=choices, attachment=attachment, notice=notice
    )


def members(council: Council) -> Select[int]:
    """Everyone in the council who still wants its messages."""
    return (
        select(Person.id)
        .join(Membership, Membership.person_id == Person.id)
        .where(Membership.council_id == council.id, Person.status == PersonStatus.ACTIVE)
    )


@dataclass(frozen=True)
class ReportTo:
    """Where the coordinator follows the broadcast."""

    channel: str
    chat_id: str
    locale: str


async def start_broadcast(
    session: AsyncSession,
    *,
    council: Council,
    kind: str,
    audience: Select[int],
    render: Render,
    started_by: Person | None = None,
    report_to: ReportTo | None = None,
    subject: str | None = None,
    urgent: bool = False,
    spread: timedelta | None = None,
    now: datetime | None = None,
) -> Broadcast:
    """Record the broadcast and queue its messages; nothing is sent before the commit."""
    now = now or utcnow()
    broadcast = Broadcast(
        council_id=council.id,
        started_by=started_by.id if started_by else None,
        kind=kind,
        subject=subject,
        status=BroadcastStatus.PENDING,
        urgent=urgent,
        not_before=now if urgent else next_allowed(council, now),
        report_channel=report_to.channel if report_to else None,
        report_chat_id=report_to.chat_id if report_to else None,
        report_locale=report_to.locale if report_to else None,
        audience_size=0,
        sent=0,
        failed=0,
        unreachable=0,
        cancelled=0,
    )
    payloads = {locale: to_payload(render(Translator(locale))) for locale in SHIPPED_LOCALES}
    broadcast.payloads = payloads
    session.add(broadcast)
    await session.flush()
    priority = Priority.URGENT if urgent else Priority.BROADCAST
    broadcast.audience_size = await outbox.enqueue_for_audience(
        session, broadcast, audience, payloads, DEFAULT_LOCALE, priority
    )
    if spread is not None and broadcast.audience_size:
        broadcast.max_rate = max(broadcast.audience_size / spread.total_seconds(), 0.01)
    if broadcast.audience_size == 0:
        broadcast.status = BroadcastStatus.DONE
        broadcast.finished_at = now
    return broadcast


async def audience_size(session: AsyncSession, audience: Select[int]) -> int:
    """How many people a broadcast to this audience would reach now."""
    return int(await session.scalar(select(func.count()).select_from(audience.subquery())) or 0)


class Interrupted(enum.Enum):
    INTERRUPTED = "interrupted"
    ALREADY_OVER = "already_over"
    NOT_ALLOWED = "not_allowed"


async def interrupt(
    session: AsyncSession,
    broadcast_id: int,
    person: Person,
    roles: set[tuple[Council, Role]],
    is_admin: bool,
) -> Interrupted:
    """Stop a broadcast: what is not sent yet is cancelled. For its council's coordinators."""
    broadcast = await session.get(Broadcast, broadcast_id, with_for_update=True)
    if broadcast is None:
        return Interrupted.NOT_ALLOWED
    coordinates = any(
        council.id == broadcast.council_id and role == Role.COORDINATOR for council, role in roles
    )
    if not (is_admin or coordinates or broadcast.started_by == person.id):
        return Interrupted.NOT_ALLOWED
    if broadcast.status in (BroadcastStatus.DONE, BroadcastStatus.INTERRUPTED):
        return Interrupted.ALREADY_OVER
    broadcast.status = BroadcastStatus.INTERRUPTED
    broadcast.reported_at = None  # report the end at once
    await outbox.cancel_broadcast(session, broadcast.id)
    return Interrupted.INTERRUPTED

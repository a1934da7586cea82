"""Who may announce to which council, and sending the announcement."""

from __future__ import annotations

import enum
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from flows.broadcasts import service as broadcasts
from flows.engine import Notice, NoticeKind, Reply
from flows.i18n import Translator
from flows.staff import coordinated
from storage.models import Broadcast, Council, Person

MAX_LENGTH = 1000


class Sent(enum.Enum):
    SENT = "sent"
    NOBODY = "nobody"
    NOT_ALLOWED = "not_allowed"


def message_for_residents(council: Council, text: str) -> broadcasts.Render:
    """The announcement as each resident reads it: a header in their language, then the text."""

    def render(t: Translator) -> Reply:
        header = t._("📣 Message from {council}:").format(council=council.name)
        first_line = text.strip().splitlines()[0] if text.strip() else ""
        about = Notice(NoticeKind.NEWS, t.locale, council=council.name, title=first_line)
        return Reply(f"{header}\n\n{text}", notice=about)

    return render


async def send(
    session: AsyncSession,
    *,
    council_id: int,
    text: str,
    channel: str,
    sender_id: str,
    is_admin: bool,
    starter: Person | None,
    report_to: broadcasts.ReportTo,
    spread: timedelta | None,
) -> tuple[Sent, Broadcast | None]:
    """Check the role again (buttons can be forged, roles revoked), then queue the broadcast."""
    council = await coordinated(session, channel, sender_id, is_admin, council_id)
    if council is None:
        return Sent.NOT_ALLOWED, None
    audience = broadcasts.members(council)
    if await broadcasts.audience_size(session, audience) == 0:
        return Sent.NOBODY, None
    broadcast = await broadcasts.start_broadcast(
        session,
        council=council,
        kind="announcement",
        audience=audience,
        render=message_for_residents(council, text),
        started_by=starter,
        report_to=report_to,
        spread=spread,
    )
    return Sent.SENT, broadcast

"""The calls for help in the council's digest: those open, with their answers, and those
that closed since the last one."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from flows.calls import service
from flows.digest.lines import SHOWN, block, deadline, more
from flows.i18n import N_, Translator
from flows.sections import DigestSection, Period
from storage.models import Answer, Call, CallAnswer, CallStatus, Council

HEADER = N_("Calls for help")


@dataclass(frozen=True)
class OpenCall:
    title: str
    deadline: datetime
    yes: int
    maybe: int
    fresh: bool  # new, or answered, since the last digest


@dataclass(frozen=True)
class ClosedCall:
    title: str
    yes: int


@dataclass(frozen=True)
class CallNews:
    open: list[OpenCall] = field(default_factory=list)
    closed: list[ClosedCall] = field(default_factory=list)

    @property
    def newsworthy(self) -> bool:
        return bool(self.closed) or any(call.fresh for call in self.open)


async def _answers(session: AsyncSession, call: Call) -> dict[Answer, int]:
    """How many answered what, as the call's organiser is told."""
    tally = await service.tally(session, call.id)
    return {answer: len(helpers) for answer, helpers in tally.items()}


async def gather(session: AsyncSession, council: Council, period: Period) -> CallNews:
    """The calls open now, and those that closed in the period."""
    still_open = list(
        await session.scalars(
            select(Call)
            .where(
                Call.council_id == council.id,
                Call.status == CallStatus.OPEN,
                Call.deadline > period.now,
            )
            .order_by(Call.deadline, Call.id)
        )
    )
    answered: set[int] = set()
    if still_open:
        answered = set(
            await session.scalars(
                select(CallAnswer.call_id)
                .where(
                    CallAnswer.call_id.in_([call.id for call in still_open]),
                    CallAnswer.answered_at > period.since,
                )
                .distinct()
            )
        )
    closed = await session.scalars(
        select(Call)
        .where(
            Call.council_id == council.id,
            Call.status == CallStatus.CLOSED,
            Call.closed_at > period.since,
            Call.closed_at <= period.now,
        )
        .order_by(Call.closed_at, Call.id)
    )
    news = CallNews()
    for call in still_open:
        answers = await _answers(session, call)
        news.open.append(
            OpenCall(
                call.title,
                call.deadline,
                answers[Answer.YES],
                answers[Answer.MAYBE],
                fresh=period.first or call.created_at > period.since or call.id in answered,
            )
        )
    for call in closed:
        news.closed.append(ClosedCall(call.title, (await _answers(session, call))[Answer.YES]))
    return news


def write(t: Translator, news: CallNews, timezone: str) -> list[str]:
    lines = []
    for call in news.open[:SHOWN]:
        lines.append(
            "• "
            + t._("“{title}”: {yes}, {maybe}, until {date}").format(
                title=call.title,
                yes=t.ngettext("{count} can help", "{count} can help", call.yes).format(
                    count=t.number(call.yes)
                ),
                maybe=t.ngettext("{count} maybe", "{count} maybe", call.maybe).format(
                    count=t.number(call.maybe)
                ),
                date=deadline(t, call.deadline, timezone),
            )
        )
    lines += more(t, news.open)
    for closed in news.closed[:SHOWN]:
        lines.append(
            "• "
            + t.ngettext(
                "“{title}” closed: {count} could help",
                "“{title}” closed: {count} could help",
                closed.yes,
            ).format(title=closed.title, count=t.number(closed.yes))
        )
    lines += more(t, news.closed)
    return block(t, "🤝", HEADER, lines)


SECTION = DigestSection("calls", 20, gather, write)

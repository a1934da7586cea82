"""The consultations in the council's digest: those open, with how many answered, and those
that closed since the last one, with their turnout."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from flows.digest.lines import SHOWN, block, deadline, more
from flows.i18n import N_, Translator
from flows.sections import DigestSection, Period
from storage.models import Consultation, ConsultationStatus, Council, Participant

HEADER = N_("Consultations")


@dataclass(frozen=True)
class OpenConsultation:
    title: str
    closes_at: datetime
    answers: int
    new: bool  # opened since the last digest
    fresh: bool


@dataclass(frozen=True)
class ClosedConsultation:
    title: str
    respondents: int
    audience: int


@dataclass(frozen=True)
class ConsultationNews:
    open: list[OpenConsultation] = field(default_factory=list)
    closed: list[ClosedConsultation] = field(default_factory=list)

    @property
    def newsworthy(self) -> bool:
        return bool(self.closed) or any(c.fresh for c in self.open)


async def _respondents(session: AsyncSession, consultation_ids: Sequence[int]) -> dict[int, int]:
    """Who has answered something, per consultation (kept apart from the answers)."""
    if not consultation_ids:
        return {}
    rows = await session.execute(
        select(Participant.consultation_id, func.count())
        .where(Participant.consultation_id.in_(list(consultation_ids)))
        .group_by(Participant.consultation_id)
    )
    return {consultation_id: int(count) for consultation_id, count in rows}


async def gather(session: AsyncSession, council: Council, period: Period) -> ConsultationNews:
    """The consultations open now, and those that closed in the period."""
    still_open = list(
        await session.scalars(
            select(Consultation)
            .where(
                Consultation.council_id == council.id,
                Consultation.status == ConsultationStatus.OPEN,
            )
            .order_by(Consultation.closes_at, Consultation.id)
        )
    )
    answers = await _respondents(session, [c.id for c in still_open])
    opened = [c.opened_at is not None and c.opened_at > period.since for c in still_open]
    closed = list(
        await session.scalars(
            select(Consultation)
            .where(
                Consultation.council_id == council.id,
                Consultation.status == ConsultationStatus.CLOSED,
                Consultation.closed_at > period.since,
                Consultation.closed_at <= period.now,
            )
            .order_by(Consultation.closed_at, Consultation.id)
        )
    )
    counted = await _respondents(session, [c.id for c in closed if not c.results])
    news = ConsultationNews(
        open=[
            OpenConsultation(c.title, c.closes_at, answers.get(c.id, 0), new, new or period.first)
            for c, new in zip(still_open, opened, strict=True)
        ]
    )
    for c in closed:
        results = c.results or {}
        respondents = int(results.get("respondents", counted.get(c.id, 0)))
        audience = int(results.get("audience", c.audience_size))
        news.closed.append(ClosedConsultation(c.title, respondents, audience))
    return news


def write(t: Translator, news: ConsultationNews, timezone: str) -> list[str]:
    lines = []
    for c in news.open[:SHOWN]:
        lines.append(
            "• "
            + ("🆕 " if c.new else "")
            + t._("“{title}”: {answers}, until {date}").format(
                title=c.title,
                answers=t.ngettext("{count} answer", "{count} answers", c.answers).format(
                    count=t.number(c.answers)
                ),
                date=deadline(t, c.closes_at, timezone),
            )
        )
    lines += more(t, news.open)
    for closed in news.closed[:SHOWN]:
        rate = t.ngettext(
            "{count} of {audience} answered", "{count} of {audience} answered", closed.respondents
        ).format(count=t.number(closed.respondents), audience=t.number(closed.audience))
        if closed.audience:
            rate += f" ({t.percent(min(closed.respondents / closed.audience, 1.0))})"
        lines.append("• " + t._("“{title}” closed: {rate}").format(title=closed.title, rate=rate))
    lines += more(t, news.closed)
    return block(t, "📝", HEADER, lines)


SECTION = DigestSection("consultations", 40, gather, write)

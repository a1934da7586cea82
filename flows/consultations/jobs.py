"""Scheduled work for consultations: opening at their time, closing at their deadline; and
closing early, at an organiser's word, the same way under the same lock."""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from flows.consultations import results, service
from flows.engine import Job
from flows.scheduling import each_due
from storage.models import Consultation, ConsultationStatus, Council
from storage.queries.consultations import consultation_for_update


async def announce(session: AsyncSession, consultation: Consultation) -> None:
    """The results of a consultation just closed: to the organiser and the group, and to
    each respondent."""
    council = await session.get_one(Council, consultation.council_id)
    figures = consultation.results or {}
    await results.post(session, consultation, council, figures)
    await results.hear_back(session, consultation, council, figures)


async def close_consultations(session: AsyncSession, now: datetime) -> int:
    """Close what is due: results to the organiser and the group, and to each respondent."""

    async def post(consultation: Consultation) -> bool:
        await announce(session, consultation)
        return True

    closed = await service.close_due(session, now)
    return await each_due(session, service.CLOSE_JOB, closed, post, now=now)


class Closing(enum.Enum):
    CLOSED = "closed"
    NOT_OPEN = "not_open"  # closed meanwhile (its deadline, another organiser), or not yet open


async def close_now(session: AsyncSession, consultation_id: int, now: datetime) -> Closing:
    """Close a consultation before its deadline and announce its results. The consultation
    is locked and read again first, as the scheduler's closing locks it: whichever comes
    second finds it closed and does nothing, so results go out once."""
    consultation = await consultation_for_update(session, consultation_id)
    if consultation is None or consultation.status is not ConsultationStatus.OPEN:
        return Closing.NOT_OPEN
    await service.close_consultation(session, consultation, now)
    await announce(session, consultation)
    return Closing.CLOSED


OPEN_CONSULTATIONS = Job(service.OPEN_JOB, timedelta(seconds=30), service.open_due)
CLOSE_CONSULTATIONS = Job(service.CLOSE_JOB, timedelta(seconds=30), close_consultations)

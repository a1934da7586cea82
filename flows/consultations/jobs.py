"""Scheduled work for consultations: opening at their time, closing at their deadline."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from flows.consultations import results, service
from flows.engine import Job
from flows.scheduling import each_due
from storage.models import Consultation, Council


async def close_consultations(session: AsyncSession, now: datetime) -> int:
    """Close what is due: results to the organiser and the group, and to each respondent."""

    async def post(consultation: Consultation) -> bool:
        council = await session.get_one(Council, consultation.council_id)
        figures = consultation.results or {}
        await results.post(session, consultation, council, figures)
        await results.hear_back(session, consultation, council, figures)
        return True

    closed = await service.close_due(session, now)
    return await each_due(session, service.CLOSE_JOB, closed, post, now=now)


OPEN_CONSULTATIONS = Job(service.OPEN_JOB, timedelta(seconds=30), service.open_due)
CLOSE_CONSULTATIONS = Job(service.CLOSE_JOB, timedelta(seconds=30), close_consultations)

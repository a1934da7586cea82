"""The retention job: what each capability declares it keeps for a while is purged once
that while has passed. Each rule runs in its own savepoint, so one that fails leaves the
others to do their work (and is logged)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from flows.engine import Flow, Job, Retention

log = logging.getLogger(__name__)

EVERY = timedelta(hours=6)


def rules(flows: Sequence[Flow]) -> list[Retention]:
    return [rule for flow in flows for rule in flow.retention]


def job(flows: Sequence[Flow]) -> Job:
    """One scheduled job for every capability's rules."""
    declared = rules(flows)

    async def purge(session: AsyncSession, now: datetime) -> int:
        purged = 0
        for rule in declared:
            try:
                async with session.begin_nested():
                    count = await rule.purge(session, now - rule.keep)
            except Exception as error:
                log.warning("retention: %s could not be purged: %s", rule.what, error)
                continue
            if count:
                log.info("retention: %d rows of %s purged", count, rule.what)
            purged += count
        return purged

    return Job("retention", EVERY, purge)

"""Due rows worked one at a time, each in its own savepoint.

A job claims a batch of due rows in one transaction. If the work for one row raised and
took the whole transaction down, that row would come first again at every tick and block
every other row behind it (every council's reminders). So each row's work runs in a
savepoint: a row that raises is rolled back alone, logged, recorded in `scheduled_failures`
with its error, and kept out of the next ticks; the rest of the batch commits.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Protocol, TypeVar

from sqlalchemy import ColumnElement, exists, inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from storage.models import ScheduledFailure

log = logging.getLogger(__name__)


class DueRow(Protocol):
    @property
    def id(self) -> int: ...


Row = TypeVar("Row", bound=DueRow)


def not_failed(job: str, row_id: InstrumentedAttribute[int]) -> ColumnElement[bool]:
    """For a job's due query: leave out the rows whose work failed before (their error is
    recorded; retrying them at every tick would only fail again)."""
    return ~exists().where(ScheduledFailure.job == job, ScheduledFailure.row_id == row_id)


async def each_due(
    session: AsyncSession,
    job: str,
    rows: Iterable[Row],
    work: Callable[[Row], Awaitable[bool | None]],
    *,
    now: datetime,
    failed: Callable[[Row], None] | None = None,
) -> int:
    """Run `work` for each row in its own savepoint; returns how many said they did
    something. A row whose work raises is recorded as failed; `failed` then takes it out
    of what is due (when the job's due query does not use `not_failed`)."""
    done = 0
    for row in list(rows):
        row_id = row.id  # read before the work: a rolled-back row may be expired
        try:
            async with session.begin_nested():
                if await work(row):
                    done += 1
        except Exception as error:
            reason = f"{type(error).__name__}: {error}"[:500]
            log.warning("%s: row %d failed and is skipped from now on: %s", job, row_id, reason)
            log.debug("%s: row %d failed", job, row_id, exc_info=True)
            state = inspect(row, raiseerr=False)  # None for a plain result row
            if state is not None and state.persistent:
                await session.refresh(row)  # what the savepoint rolled back is reloaded
            session.add(ScheduledFailure(job=job, row_id=row_id, error=reason, failed_at=now))
            if failed is not None:
                failed(row)
    return done

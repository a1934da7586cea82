"""The scheduler: APScheduler drives one short periodic tick per kind of work.

What is due lives in our own tables (a call's deadline, a reminder's time); each tick
claims the due rows atomically and turns them into outbox messages in the same
transaction, so work survives restarts, never runs twice, and several processes can
run side by side. APScheduler's own job store is not used: it is in memory only.

Inside that transaction, each due row's work runs in its own savepoint
(`flows.scheduling.each_due`): a row that raises is rolled back alone, logged, recorded in
`scheduled_failures` and skipped from then on, so it never holds back the rest of its batch
or the other councils' work. An error outside the rows' work fails the whole tick, which
runs again at its next one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from flows.engine import Job
from storage.db import session_scope
from storage.models import utcnow

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        jobs: Sequence[Job],
        on_work: Callable[[], None] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.clock = clock  # what time it is for the jobs: tests move it
        self.jobs = list(jobs)
        self.on_work = on_work
        self._scheduler: AsyncIOScheduler | None = None
        self._running: set[asyncio.Task[object]] = set()
        self._ticked: set[str] = set()
        self._caught_up = asyncio.Event()  # every job has run once since the start

    async def start(self) -> None:
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        for job in self.jobs:
            self._scheduler.add_job(
                self.tick,
                "interval",
                seconds=job.every.total_seconds(),
                args=[job],
                id=job.name,
                next_run_time=utcnow(),  # work missed while down runs at once
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )
        self._scheduler.start()
        log.info("scheduled work: %s", ", ".join(job.name for job in self.jobs) or "none")
        if not self.jobs:
            self._caught_up.set()

    async def caught_up(self) -> None:
        """Wait until every job ran its first tick (what was missed while down is done)."""
        await self._caught_up.wait()

    async def stop(self) -> None:
        """No new ticks; let the ones under way finish their transaction, then shut down
        (APScheduler's shutdown cancels coroutines still running)."""
        if self._scheduler is None:
            return
        self._scheduler.pause()
        await asyncio.sleep(0)  # a tick submitted just before the pause registers itself
        if self._running:
            await asyncio.wait(self._running, timeout=30)
        self._scheduler.shutdown(wait=False)
        self._scheduler = None

    async def tick(self, job: Job, now: datetime | None = None) -> int:
        """Run one job once: claim what is due at `now` (the clock's time), in one
        transaction."""
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        try:
            async with session_scope(self.sessions) as session:
                done = await job.run(session, now or self.clock())
        except Exception:
            log.exception("scheduled job %s failed; it will run again at its next tick", job.name)
            return 0
        finally:
            self._ticked.add(job.name)
            if len(self._ticked) >= len({j.name for j in self.jobs}):
                self._caught_up.set()
        if done:
            log.info("%s: %d done", job.name, done)
            if self.on_work is not None:
                self.on_work()
        return done

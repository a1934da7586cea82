"""Work only one process may do at a time (sending the outbox at the channel's rate,
polling Telegram), held across processes and machines through PostgreSQL.

A lease is a session-level advisory lock (`pg_try_advisory_lock`) taken on a connection of
its own. PostgreSQL drops it the moment that connection ends: when the holder stops, and
when it is killed (its socket closes, the server ends the session), so a process waiting
for the lease takes over at its next try, within `retry` seconds. Nothing is written for
it: no lease row to expire, no clock to trust across machines.

The holder checks its connection every `check` seconds. A connection that broke (the
database restarted, the network cut) means the lease may be someone else's already: the
holder is told (`lost`) and stops the work until it holds the lease again. Between the cut
and that check, two holders can overlap for at most `check` seconds.

On SQLite there is one process, which always holds every lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.db import unpooled

log = logging.getLogger(__name__)

RETRY = 1.0  # seconds between two tries of a process waiting for the lease
CHECK = 2.0  # seconds between two checks that the holder's connection is alive


def lock_key(name: str) -> int:
    """The lease's advisory lock number: a stable signed 64-bit hash of its name."""
    digest = hashlib.sha256(f"coupdepouce:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Lease:
    """One holder at a time for the work called `name`."""

    def __init__(
        self, database: AsyncEngine, name: str, *, retry: float = RETRY, check: float = CHECK
    ) -> None:
        self.name = name
        self.key = lock_key(name)
        self.retry = retry
        self.check = check
        self.shared = database.dialect.name != "postgresql"  # one process: always held
        # The lease's connection is its own, not one of the pool's places.
        self.database = database if self.shared else unpooled(database)
        self._connection: AsyncConnection | None = None  # holding the lock
        self._standby: AsyncConnection | None = None  # trying again and again
        self._lost = asyncio.Event()
        self._watch: asyncio.Task[None] | None = None

    @property
    def held(self) -> bool:
        return self.shared or (self._connection is not None and not self._lost.is_set())

    async def acquire(self) -> None:
        """Wait until this process holds the lease."""
        if self.shared:
            return
        waiting_said = False
        while not await self._try():
            if not waiting_said:
                log.info("%s: another process holds it; standing by", self.name)
                waiting_said = True
            await asyncio.sleep(self.retry)
        log.info("%s: this process holds it", self.name)

    async def lost(self) -> None:
        """Return when the lease is no longer held (never, on SQLite)."""
        if self.shared:
            await asyncio.Event().wait()
        await self._lost.wait()

    async def listen(self, channel: str, heard: Callable[[], None]) -> None:
        """While the lease is held, call `heard` on every notice of `channel` (PostgreSQL's
        LISTEN, on the lease's own connection: the listening ends with the lease). Nothing on
        SQLite, which has no notices."""
        if self.shared or self._connection is None:
            return
        try:
            raw = await self._connection.get_raw_connection()
            driver: Any = raw.driver_connection
            await driver.add_listener(channel, lambda *_notice: heard())
        except (DBAPIError, OperationalError, OSError) as error:
            log.warning("%s: cannot listen to %s (%s)", self.name, channel, error)

    async def release(self) -> None:
        """Let the lease go: its connection is closed, and the lock ends with it."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        for connection in (self._connection, self._standby):
            if connection is not None:
                await _close(connection)
        self._connection = self._standby = None

    async def _try(self) -> bool:
        """One try: take the lock on a connection of its own, keep the connection if it did.
        A process standing by tries again on the same connection: a try costs one statement,
        not a new session."""
        connection = self._standby
        self._standby = None
        if connection is None:
            try:
                connection = await self.database.connect()
                # Outside any transaction: the lock is the session's, and an idle
                # transaction would be ended by the server's idle timeouts.
                await connection.execution_options(isolation_level="AUTOCOMMIT")
            except (DBAPIError, OperationalError, OSError) as error:
                log.warning("%s: cannot reach the database (%s)", self.name, error)
                return False
        try:
            taken = bool(await connection.scalar(select(func.pg_try_advisory_lock(self.key))))
        except (DBAPIError, OperationalError, OSError) as error:
            log.warning("%s: cannot take the lease (%s)", self.name, error)
            await _close(connection)
            return False
        if not taken:
            self._standby = connection
            return False
        self._connection = connection
        self._lost = asyncio.Event()
        self._watch = asyncio.create_task(self._keep(connection), name=f"lease-{self.name}")
        return True

    async def _keep(self, connection: AsyncConnection) -> None:
        """Check the connection now and then; a broken one loses the lease."""
        try:
            while True:
                await asyncio.sleep(self.check)
                await connection.scalar(select(1))
        except (DBAPIError, OperationalError, OSError) as error:
            log.warning("%s: lost the lease with its connection (%s)", self.name, error)
        self._lost.set()
        self._connection = None
        with contextlib.suppress(DBAPIError, OperationalError, OSError):
            await connection.invalidate()


async def _close(connection: AsyncConnection) -> None:
    """Close a lease's connection for good (with the lock, if it holds it)."""
    with contextlib.suppress(DBAPIError, OperationalError, OSError):
        await connection.invalidate()
        await connection.close()

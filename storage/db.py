"""Engine, session factory and migrations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

MIGRATIONS = Path(__file__).parent / "migrations"


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """Create the async engine.

    SQLite gets foreign keys, WAL and a busy timeout, and every transaction starts
    with BEGIN IMMEDIATE: writers queue up at the start instead of failing when a
    read taken earlier in the transaction turns out stale (the engine reads a
    conversation's step, then writes the next one).
    """
    sa_url = make_url(url)
    if sa_url.get_backend_name() == "sqlite":
        kwargs.setdefault("connect_args", {"timeout": 30})
        engine = create_async_engine(sa_url, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # Deleted rows are overwritten, not left in free pages: an erasure erases.
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _begin_immediate(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # No ping before each checkout (a round trip per transaction): a connection the server
    # dropped fails its first statement, the pool is invalidated, and the engine runs the
    # event again once (`flows.engine.Engine.handle`).
    kwargs.setdefault("pool_recycle", 1800)
    return create_async_engine(sa_url, **kwargs)


def unpooled(engine: AsyncEngine) -> AsyncEngine:
    """The same PostgreSQL database without a pool, for a connection a process holds as long as
    it runs (a lease, the shared pace). Taken from the engine's pool, such a connection would
    keep one of its few places for ever, and the transactions would open and close
    connections of their own beyond the rest."""
    return create_async_engine(engine.url, poolclass=NullPool)


async def scrub(engine: AsyncEngine) -> None:
    """After an erasure, leave no copy of what was erased in the SQLite files: the write-ahead
    log still holds the pages as they were, until it is checkpointed and truncated. (With
    secure_delete the database file itself keeps nothing.) Best effort: a checkpoint that
    readers hold up is finished by SQLite's own later ones."""
    if engine.dialect.name != "sqlite":
        return
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        await driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def session_scope(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction: commit on success, roll back on error."""
    async with sessions() as session, session.begin():
        yield session


def alembic_config(url: str) -> Config:
    """An Alembic configuration pointing at our migrations and the given database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migration_heads() -> frozenset[str]:
    """The migrations this code expects the database to be at."""
    from alembic.script import ScriptDirectory

    return frozenset(ScriptDirectory.from_config(alembic_config("")).get_heads())


def upgrade(url: str) -> None:
    """Apply every migration (synchronous: call before the event loop, or in a thread)."""
    command.upgrade(alembic_config(url), "head")

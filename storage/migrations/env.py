"""Alembic environment: runs migrations on the async engine, batch mode for SQLite."""

import asyncio

from alembic import context
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from storage.db import create_engine
from storage.models import Base

target_metadata = Base.metadata
MIGRATING = 0x436F7570_4D696772  # the advisory lock held while migrating


def run_sync_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Workers starting together migrate one after the other: the next finds the
            # database up to date and does nothing.
            connection.execute(select(func.pg_advisory_xact_lock(MIGRATING)))
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_sync_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(run_async_migrations())

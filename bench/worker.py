"""`python -m bot` with what `scale_out` changes in the process from outside, through
environment variables; nothing of it is in the application:

- BENCH_PROFILE=FILE: SIGUSR1 starts cProfile on the event loop's thread, SIGUSR2 stops it
  and writes the stats to FILE, so that the profile holds a measured burst alone, not the
  start-up's imports nor the warm-up;
- BENCH_POOL_SIZE=N: the database engine keeps N connections in its pool (SQLAlchemy's
  `pool_size`; the application leaves SQLAlchemy's default, 5, with 10 more opened when
  needed and closed when given back to a full pool).

    BENCH_PROFILE=web.prof python -m bench.worker run --role web
"""

from __future__ import annotations

import cProfile
import os
import signal
from types import FrameType
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from storage import db

profiler = cProfile.Profile()


def start(_signum: int, _frame: FrameType | None) -> None:
    profiler.enable()


def stop(_signum: int, _frame: FrameType | None) -> None:
    profiler.disable()
    profiler.dump_stats(os.environ["BENCH_PROFILE"])


if os.environ.get("BENCH_PROFILE"):
    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)

if os.environ.get("BENCH_POOL_SIZE"):
    pool_size = int(os.environ["BENCH_POOL_SIZE"])
    create_engine = db.create_engine

    def sized(url: str, **kwargs: Any) -> AsyncEngine:
        if not url.startswith("sqlite"):
            kwargs.setdefault("pool_size", pool_size)
        return create_engine(url, **kwargs)

    db.create_engine = sized  # before bot.app imports it

from bot.cli import main  # noqa: E402

main()

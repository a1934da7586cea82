"""`python -m bot` with cProfile switched on and off from outside, for `scale_out --profile`:
SIGUSR1 starts profiling the event loop's thread, SIGUSR2 stops it and writes the stats to
the file named by BENCH_PROFILE. So the profile holds a measured burst alone, not the
start-up's imports nor the warm-up. Nothing of it is in the application.

    BENCH_PROFILE=/tmp/web.prof python -m bench.profiled_worker run --role web
"""

from __future__ import annotations

import cProfile
import os
import signal
from types import FrameType

from bot.cli import main

profiler = cProfile.Profile()


def start(_signum: int, _frame: FrameType | None) -> None:
    profiler.enable()


def stop(_signum: int, _frame: FrameType | None) -> None:
    profiler.disable()
    profiler.dump_stats(os.environ["BENCH_PROFILE"])


signal.signal(signal.SIGUSR1, start)
signal.signal(signal.SIGUSR2, stop)
main()

"""Quiet hours: no broadcast reaches residents at night, in the council's time zone."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from storage.models import Council


def is_quiet(start: time | None, end: time | None, local: time) -> bool:
    """Whether a local time falls in the quiet window (which may span midnight)."""
    if start is None or end is None or start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def next_allowed_at(start: time | None, end: time | None, timezone: str, now: datetime) -> datetime:
    """`now` if it is not quiet time, else the end of the quiet window (an aware UTC time)."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    if not is_quiet(start, end, local.timetz().replace(tzinfo=None)):
        return now
    assert end is not None
    morning = datetime.combine(local.date(), end, tzinfo=zone)
    if morning <= local:
        morning = datetime.combine(local.date() + timedelta(days=1), end, tzinfo=zone)
    return morning.astimezone(now.tzinfo)


def next_allowed(council: Council, now: datetime) -> datetime:
    return next_allowed_at(council.quiet_start, council.quiet_end, council.timezone, now)

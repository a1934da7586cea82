"""How the digest's blocks are written, for the capabilities that write one: a header, a
few items, and how many more there were."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from flows.i18n import Translator

SHOWN = 5  # items listed per kind; the rest are counted


def block(t: Translator, emoji: str, header: str, body: list[str]) -> list[str]:
    """A block under its header (`header` marked with N_()); nothing for an empty body."""
    return [f"{emoji} {t._(header)}", *body] if body else []


def deadline(t: Translator, moment: datetime, timezone: str) -> str:
    """A short day and hour: "Fri, Dec 12 at 6:00 PM", "ven. 12 déc. à 18:00"."""
    local = moment.astimezone(ZoneInfo(timezone))
    return t._("{date} at {time}").format(
        date=t.day_label(local.date()), time=t.hour(moment, timezone)
    )


def more(t: Translator, items: Sequence[object]) -> list[str]:
    """The line saying how many of the items were left out, if any."""
    hidden = len(items) - SHOWN
    if hidden <= 0:
        return []
    return [
        "  "
        + t.ngettext("…and {count} more", "…and {count} more", hidden).format(
            count=t.number(hidden)
        )
    ]

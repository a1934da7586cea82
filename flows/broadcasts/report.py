"""What the coordinator reads while a broadcast goes out: one message, edited as it goes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_time

from flows.broadcasts.buttons import StopButton
from flows.engine import Choice, Reply
from flows.i18n import Translator
from storage.queries.outbox import Counts


@dataclass(frozen=True)
class Price:
    """What one WhatsApp template message costs, for estimates."""

    amount: float
    currency: str

    def times(self, t: Translator, count: int) -> str:
        return t.money(self.amount * count, self.currency)


def templates_line(t: Translator, count: int, price: Price | None) -> str:
    """'12 as WhatsApp templates (≈ €0.60)': messages billed by WhatsApp."""
    line = t.ngettext(
        "{count} as a WhatsApp template", "{count} as WhatsApp templates", count
    ).format(count=t.number(count))
    if price is not None:
        line += " " + t._("(about {cost})").format(cost=price.times(t, count))
    return line


def progress(
    t: Translator,
    counts: Counts,
    *,
    interrupted: bool = False,
    starts_at: datetime | None = None,
    timezone: str = "Europe/Paris",
    price: Price | None = None,
) -> str:
    """'Sent 1,200 of 3,400 — 12 unreachable', or the final tally."""
    if interrupted:
        head = t._("Stopped: sent {sent} of {total}.")
    elif counts.finished:
        head = t._("Done: sent {sent} of {total}.")
    elif starts_at is not None and counts.sent == 0:
        return t._("Quiet hours: sending starts at {time}.").format(
            time=format_time(starts_at, format="short", tzinfo=ZoneInfo(timezone), locale=t.locale)
        )
    else:
        head = t._("Sent {sent} of {total}")
    parts = [head.format(sent=t.number(counts.sent), total=t.number(counts.total))]
    if counts.unreachable:
        parts.append(
            t.ngettext("{count} unreachable", "{count} unreachable", counts.unreachable).format(
                count=t.number(counts.unreachable)
            )
        )
    if counts.failed:
        parts.append(
            t.ngettext("{count} failed", "{count} failed", counts.failed).format(
                count=t.number(counts.failed)
            )
        )
    if counts.templates:
        parts.append(templates_line(t, counts.templates, price))
    if counts.unannounced:
        parts.append(
            t.ngettext(
                "{count} waiting in the web chat (no notification possible)",
                "{count} waiting in the web chat (no notification possible)",
                counts.unannounced,
            ).format(count=t.number(counts.unannounced))
        )
    for name, count in sorted(Counter(counts.refused_templates).items()):
        parts.append(
            t.ngettext(
                "{count} not sent: WhatsApp has not approved the template “{name}” (or paused it)",
                "{count} not sent: WhatsApp has not approved the template “{name}” (or paused it)",
                count,
            ).format(count=t.number(count), name=name)
        )
    if counts.cancelled:
        parts.append(
            t.ngettext("{count} cancelled", "{count} cancelled", counts.cancelled).format(
                count=t.number(counts.cancelled)
            )
        )
    return " — ".join(parts)


def message(t: Translator, broadcast_id: int, text: str, running: bool) -> Reply:
    """The report as sent: with a button to stop sending while it runs."""
    if not running:
        return Reply(text)
    stop = Choice("⏹ " + t._("Stop sending"), StopButton(broadcast_id).pack())
    return Reply(text, ((stop,),))

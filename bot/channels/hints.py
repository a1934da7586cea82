"""What a channel adds to a question about how to answer it there: the flows ask for a place,
each messenger says how to share one (the web chat offers a button instead)."""

from __future__ import annotations

from dataclasses import replace

from flows.engine import Reply
from flows.i18n import N_, Translator

# How a place is shared from a phone's messenger (Telegram's and WhatsApp's attachment menu).
LOCATION_HINT = N_("Tap 📎, then Location.")


def with_location_hint(reply: Reply, locale: str | None) -> Reply:
    """A question that asks for a place, with how this messenger shares one."""
    if not reply.asks_location:
        return reply
    hint = Translator(locale or "fr")._(LOCATION_HINT)
    return replace(reply, text=f"{reply.text}\n{hint}")

"""A message announced in one line, for a notification: "New invitation: Fête de quartier"."""

from __future__ import annotations

from typing import Final

from flows.engine import Notice, NoticeKind, Reply
from flows.i18n import N_, Translator

HEADLINES: Final = {
    NoticeKind.MEETING: N_("New invitation: {title}"),
    NoticeKind.MEETING_NEWS: N_("News about the meeting: {title}"),
    NoticeKind.REMINDER: N_("Reminder: {title}"),
    NoticeKind.CALL: N_("A helping hand is needed: {title}"),
    NoticeKind.CONSULTATION: N_("Your opinion is asked: {title}"),
    NoticeKind.RESULTS: N_("The results are in: {title}"),
    NoticeKind.NEWS: N_("New message: {title}"),
}
LINE_CHARS: Final = 140


def headline(notice: Notice) -> tuple[str, str]:
    """The notification's title (who writes) and its line (what about), in the notice's
    language; the time and place follow when the message has them."""
    t = Translator(notice.locale)
    line = t._(HEADLINES.get(notice.kind, HEADLINES[NoticeKind.NEWS])).format(title=notice.title)
    details = ", ".join(part for part in (notice.when, notice.place) if part)
    if details:
        line = f"{line} — {details}"
    return notice.council or "Coup de pouce", line


def first_line(reply: Reply) -> str:
    """A message without a notice (an answer to a coordinator's call…): its first line."""
    for line in reply.text.splitlines():
        if line.strip():
            return line.strip()[:LINE_CHARS]
    return reply.attachment.filename if reply.attachment else ""

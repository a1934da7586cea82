"""The message templates WhatsApp needs outside its 24-hour window, in every shipped language.

Outside the window a business may only send templates Meta approved beforehand. Each notice
kind has one: a line saying what the message is about, and a quick-reply button that opens
the conversation, after which the full message and its buttons follow as an ordinary message.

`coupdepouce whatsapp templates` prints them as the Graph API's `message_templates` JSON;
`--submit` sends them for approval. Their texts are in the gettext catalogs like every
other string, so a translator sees them beside the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from flows.engine import Notice, NoticeKind
from flows.i18n import DEFAULT_LOCALE, N_, SHIPPED_LOCALES, Translator

CATEGORY: Final = "UTILITY"
MAX_PARAMETER = 80  # characters of one filled-in value: the line stays a line
FIELD = re.compile(r"\{(council|title|when|place)\}")
# Meta refuses a parameter with a new line, a tab or more than four spaces in a row.
WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Template:
    """One template: its name at Meta, the notice it announces, its text and its button."""

    name: str
    kind: NoticeKind
    body: str  # marked with N_(); {council}, {title}, {when}, {place} become {{1}}, {{2}}…
    example: dict[str, str]

    @property
    def fields(self) -> tuple[str, ...]:
        """The notice's fields in the order of the template's parameters."""
        return tuple(FIELD.findall(self.body))

    def text(self, t: Translator) -> str:
        """The body as Meta stores it in this language: {{1}}, {{2}}… for the values."""
        translated = t._(self.body)
        order = {name: index for index, name in enumerate(self.fields, start=1)}
        return FIELD.sub(lambda match: f"{{{{{order[match[1]]}}}}}", translated)

    def parameters(self, notice: Notice) -> list[str]:
        """The values to fill in, each a short single line."""
        return [_one_line(getattr(notice, name)) for name in self.fields]


BUTTON: Final = N_("Show the message")
EXAMPLE: Final = {
    "council": "Conseil citoyen Quartier Nord",
    "title": "Atelier jardin partagé",
    "when": "samedi 12 décembre 2026 à 10:00",
    "place": "Maison de quartier, 3 rue des Tilleuls",
}

TEMPLATES: Final = (
    Template(
        "coupdepouce_meeting",
        NoticeKind.MEETING,
        N_("📅 {council} invites you to “{title}”, {when}, at {place}. Tap below to answer."),
        EXAMPLE,
    ),
    Template(
        "coupdepouce_meeting_news",
        NoticeKind.MEETING_NEWS,
        N_("📅 News about “{title}” ({when}) from {council}. Tap below to read it."),
        EXAMPLE,
    ),
    Template(
        "coupdepouce_reminder",
        NoticeKind.REMINDER,
        N_(
            "⏰ Reminder: “{title}”, {when}, at {place}. Tap below to see it or change your answer."
        ),
        EXAMPLE,
    ),
    Template(
        "coupdepouce_call",
        NoticeKind.CALL,
        N_("🤝 {council} is looking for a helping hand: “{title}”. Tap below to read the call."),
        EXAMPLE,
    ),
    Template(
        "coupdepouce_consultation",
        NoticeKind.CONSULTATION,
        N_("📝 {council} asks for your opinion: “{title}”. It takes a minute: tap below."),
        EXAMPLE,
    ),
    Template(
        "coupdepouce_results",
        NoticeKind.RESULTS,
        N_("📊 The results of “{title}” are in. Thank you for taking part! Tap below to see them."),
        EXAMPLE,
    ),
    Template(
        "coupdepouce_news",
        NoticeKind.NEWS,
        N_("📣 A message from {council}: “{title}”. Tap below to read it."),
        EXAMPLE,
    ),
)
BY_KIND: Final = {template.kind: template for template in TEMPLATES}


def for_notice(notice: Notice) -> Template:
    return BY_KIND.get(notice.kind, BY_KIND[NoticeKind.NEWS])


def language_code(locale: str) -> str:
    """Meta's code for a shipped language (fr, en and ar are Meta's own codes)."""
    return locale.split("_")[0]


def definition(template: Template, locale: str) -> dict[str, Any]:
    """One template in one language, as the Graph API's `message_templates` takes it."""
    t = Translator(locale)
    return {
        "name": template.name,
        "language": language_code(locale),
        "category": CATEGORY,
        "components": [
            {
                "type": "BODY",
                "text": template.text(t),
                "example": {"body_text": [[template.example[name] for name in template.fields]]},
            },
            {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": t._(BUTTON)[:25]}]},
        ],
    }


def definitions() -> list[dict[str, Any]]:
    """Every template in every shipped language."""
    return [definition(template, locale) for template in TEMPLATES for locale in SHIPPED_LOCALES]


def message(notice: Notice, payload: str) -> tuple[str, dict[str, Any]]:
    """The `template` object of a message announcing `notice`; its button sends `payload`."""
    template = for_notice(notice)
    locale = notice.locale if notice.locale in SHIPPED_LOCALES else DEFAULT_LOCALE
    return template.name, {
        "name": template.name,
        "language": {"code": language_code(locale)},
        "components": [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": value} for value in template.parameters(notice)
                ],
            },
            {
                "type": "button",
                "sub_type": "quick_reply",
                "index": "0",
                "parameters": [{"type": "payload", "payload": payload}],
            },
        ],
    }


def _one_line(value: str) -> str:
    """A value Meta accepts: one line, no tab, no run of spaces, not empty, not too long."""
    line = WHITESPACE.sub(" ", value).strip() or "—"
    return line if len(line) <= MAX_PARAMETER else line[: MAX_PARAMETER - 1].rstrip() + "…"

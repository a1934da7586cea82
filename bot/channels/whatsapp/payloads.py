"""WhatsApp's shapes: webhook bodies in, Graph API messages out. No business rules here.

Choices are fitted the WhatsApp way, whatever the flow asked: up to three become reply
buttons, up to ten a list, more a list paged with a "More…" row (courier's `shouldUseList`
does the same). Labels are cut to WhatsApp's limits; when one had to be cut, its full wording
is added to the message body, so nothing the flow said is lost.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from bot.channels.text import split, width
from flows.engine import Attachment, Choice, Inbound, Reply, normalise_keyword
from flows.i18n import DEFAULT_LOCALE, N_, SHIPPED_LOCALES, Translator

CHANNEL: Final = "whatsapp"
TEXT_MAX: Final = 4096
BODY_MAX: Final = 1024  # an interactive message's body
CAPTION_MAX: Final = 1024
BUTTONS_MAX: Final = 3
BUTTON_TITLE_MAX: Final = 20
ROWS_MAX: Final = 10
ROW_TITLE_MAX: Final = 24
ROW_DESCRIPTION_MAX: Final = 72
LIST_BUTTON_MAX: Final = 20
PAGE: Final = ROWS_MAX - 1  # rows of a long list's page, beside its "More…" row

MORE_PREFIX: Final = "wa-more"  # "wa-more:<menu>:<page>", a "More…" row of a long list
OPEN_PREFIX: Final = "wa-open"  # "wa-open:<outbox id>", a template's button: show the message

COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,32})(?:@\S+)?(?:\s+(.*))?$", re.DOTALL)
# The end of the text a wa.me invitation link fills in: "… #quartier-nord" joins that council.
JOIN = re.compile(r"#([a-z0-9][a-z0-9-]{0,62}[a-z0-9](?:__[a-z_]{1,32})?)\s*$")
ARABIC = re.compile(r"[\u0600-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufeff]")
JOIN_SENTENCE: Final = N_("Hello! I would like to join my neighbourhood council.")


# --- In: what Meta posts ---------------------------------------------------------------------


@dataclass(frozen=True)
class Incoming:
    """One message a person sent, as the webhook gave it."""

    wa_id: str
    name: str
    message: Mapping[str, Any]

    @property
    def id(self) -> str:
        return str(self.message.get("id", ""))

    @property
    def type(self) -> str:
        return str(self.message.get("type", ""))

    @property
    def sent_at(self) -> datetime:
        """When the person sent it (Meta's timestamp), never later than now."""
        now = datetime.now(UTC)
        try:
            moment = datetime.fromtimestamp(int(self.message.get("timestamp", "")), UTC)
        except (TypeError, ValueError, OverflowError, OSError):
            return now
        return min(moment, now)


@dataclass(frozen=True)
class Receipt:
    """What became of a message we sent: sent, delivered, read or failed (with codes)."""

    message_id: str
    status: str
    recipient: str
    errors: tuple[int, ...] = ()
    reasons: tuple[str, ...] = ()


@dataclass
class Webhook:
    incoming: list[Incoming] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)


def parse(body: Any) -> Webhook:
    """The messages and receipts in a webhook body; anything else in it is left aside."""
    found = Webhook()
    if not isinstance(body, dict) or body.get("object") != "whatsapp_business_account":
        return found
    for entry in _dicts(body.get("entry")):
        for change in _dicts(entry.get("changes")):
            value = change.get("value")
            if change.get("field") != "messages" or not isinstance(value, dict):
                continue
            names = {
                str(contact.get("wa_id")): str((contact.get("profile") or {}).get("name") or "")
                for contact in _dicts(value.get("contacts"))
            }
            for message in _dicts(value.get("messages")):
                sender = message.get("from")
                if isinstance(sender, str) and sender and isinstance(message.get("id"), str):
                    found.incoming.append(Incoming(sender, names.get(sender, ""), message))
            for status in _dicts(value.get("statuses")):
                errors = list(_dicts(status.get("errors")))
                found.receipts.append(
                    Receipt(
                        message_id=str(status.get("id", "")),
                        status=str(status.get("status", "")),
                        recipient=str(status.get("recipient_id", "")),
                        errors=tuple(_code(error) for error in errors),
                        reasons=tuple(
                            str(error.get("title") or error.get("message") or "")
                            for error in errors
                        ),
                    )
                )
    return found


def to_inbound(incoming: Incoming, command_words: Mapping[str, str]) -> Inbound | None:
    """A person's message as a channel-neutral event; None for what needs no answer (a
    reaction). Commands are typed words here: "/aide", "aide", "help" and "مساعدة" alike."""
    message = incoming.message
    common: dict[str, Any] = {
        "channel": CHANNEL,
        "sender_id": incoming.wa_id,
        "chat_id": incoming.wa_id,
        "first_name": incoming.name[:200],
    }
    kind = incoming.type
    if kind == "reaction":
        return None
    if kind == "text":
        text = str((message.get("text") or {}).get("body") or "")
        return _typed(text, command_words, common)
    if kind == "interactive":
        interactive = message.get("interactive") or {}
        reply = interactive.get("button_reply") or interactive.get("list_reply") or {}
        return Inbound(choice=str(reply.get("id") or ""), **common)
    if kind == "location":
        place = message.get("location") or {}
        try:
            where = (float(place["latitude"]), float(place["longitude"]))
        except (KeyError, TypeError, ValueError):
            return Inbound(**common)
        return Inbound(location=where, **common)
    # Stickers, voice notes, images, contacts, unsupported types: the flows answer kindly
    # that they read text and taps.
    return Inbound(**common)


def _typed(text: str, command_words: Mapping[str, str], common: dict[str, Any]) -> Inbound:
    language = guess_language(text)
    stripped = text.strip()
    command = COMMAND.match(stripped)
    if command is not None:
        name, argument = command[1].lower(), (command[2] or "").strip()
        return Inbound(command=name, argument=argument, language_code=language, **common)
    word = command_words.get(normalise_keyword(stripped))
    if word is not None:
        return Inbound(command=word, language_code=language, **common)
    join = JOIN.search(stripped)
    if join is not None:
        return Inbound(command="start", argument=join[1], language_code=language, **common)
    return Inbound(text=text, language_code=language, **common)


def guess_language(text: str) -> str | None:
    """WhatsApp does not say a person's language: Arabic script, or the invitation link's
    sentence in one of our languages, tells it; the flows fall back to French otherwise."""
    if ARABIC.search(text):
        return "ar"
    folded = _fold(text)
    for locale in SHIPPED_LOCALES:
        sentence = _fold(Translator(locale)._(JOIN_SENTENCE))
        if sentence and folded.startswith(sentence[:24]):
            return locale
    return None


def _fold(text: str) -> str:
    """Lower case, no accents, letters and spaces only: typed and printed texts compare."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    letters = (c if c.isalnum() else " " for c in decomposed if not unicodedata.combining(c))
    return " ".join("".join(letters).split())


def join_text(t: Translator, slug: str) -> str:
    """What a wa.me invitation link fills in: a sentence, then the council's code."""
    return f"{t._(JOIN_SENTENCE)} #{slug}"


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _code(error: Mapping[str, Any]) -> int:
    try:
        return int(error.get("code", 0))
    except (TypeError, ValueError):
        return 0


# --- Out: what we post ----------------------------------------------------------------------


@dataclass(frozen=True)
class Words:
    """The few words the adapter itself writes, in the reader's language."""

    choose: str
    more: str

    @classmethod
    def of(cls, locale: str | None) -> Words:
        t = Translator(locale or DEFAULT_LOCALE)
        return cls(choose=t._("Choose"), more=t._("More…"))


@dataclass(frozen=True)
class Media:
    """An attachment already uploaded, and how to show it."""

    id: str
    attachment: Attachment

    def message(self, caption: str | None = None) -> dict[str, Any]:
        if self.attachment.kind == "photo":
            image: dict[str, Any] = {"id": self.id}
            if caption:
                image["caption"] = caption
            return {"type": "image", "image": image}
        document: dict[str, Any] = {"id": self.id, "filename": self.attachment.filename}
        if caption:
            document["caption"] = caption
        return {"type": "document", "document": document}


def flat(reply: Reply) -> list[Choice]:
    return [choice for row in reply.choices for choice in row]


def needs_menu(reply: Reply) -> bool:
    """More choices than one list shows: the menu is kept to page through it."""
    return len(flat(reply)) > ROWS_MAX


def render(
    reply: Reply, words: Words, media: Media | None = None, menu: int | None = None, page: int = 0
) -> list[dict[str, Any]]:
    """The Graph API messages (without the recipient) that show a reply on WhatsApp."""
    choices = flat(reply)
    text = reply.text.strip() or "…"
    if not choices:
        if media is None:
            return [_text(part) for part in split(text, TEXT_MAX)]
        if width(text) <= CAPTION_MAX:
            return [media.message(caption=text)]
        return [*(_text(part) for part in split(text, TEXT_MAX)), media.message()]
    if len(choices) <= BUTTONS_MAX:
        titles = fitted([choice.label for choice in choices], BUTTON_TITLE_MAX, unique=True)
        body = _with_full_wording(text, choices, titles)
        before, body = _last_part(body, BODY_MAX)
        interactive: dict[str, Any] = {
            "type": "button",
            "body": {"text": body},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": choice.data, "title": title}}
                    for choice, title in zip(choices, titles, strict=True)
                ]
            },
        }
        if media is not None:
            header = media.message()
            interactive["header"] = {"type": header["type"], header["type"]: header[header["type"]]}
        return [*before, {"type": "interactive", "interactive": interactive}]
    pages = paged(choices)
    page = page % len(pages)
    shown = pages[page]
    titles = fitted([choice.label for choice in shown], ROW_TITLE_MAX, unique=True)
    rows: list[dict[str, Any]] = []
    for choice, title in zip(shown, titles, strict=True):
        row: dict[str, Any] = {"id": choice.data, "title": title}
        if title != choice.label:
            row["description"] = fitted([choice.label], ROW_DESCRIPTION_MAX)[0]
        rows.append(row)
    if len(pages) > 1 and menu is not None:
        rows.append({"id": f"{MORE_PREFIX}:{menu}:{(page + 1) % len(pages)}", "title": words.more})
    too_long = [
        choice for choice in shown if width(choice.label) > ROW_DESCRIPTION_MAX + ROW_TITLE_MAX
    ]
    body = _with_full_wording(text, too_long, [""] * len(too_long))
    before, body = _last_part(body, BODY_MAX)
    listing = {
        "type": "list",
        "body": {"text": body},
        "action": {
            "button": fitted([words.choose], LIST_BUTTON_MAX)[0],
            "sections": [{"rows": rows}],
        },
    }
    files = [media.message()] if media is not None else []
    return [*before, *files, {"type": "interactive", "interactive": listing}]


def paged(choices: Sequence[Choice]) -> list[list[Choice]]:
    """Pages of a long list: nine choices and a "More…" row, the last page up to ten."""
    pages: list[list[Choice]] = []
    remaining = list(choices)
    while len(remaining) > ROWS_MAX:
        pages.append(remaining[:PAGE])
        remaining = remaining[PAGE:]
    pages.append(remaining)
    return pages


def cut(text: str, limit: int) -> str:
    """The text within `limit`, with an ellipsis when something was cut."""
    if width(text) <= limit:
        return text
    kept = ""
    for character in text:
        if width(kept + character) > limit - 1:
            break
        kept += character
    return kept.rstrip() + "…"


def fitted(labels: Sequence[str], limit: int, *, unique: bool = False) -> list[str]:
    """Labels cut to `limit`; made distinct when they must be (WhatsApp refuses twins)."""
    titles = [cut(label.strip() or "…", limit) for label in labels]
    if unique:
        seen: set[str] = set()
        for index, title in enumerate(titles):
            number = 2
            while title in seen:
                suffix = f" {number}"
                title = cut(titles[index], limit - len(suffix)) + suffix
                number += 1
            titles[index] = title
            seen.add(title)
    return titles


def _text(body: str) -> dict[str, Any]:
    return {"type": "text", "text": {"body": body, "preview_url": "http" in body}}


def _with_full_wording(text: str, choices: Sequence[Choice], titles: Sequence[str]) -> str:
    """The body, followed by the full wording of every label that had to be cut."""
    cut_labels = [
        choice.label for choice, title in zip(choices, titles, strict=True) if title != choice.label
    ]
    if not cut_labels:
        return text
    return text + "\n\n" + "\n".join(f"• {label}" for label in cut_labels)


def _last_part(text: str, limit: int) -> tuple[list[dict[str, Any]], str]:
    """Text messages for what does not fit in an interactive body, and the body."""
    if width(text) <= limit:
        return [], text
    body = split(text, limit)[-1]
    before = text[: text.rfind(body)].rstrip()
    return [_text(part) for part in split(before, TEXT_MAX)], body

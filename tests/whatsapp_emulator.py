"""An in-process fake of Meta's WhatsApp Cloud API (Graph API), for tests.

`CloudApiEmulator` is a small aiohttp server on 127.0.0.1 that answers the Graph API calls a
WhatsApp bot makes, with Meta's payloads and error wording, and plays the people on the other
side by posting signed webhooks to the bot::

    emulator = CloudApiEmulator(
        phone_number_id="100200300", waba_id="900800700",
        token="test-token", app_secret="test-app-secret",
    )
    await emulator.start()
    emulator.webhook_url = f"http://127.0.0.1:{bot_port}/whatsapp"
    # the bot posts to f"{emulator.url}/{phone_number_id}/messages"
    amina = emulator.user("33612345678", name="Amina")
    await amina.send("Bonjour")
    welcome = await amina.next_message()
    await amina.tap("Oui")
    ...
    await emulator.stop()

What it does:

* serves ``/{version}/{phone_number_id}/messages``, ``/{version}/{phone_number_id}/media`` and
  ``/{version}/{waba_id}/message_templates`` for any ``vN.M`` version, behind the bearer token;
* validates messages like Meta (text, reply buttons, lists, templates, documents, images) and
  refuses what Meta refuses, with Graph's error JSON, code and HTTP status;
* keeps a registry of templates with their review status and renders what the person reads;
* applies the 24-hour customer-service window the way the real API does: a free-form message
  outside the window is accepted (200 and a wamid) and then fails by status webhook (131047);
* posts ``sent``/``delivered`` (and ``read``) status webhooks after each accepted message, or
  ``failed`` with Meta's error object (131047, 131026 for `undeliverable` numbers);
* records every send (`sent`, `messages_to`, `refusals`, `max_rate`) and every webhook it
  posted with the bot's answer (`webhook_posts`);
* lets a test inject Graph errors (`fail`), a throughput limit (`enforce_rate`, answering
  130429 and 131056 like Meta) and network latency (`response_delay`);
* plays people (`user`) who write, tap reply buttons, list rows and template quick replies,
  share a location, react, send stickers, voice notes, images and unsupported messages, each
  as Meta's webhook body signed with ``X-Hub-Signature-256``.

Webhook bodies are serialised like Meta's: compact JSON with non-ASCII characters and slashes
escaped, signed over those exact bytes, so a bot that re-serialises before checking the
signature fails here as it would in production.

Deliberate simplifications: one business phone number and one WhatsApp Business Account; no
media download (GET on a media id), no audio/video/location/contacts/reaction/sticker sends
(refused with 131009 so an unexpected use is loud), no interactive types other than reply
buttons and lists, positional template parameters only (``{{1}}``...), no retries of webhooks
the bot refused, and status webhooks in the v24.0+ shape (no ``conversation`` object unless
`webhook_conversation` is set).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import hashlib
import hmac
import itertools
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

logger = logging.getLogger(__name__)

JSONDict = dict[str, Any]
T = TypeVar("T")

WINDOW_SECONDS = 24 * 60 * 60
"""Length of the customer-service window opened by each message a person sends."""

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_BUTTON_BODY_LENGTH = 1024
MAX_LIST_BODY_LENGTH = 4096
MAX_HEADER_LENGTH = 60
MAX_FOOTER_LENGTH = 60
MAX_BUTTONS = 3
MAX_BUTTON_TITLE_LENGTH = 20
MAX_BUTTON_ID_LENGTH = 256
MAX_LIST_BUTTON_LENGTH = 20
MAX_SECTIONS = 10
MAX_ROWS = 10
MAX_SECTION_TITLE_LENGTH = 24
MAX_ROW_TITLE_LENGTH = 24
MAX_ROW_DESCRIPTION_LENGTH = 72
MAX_ROW_ID_LENGTH = 200

PAIR_WINDOW_SECONDS = 6.0
"""Meta's pair rate limit is expressed per 6 seconds (one message every 6 s sustained)."""

MESSAGE_TYPES = (
    "AUDIO",
    "CONTACTS",
    "DOCUMENT",
    "IMAGE",
    "INTERACTIVE",
    "LINK_PREVIEW",
    "LOCATION",
    "REACTION",
    "STICKER",
    "TEMPLATE",
    "TEXT",
    "VIDEO",
)
"""Values Graph accepts for ``type`` (anything else is a code 100 error)."""

EMULATED_TYPES = frozenset({"text", "interactive", "template", "document", "image"})

TEMPLATE_STATUSES = frozenset({"APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED"})
TEMPLATE_CATEGORIES = ("AUTHENTICATION", "MARKETING", "UTILITY")

SUPPORTED_MEDIA: dict[str, int] = {
    "audio/aac": 16 * 1024 * 1024,
    "audio/amr": 16 * 1024 * 1024,
    "audio/mpeg": 16 * 1024 * 1024,
    "audio/mp4": 16 * 1024 * 1024,
    "audio/ogg": 16 * 1024 * 1024,
    "text/plain": 100 * 1024 * 1024,
    "application/pdf": 100 * 1024 * 1024,
    "application/vnd.ms-powerpoint": 100 * 1024 * 1024,
    "application/msword": 100 * 1024 * 1024,
    "application/vnd.ms-excel": 100 * 1024 * 1024,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": 100 * 1024 * 1024,
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": 100 * 1024 * 1024,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": 100 * 1024 * 1024,
    "image/jpeg": 5 * 1024 * 1024,
    "image/png": 5 * 1024 * 1024,
    "image/webp": 500 * 1024,
    "video/3gpp": 16 * 1024 * 1024,
    "video/mp4": 16 * 1024 * 1024,
}
"""MIME types the media endpoint accepts, with Meta's size limit for each."""

ERROR_CODES_HREF = "/documentation/business-messaging/whatsapp/support/error-codes"

KNOWN_ERRORS: dict[int, tuple[str, str, int]] = {
    1: ("An unknown error occurred", "Possibly a temporary issue due to downtime.", 500),
    2: (
        "An unexpected error has occurred. Please retry your request later.",
        "Temporary issue due to downtime.",
        503,
    ),
    4: ("Application request limit reached", "The app has reached its API call rate limit.", 400),
    100: ("Invalid parameter", "Invalid parameter", 400),
    190: ("Invalid OAuth access token - Cannot parse access token", "", 401),
    368: (
        "Temporarily blocked for policies violations",
        "The WhatsApp Business Account associated with the app has been restricted or disabled "
        "for violating a platform policy.",
        403,
    ),
    130429: ("Rate limit hit", "Cloud API message throughput has been reached.", 400),
    131000: ("Something went wrong", "Message failed to send due to an unknown error.", 500),
    131005: ("Access denied", "Permission is either not granted or has been removed.", 403),
    131008: ("Required parameter is missing", "The request is missing a required parameter.", 400),
    131009: ("Parameter value is not valid", "One or more parameter values are invalid.", 400),
    131016: ("Service unavailable", "A service is temporarily unavailable.", 503),
    131021: (
        "Recipient cannot be sender",
        "Sender and recipient phone number is the same.",
        400,
    ),
    131026: (
        "Message undeliverable",
        "Unable to deliver message. Reasons can include: the recipient phone number is not a "
        "WhatsApp phone number; the recipient has not accepted our new Terms of Service and "
        "Privacy Policy; the recipient is using an old WhatsApp version.",
        400,
    ),
    131047: (
        "Re-engagement message",
        "Message failed to send because more than 24 hours have passed since the customer last "
        "replied to this number.",
        400,
    ),
    131048: (
        "Spam rate limit hit",
        "Message failed to send because there are restrictions on how many messages can be sent "
        "from this phone number. This may be because too many previous messages were blocked or "
        "flagged as spam.",
        400,
    ),
    131049: (
        "This message was not delivered to maintain healthy ecosystem engagement.",
        "In order to maintain a healthy ecosystem engagement, the message failed to be delivered.",
        400,
    ),
    131051: ("Unsupported message type", "Message type is not currently supported.", 400),
    131052: ("Media download error", "Unable to download the media sent by the user.", 400),
    131053: ("Media upload error", "Unable to upload the media used in the message.", 400),
    131056: (
        "(Business Account, Consumer Account) pair rate limit hit",
        "Message failed to send because there were too many messages sent from this phone "
        "number to the same phone number in a short period of time.",
        400,
    ),
    132000: (
        "Number of parameters does not match the expected number of params",
        "The number of variable parameter values included in the request did not match the "
        "number of variable parameters defined in the template.",
        400,
    ),
    132001: (
        "Template name does not exist in the translation",
        "The template does not exist in the specified language or the template has not been "
        "approved.",
        404,
    ),
    132005: ("Translated text too long", "Translated text is too long.", 400),
    132012: (
        "Parameter format does not match format in the created template",
        "Variable parameter values formatted incorrectly.",
        400,
    ),
    132015: (
        "Template is Paused",
        "Template is paused due to low quality so it cannot be sent in a template message.",
        400,
    ),
    132016: (
        "Template is Disabled",
        "Template has been paused too many times due to low quality and is now permanently "
        "disabled.",
        400,
    ),
    132018: (
        "There's an issue with the parameters in your template",
        "Param text cannot have new-line/tab characters or more than 4 consecutive spaces",
        400,
    ),
    133010: (
        "Phone number not registered",
        "Phone number is not registered on the WhatsApp Business Platform.",
        400,
    ),
}
"""Graph error codes the emulator knows: (title, details, HTTP status), in Meta's words."""

# Graph messages that carry no "(#code)" prefix.
_UNPREFIXED_CODES = frozenset({1, 2, 190})

_PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")
_BAD_PARAMETER_TEXT = re.compile(r"[\n\r\t]| {5,}")
_TEMPLATE_NAME = re.compile(r"[a-z0-9_]{1,512}")
_GRAPH_VERSION = re.compile(r"v\d+\.\d+")
_EPSILON = 1e-9


class GraphError(Exception):
    """A Graph API error answer: ``{"error": {"message", "type", "code", ...}}``."""

    def __init__(
        self,
        code: int,
        title: str | None = None,
        details: str | None = None,
        *,
        status: int | None = None,
        error_type: str = "OAuthException",
        subcode: int | None = None,
        whatsapp: bool = True,
        prefixed: bool | None = None,
    ) -> None:
        known_title, known_details, known_status = KNOWN_ERRORS.get(
            code, (f"Error {code}", "", 400)
        )
        self.code = code
        self.title = title if title is not None else known_title
        self.details = details if details is not None else known_details
        self.status = status if status is not None else known_status
        self.error_type = error_type
        self.subcode = subcode
        self.whatsapp = whatsapp
        self.prefixed = prefixed if prefixed is not None else code not in _UNPREFIXED_CODES
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """Graph's ``message``: the title, after "(#code)" for most codes."""
        return f"(#{self.code}) {self.title}" if self.prefixed else self.title

    def payload(self) -> JSONDict:
        error: JSONDict = {"message": self.message, "type": self.error_type, "code": self.code}
        if self.whatsapp and self.details:
            error["error_data"] = {"messaging_product": "whatsapp", "details": self.details}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        if self.code == 2:
            error["is_transient"] = True
        error["fbtrace_id"] = _fbtrace_id()
        return {"error": error}


def invalid(details: str) -> GraphError:
    """Meta's answer to an interactive or media parameter it refuses (131009)."""
    return GraphError(131009, details=details)


def units(text: str) -> int:
    """Length as the Cloud API limits are checked here: UTF-16 code units (an emoji beyond
    the BMP counts 2), the strictest reading of Meta's "characters"."""
    return len(text.encode("utf-16-le")) // 2


def param_error(message: str) -> GraphError:
    """Graph's schema-level refusal (code 100) with its own wording, e.g. a missing field."""
    return GraphError(100, title=message, whatsapp=False)


def error_object(code: int, details: str | None = None) -> JSONDict:
    """The ``errors[]`` item of a ``failed`` status webhook, as Meta writes it."""
    title, known_details, _ = KNOWN_ERRORS.get(code, (f"Error {code}", "", 400))
    return {
        "code": code,
        "title": title,
        "message": title,
        "error_data": {"details": details if details is not None else known_details},
        "href": ERROR_CODES_HREF,
    }


def _fbtrace_id() -> str:
    return "A" + secrets.token_urlsafe(16)[:22]


def wa_id_of(number: str) -> str:
    """The WhatsApp id for a phone number as a bot may write it ("+33 6 12..." -> "3361...")."""
    return re.sub(r"\D", "", number)


def encode_webhook(payload: JSONDict) -> bytes:
    """Serialise a webhook body like Meta: compact, non-ASCII and "/" escaped."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=True)
    return text.replace("/", "\\/").encode("ascii")


def signature_of(body: bytes, app_secret: str) -> str:
    """The ``X-Hub-Signature-256`` header value Meta sends with `body`."""
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


_wamid_counter = itertools.count(1)


def new_wamid(wa_id: str, *, inbound: bool) -> str:
    """A unique id shaped like Meta's (base64 of the number and a hex message key)."""
    key_length = 20 if inbound else 18
    key = f"{next(_wamid_counter):08X}{secrets.token_hex(8).upper()}"[:key_length]
    number = wa_id.encode()[:255]
    raw = (
        b"\x1c\x18"
        + bytes([len(number)])
        + number
        + b"\x15\x02\x00"
        + (b"\x12\x18\x14" if inbound else b"\x11\x18\x12")
        + key.encode()
        + b"\x00"
    )
    return "wamid." + base64.b64encode(raw).decode()


@dataclass
class Template:
    """A message template of the WhatsApp Business Account, in one language."""

    name: str
    language: str
    body_text: str
    status: str = "APPROVED"
    category: str = "UTILITY"
    buttons: list[str] = field(default_factory=list)
    """Labels of the quick-reply buttons, in order."""
    id: str = ""
    components: list[JSONDict] = field(default_factory=list)

    @property
    def placeholders(self) -> list[str]:
        """Distinct ``{{n}}`` placeholders of the body, in order of first appearance."""
        return list(dict.fromkeys(_PLACEHOLDER.findall(self.body_text)))

    def render(self, values: Sequence[str]) -> str:
        """The body as the person reads it, placeholders filled by position."""

        def fill(match: re.Match[str]) -> str:
            index = int(match.group(1)) - 1
            return values[index] if 0 <= index < len(values) else match.group(0)

        return _PLACEHOLDER.sub(fill, self.body_text)

    def json(self) -> JSONDict:
        components = self.components or self._default_components()
        return {
            "name": self.name,
            "parameter_format": "POSITIONAL",
            "components": copy.deepcopy(components),
            "language": self.language,
            "status": self.status,
            "category": self.category,
            "id": self.id,
        }

    def _default_components(self) -> list[JSONDict]:
        components: list[JSONDict] = [{"type": "BODY", "text": self.body_text}]
        if self.buttons:
            components.append(
                {
                    "type": "BUTTONS",
                    "buttons": [{"type": "QUICK_REPLY", "text": label} for label in self.buttons],
                }
            )
        return components


@dataclass
class SentMessage:
    """One request the bot made to the messages endpoint, with its outcome.

    `accepted` is the synchronous answer (200 with a wamid). An accepted message may still
    fail afterwards, by status webhook: then `error_code` is set too (131047, 131026).
    A refused request has `accepted` False, no wamid, and the Graph `error_code`.
    """

    to: str
    type: str
    body: JSONDict
    at: float
    """The emulator's clock (time.monotonic() unless replaced) when the request was read."""
    wamid: str | None = None
    accepted: bool = False
    error_code: int | None = None
    http_status: int = 0
    response: JSONDict | None = field(default=None, repr=False)
    rendered: str | None = None
    """Template messages: the body with its placeholders filled, as the person reads it."""
    window_open: bool = False
    """Whether the person's customer-service window was open when the message was accepted."""
    statuses: list[str] = field(default_factory=list)
    """Status webhooks posted for this message so far, in order."""

    @property
    def wa_id(self) -> str:
        return wa_id_of(self.to)

    @property
    def delivered(self) -> bool:
        """Accepted and not failed afterwards: the person sees it."""
        return self.accepted and self.error_code is None

    @property
    def failed(self) -> bool:
        """Accepted (200 and a wamid) but then failed by status webhook."""
        return self.accepted and self.error_code is not None

    @property
    def status(self) -> str | None:
        """Latest status posted by webhook ("sent", "delivered", "read", "failed")."""
        return self.statuses[-1] if self.statuses else None

    @property
    def is_template(self) -> bool:
        return self.type == "template"

    @property
    def template(self) -> str | None:
        """Name of the template sent, or None."""
        if not self.is_template:
            return None
        name = _dict(self.body.get("template")).get("name")
        return name if isinstance(name, str) else None

    @property
    def interactive(self) -> JSONDict:
        return _dict(self.body.get("interactive"))

    @property
    def text(self) -> str | None:
        """What the person reads: text body, interactive body, caption or rendered template."""
        if self.type == "text":
            return _str(_dict(self.body.get("text")).get("body"))
        if self.type == "interactive":
            return _str(_dict(self.interactive.get("body")).get("text"))
        if self.type in ("document", "image"):
            return _str(_dict(self.body.get(self.type)).get("caption"))
        if self.is_template:
            return self.rendered
        return None

    @property
    def buttons(self) -> list[str]:
        """Titles of the reply buttons."""
        return [title for _, title in self._reply_buttons()]

    @property
    def button_ids(self) -> list[str]:
        return [reply_id for reply_id, _ in self._reply_buttons()]

    @property
    def rows(self) -> list[str]:
        """Titles of the list rows, all sections together."""
        return [_str(row.get("title")) or "" for row in self.list_rows()]

    @property
    def row_ids(self) -> list[str]:
        return [_str(row.get("id")) or "" for row in self.list_rows()]

    @property
    def quick_replies(self) -> dict[int, str]:
        """Template quick-reply payloads sent, by button index."""
        payloads: dict[int, str] = {}
        for component in _list(_dict(self.body.get("template")).get("components")):
            component = _dict(component)
            if component.get("type") != "button" or component.get("sub_type") != "quick_reply":
                continue
            index = _int(component.get("index"))
            for parameter in _list(component.get("parameters")):
                payload = _dict(parameter).get("payload")
                if index is not None and isinstance(payload, str):
                    payloads[index] = payload
        return payloads

    @property
    def filename(self) -> str | None:
        return _str(_dict(self.body.get("document")).get("filename"))

    @property
    def media_id(self) -> str | None:
        return _str(_dict(self.body.get(self.type)).get("id"))

    def _reply_buttons(self) -> list[tuple[str, str]]:
        if self.interactive.get("type") != "button":
            return []
        action = _dict(self.interactive.get("action"))
        pairs: list[tuple[str, str]] = []
        for button in _list(action.get("buttons")):
            reply = _dict(_dict(button).get("reply"))
            pairs.append((_str(reply.get("id")) or "", _str(reply.get("title")) or ""))
        return pairs

    def list_rows(self) -> list[JSONDict]:
        """The row objects of a list message (id, title, description), all sections."""
        if self.interactive.get("type") != "list":
            return []
        action = _dict(self.interactive.get("action"))
        return [
            _dict(row)
            for section in _list(action.get("sections"))
            for row in _list(_dict(section).get("rows"))
        ]


@dataclass
class WebhookPost:
    """One webhook the emulator posted to the bot."""

    kind: str
    """"message" (a person wrote), "status" (a status update) or "raw" (`post`)."""
    body: bytes
    signature: str | None
    at: float
    status: int | None = None
    """HTTP status the bot answered; None while pending or when it could not be reached."""
    error: str | None = None

    @property
    def payload(self) -> Any:
        """The body decoded as JSON (None when it is not JSON)."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass
class _InjectedFailure:
    code: int
    status: int | None
    details: str | None
    remaining: int
    wa_id: str | None


@dataclass
class _Bucket:
    """`rate` tokens per second, refilled continuously, holding at most `capacity`."""

    rate: float
    capacity: float
    tokens: float
    updated: float

    def available(self, now: float) -> bool:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        self.updated = max(self.updated, now)
        return self.tokens >= 1.0 - _EPSILON


class _RateLimits:
    """Meta's throughput limit (per phone number) and pair rate limit (per recipient)."""

    def __init__(
        self, per_second: float, burst: float, pair_per_6s: float | None, now: float
    ) -> None:
        if not per_second > 0 or not burst > 0:
            raise ValueError("per_second and burst must be positive")
        if pair_per_6s is not None and not pair_per_6s > 0:
            raise ValueError("pair_per_6s must be positive (or None for no pair limit)")
        capacity = max(1.0, per_second * burst)
        self.throughput = _Bucket(per_second, capacity, capacity, now)
        self.pair_per_6s = pair_per_6s
        self.pairs: dict[str, _Bucket] = {}

    def take(self, wa_id: str, now: float) -> int | None:
        """Take a token for a send to `wa_id`; None if allowed, else the Graph error code."""
        if not self.throughput.available(now):
            return 130429
        pair = None
        if self.pair_per_6s is not None:
            pair = self.pairs.get(wa_id)
            if pair is None:
                capacity = max(1.0, self.pair_per_6s)
                rate = self.pair_per_6s / PAIR_WINDOW_SECONDS
                pair = self.pairs[wa_id] = _Bucket(rate, capacity, capacity, now)
            if not pair.available(now):
                return 131056
        self.throughput.tokens -= 1.0
        if pair is not None:
            pair.tokens -= 1.0
        return None


@dataclass
class _StatusJob:
    message: SentMessage
    status: str


class CloudApiEmulator:
    """Fake WhatsApp Cloud API for one business phone number. See the module docstring."""

    def __init__(
        self,
        *,
        phone_number_id: str = "100200300",
        waba_id: str = "900800700",
        token: str = "test-token",
        app_secret: str = "test-app-secret",
        display_phone_number: str = "33757000000",
        api_version: str = "v26.0",
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.phone_number_id = phone_number_id
        self.waba_id = waba_id
        self.token = token
        self.app_secret = app_secret
        self.display_phone_number = display_phone_number
        self.api_version = api_version
        self.clock: Callable[[], float] = clock
        """Time source of `SentMessage.at` and of the rate limits, in seconds. A test may swap
        in a fake clock to step time by hand; it must never go backwards."""
        self.wall_clock: Callable[[], float] = wall_clock
        """Unix time source of the customer-service window and of webhook timestamps."""

        self.webhook_url: str | None = None
        """Where people's messages and status updates are posted (the bot's webhook)."""
        self.response_delay: float = 0.0
        """Seconds to wait before answering the messages and media endpoints. The request is
        processed first, so a client that times out still finds its message sent."""
        self.send_statuses: bool = True
        """Post ``sent``/``delivered`` (or ``failed``) status webhooks after each send."""
        self.mark_read: bool = False
        """Also post ``read`` after ``delivered``, as if the person opened the chat."""
        self.status_delay: float = 0.002
        """Seconds before each status webhook, so the bot usually has its answer first."""
        self.webhook_conversation: bool = False
        """Add the ``conversation`` object to sent/delivered statuses, as webhooks older than
        v24.0 did (v24.0+ omit it outside free entry point windows)."""
        self.auto_approve: bool = False
        """Templates created through the API are APPROVED at once instead of PENDING."""

        self.sent: list[SentMessage] = []
        """Every request to the messages endpoint that got past authentication, in order."""
        self.refusals: list[SentMessage] = []
        """Sends refused by `enforce_rate` (130429 or 131056); they are in `sent` too."""
        self.webhook_posts: list[WebhookPost] = []
        self.media: dict[str, tuple[str, str, bytes]] = {}
        """Uploaded (and people's) media: media id -> (filename, mime type, content)."""
        self.templates: dict[tuple[str, str], Template] = {}
        """Template registry: (name, language code) -> Template."""

        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._session: aiohttp.ClientSession | None = None
        self._worker: asyncio.Task[None] | None = None
        self._outbox: asyncio.Queue[_StatusJob] = asyncio.Queue()
        self._posting = 0
        self._changed = asyncio.Event()
        self._users: dict[str, FakeWhatsAppUser] = {}
        self._last_inbound: dict[str, float] = {}
        self._undeliverable: set[str] = set()
        self._failures: list[_InjectedFailure] = []
        self._limits: _RateLimits | None = None
        self._media_ids = itertools.count(1_203_004_005_006_001)
        self._template_ids = itertools.count(1_500_000_000_000_001)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Serve on 127.0.0.1 on a free port."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        app = web.Application(client_max_size=128 * 1024 * 1024)
        app.router.add_route("*", "/{version}/{node}/{edge}", self._handle_graph_request)
        app.router.add_get("/{version}/{node}", self._handle_phone_number)
        app.router.add_route("*", "/{tail:.*}", self._handle_unknown_path)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self._worker = asyncio.create_task(self._post_statuses())
        logger.info("WhatsApp Cloud API emulator listening on %s", self.url)

    async def stop(self) -> None:
        """Stop serving; status webhooks not yet posted are dropped."""
        if self._runner is None:
            return
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._runner.cleanup()
        self._runner = None
        self._port = None
        self._notify()
        logger.info("WhatsApp Cloud API emulator stopped")

    async def __aenter__(self) -> CloudApiEmulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """Graph base URL with its version, e.g. "http://127.0.0.1:38421/v26.0"."""
        if self._port is None:
            raise RuntimeError("the emulator is not running; await start() first")
        return f"http://127.0.0.1:{self._port}/{self.api_version}"

    @property
    def messages_url(self) -> str:
        return f"{self.url}/{self.phone_number_id}/messages"

    # ------------------------------------------------------------------ templates

    def add_template(
        self,
        name: str,
        language: str,
        body_text: str,
        status: str = "APPROVED",
        *,
        category: str = "UTILITY",
        buttons: Iterable[str] = (),
    ) -> Template:
        """Register a template (replacing one with the same name and language)."""
        self._check_template_status(status)
        template = Template(
            name=name,
            language=language,
            body_text=body_text,
            status=status,
            category=category.upper(),
            buttons=list(buttons),
            id=str(next(self._template_ids)),
        )
        self.templates[(name, language)] = template
        return template

    def set_template_status(self, name: str, language: str, status: str) -> None:
        """Change a template's review status (APPROVED, PENDING, REJECTED, PAUSED, DISABLED)."""
        self._check_template_status(status)
        try:
            self.templates[(name, language)].status = status
        except KeyError:
            raise KeyError(f"no template {name!r} in {language!r}") from None

    @staticmethod
    def _check_template_status(status: str) -> None:
        if status not in TEMPLATE_STATUSES:
            raise ValueError(f"template status must be one of {sorted(TEMPLATE_STATUSES)}")

    # ------------------------------------------------------------------ inspection

    def messages_to(self, wa_id: str) -> list[SentMessage]:
        """Messages the person sees: accepted and not failed afterwards, oldest first."""
        wanted = wa_id_of(wa_id)
        return [message for message in self.sent if message.delivered and message.wa_id == wanted]

    def accepted(self) -> list[SentMessage]:
        """Sends answered 200 with a wamid (failed-by-webhook ones included), in order."""
        return [message for message in self.sent if message.accepted]

    def max_rate(self, window: float = 1.0, wa_id: str | None = None) -> float:
        """Most accepted sends seen in any `window` seconds (to `wa_id` if given), per second.

        Windows are half-open: sends exactly `window` apart never share one. A token bucket of
        capacity C and rate r admits up to C + r * window sends in a window, so with `burst`
        = 1 s a bot using its whole allowance reaches up to twice the rate over 1 s.
        """
        if not window > 0:
            raise ValueError("window must be positive")
        wanted = None if wa_id is None else wa_id_of(wa_id)
        times = sorted(
            message.at for message in self.accepted() if wanted is None or message.wa_id == wanted
        )
        most = 0
        end = 0
        for start, opened in enumerate(times):
            while end < len(times) and times[end] - opened < window:
                end += 1
            most = max(most, end - start)
        return most / window

    def window_open(self, wa_id: str) -> bool:
        """Whether the person wrote within the last 24 hours (wall clock)."""
        last = self._last_inbound.get(wa_id_of(wa_id))
        return last is not None and self.wall_clock() - last <= WINDOW_SECONDS

    def describe(self, wa_id: str) -> str:
        """Human-readable summary of what was sent to a person, for assertion messages."""
        wanted = wa_id_of(wa_id)
        lines = [f"messages sent to {wanted}:"]
        for message in self.sent:
            if message.wa_id != wanted:
                continue
            if message.delivered:
                outcome = message.status or "accepted"
            elif message.failed:
                outcome = f"failed {message.error_code}"
            else:
                outcome = f"refused {message.error_code}"
            options = message.buttons or message.rows
            lines.append(f"  [{outcome}] {message.type}: {message.text!r} {options or ''}")
        if len(lines) == 1:
            lines.append("  (none)")
        window = "open" if self.window_open(wanted) else "closed"
        lines.append(f"  customer-service window: {window}")
        return "\n".join(lines)

    async def wait_until(
        self,
        condition: Callable[[], T | None],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> T:
        """Wait until `condition()` returns something other than None or False; return that.

        The condition is evaluated again each time the emulator's state changes (a request was
        answered, a webhook posted). Raises AssertionError on timeout.
        """
        result = await self._settled(condition, timeout)
        if result is None:
            raise AssertionError(f"condition still unmet after {timeout}s")
        return result

    async def flush(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until every status webhook due so far has been posted and answered."""
        if await self._settled(lambda: self._outbox.empty() and not self._posting, timeout):
            return
        raise AssertionError(f"status webhooks still pending after {timeout}s")

    async def _settled(self, condition: Callable[[], T | None], within: float) -> T | None:
        """Like wait_until, but return None on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            result = condition()
            if result is not None and result is not False:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def _notify(self) -> None:
        """Wake everything waiting in wait_until."""
        self._changed.set()
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ failure injection

    def fail(
        self,
        code: int,
        *,
        times: int = 1,
        to: str | None = None,
        status: int | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next `times` sends (to `to` only, if given) with Graph error `code`.

        The wording is Meta's for the codes in KNOWN_ERRORS (130429, 131056, 131026, 131047,
        131049, 131000, 2...); `message` replaces ``error_data.details``. The HTTP status is
        Meta's for that code (400 for most, 500 for 131000, 503 for 2 and 131016) unless
        `status` says otherwise. Nothing is delivered.
        """
        if times < 1:
            raise ValueError("times must be at least 1")
        if status is not None and status < 400:
            raise ValueError("status must be an HTTP error code")
        wa_id = None if to is None else wa_id_of(to)
        self._failures.append(_InjectedFailure(code, status, message, times, wa_id))

    def enforce_rate(
        self,
        per_second: float = 80.0,
        burst: float = 1.0,
        pair_per_6s: float | None = None,
    ) -> None:
        """Refuse sends beyond Meta's throughput from now on, like Meta does.

        Every send counts against a token bucket of `per_second` tokens per second, refilled
        continuously on `clock`, holding `burst` seconds of that rate (at least one token) and
        starting full. A send that finds it empty is answered 130429 "Rate limit hit", is not
        delivered and lands in `refusals`. With `pair_per_6s`, each recipient also has a
        bucket of `pair_per_6s` tokens refilled over 6 seconds; an empty one answers 131056.
        A send refused for any reason takes no token. Calling it again starts afresh.
        """
        self._limits = _RateLimits(per_second, burst, pair_per_6s, self.clock())

    def lift_rate(self) -> None:
        """Stop enforcing throughput limits; `refusals` keeps its history."""
        self._limits = None

    def undeliverable(self, wa_id: str) -> None:
        """Every later message to that number is accepted, then fails with 131026."""
        self._undeliverable.add(wa_id_of(wa_id))

    def deliverable(self, wa_id: str) -> None:
        self._undeliverable.discard(wa_id_of(wa_id))

    # ------------------------------------------------------------------ people and webhooks

    def user(self, wa_id: str, *, name: str = "Amina") -> FakeWhatsAppUser:
        """A person on WhatsApp (same object when asked twice for one number)."""
        key = wa_id_of(wa_id)
        if not key:
            raise ValueError(f"not a phone number: {wa_id!r}")
        if key not in self._users:
            self._users[key] = FakeWhatsAppUser(self, key, name)
        return self._users[key]

    def sign(self, body: bytes) -> str:
        """The ``X-Hub-Signature-256`` value Meta would send with `body`."""
        return signature_of(body, self.app_secret)

    async def post(self, body: bytes, signature: str | None) -> int:
        """Post raw bytes to the webhook (forged, malformed or replayed); returns the status."""
        status = await self._post_webhook(body, signature, kind="raw")
        if status is None:
            raise AssertionError(f"the webhook at {self.webhook_url} could not be reached")
        return status

    def metadata(self) -> JSONDict:
        return {
            "display_phone_number": self.display_phone_number,
            "phone_number_id": self.phone_number_id,
        }

    def envelope(self, value: JSONDict) -> JSONDict:
        """A ``messages`` webhook body around `value`, as Meta posts it."""
        return {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": self.waba_id,
                    "changes": [
                        {
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": self.metadata(),
                                **value,
                            },
                            "field": "messages",
                        }
                    ],
                }
            ],
        }

    def store_media(self, content: bytes, mime_type: str, filename: str = "") -> str:
        """Keep a media file and return its new media id."""
        media_id = str(next(self._media_ids))
        self.media[media_id] = (filename, mime_type, content)
        return media_id

    async def _post_webhook(self, body: bytes, signature: str | None, *, kind: str) -> int | None:
        post = WebhookPost(kind=kind, body=body, signature=signature, at=self.clock())
        self.webhook_posts.append(post)
        url = self.webhook_url
        if url is None or self._session is None:
            post.error = "no webhook_url set" if url is None else "the emulator is not running"
            logger.warning("webhook not posted (%s): %s", kind, post.error)
            self._notify()
            return None
        headers = {"Content-Type": "application/json", "User-Agent": "facebookexternalua"}
        if signature is not None:
            headers["X-Hub-Signature-256"] = signature
        try:
            async with self._session.post(url, data=body, headers=headers) as response:
                await response.read()
                post.status = response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            post.error = repr(error)
            logger.warning("webhook %s could not be posted: %r", kind, error)
        self._notify()
        return post.status

    async def _post_person_message(self, user: FakeWhatsAppUser, message: JSONDict) -> int:
        if self.webhook_url is None:
            raise RuntimeError("set emulator.webhook_url before people write to the bot")
        value: JSONDict = {
            "contacts": [{"profile": {"name": user.name}, "wa_id": user.wa_id}],
            "messages": [message],
        }
        body = encode_webhook(self.envelope(value))
        user.last_posted = body
        self._last_inbound[user.wa_id] = self.wall_clock()
        status = await self._post_webhook(body, self.sign(body), kind="message")
        if status is None:
            raise AssertionError(f"the webhook at {self.webhook_url} could not be reached")
        return status

    # ------------------------------------------------------------------ status webhooks

    async def _post_statuses(self) -> None:
        while True:
            job = await self._outbox.get()
            self._posting += 1
            try:
                if self.status_delay > 0:
                    await asyncio.sleep(self.status_delay)
                body = encode_webhook(self.envelope({"statuses": [self._status_json(job)]}))
                job.message.statuses.append(job.status)
                await self._post_webhook(body, self.sign(body), kind="status")
            except Exception:
                logger.exception("status webhook for %s failed", job.message.wamid)
            finally:
                self._posting -= 1
                self._notify()

    def _queue_statuses(self, message: SentMessage) -> None:
        if not self.send_statuses:
            return
        if message.error_code is not None:
            steps = ["failed"]
        else:
            steps = ["sent", "delivered"] + (["read"] if self.mark_read else [])
        for status in steps:
            self._outbox.put_nowait(_StatusJob(message, status))

    def _status_json(self, job: _StatusJob) -> JSONDict:
        message = job.message
        now = int(self.wall_clock())
        status: JSONDict = {
            "id": message.wamid,
            "status": job.status,
            "timestamp": str(now),
            "recipient_id": message.wa_id,
        }
        if job.status in ("sent", "delivered"):
            category, pricing_type, billable = self._pricing(message)
            if self.webhook_conversation:
                conversation: JSONDict = {
                    "id": hashlib.md5(str(message.wamid).encode()).hexdigest()
                }
                if job.status == "sent":
                    conversation["expiration_timestamp"] = str(now + WINDOW_SECONDS)
                conversation["origin"] = {"type": category}
                status["conversation"] = conversation
            status["pricing"] = {
                "billable": billable,
                "pricing_model": "PMP",
                "type": pricing_type,
                "category": category,
            }
        if job.status == "failed" and message.error_code is not None:
            status["errors"] = [error_object(message.error_code)]
        return status

    def _pricing(self, message: SentMessage) -> tuple[str, str, bool]:
        """(category, pricing type, billable) of a delivered message under per-message pricing."""
        if not message.is_template:
            return "service", "free_customer_service", False
        language = _dict(_dict(message.body.get("template")).get("language")).get("code")
        template = self.templates.get((message.template or "", str(language)))
        category = (template.category if template else "UTILITY").lower()
        if category == "utility" and message.window_open:
            return category, "free_customer_service", False
        return category, "regular", True

    # ------------------------------------------------------------------ HTTP plumbing

    async def _handle_graph_request(self, request: web.Request) -> web.Response:
        version = request.match_info["version"]
        node = request.match_info["node"]
        edge = request.match_info["edge"]
        try:
            self._authenticate(request)
            if not _GRAPH_VERSION.fullmatch(version):
                raise _unknown_path(request.path)
            if edge == "messages" and node == self.phone_number_id and request.method == "POST":
                return await self._handle_messages(request)
            if edge == "media" and node == self.phone_number_id and request.method == "POST":
                return await self._handle_media(request)
            if edge == "message_templates" and node == self.waba_id:
                if request.method == "POST":
                    return await self._create_template(request)
                if request.method == "GET":
                    return self._list_templates(request)
            if edge in ("messages", "media", "message_templates"):
                raise _unsupported_request(request.method, node)
            raise _unknown_path(request.path)
        except GraphError as error:
            return _error_response(error)

    async def _handle_phone_number(self, request: web.Request) -> web.Response:
        """GET on the phone number's node: its fields, as Graph gives them."""
        try:
            self._authenticate(request)
            node = request.match_info["node"]
            if not _GRAPH_VERSION.fullmatch(request.match_info["version"]):
                raise _unknown_path(request.path)
            if node != self.phone_number_id:
                raise _unsupported_request("GET", node)
        except GraphError as error:
            return _error_response(error)
        number = self.display_phone_number
        shown = (
            f"+{number[:2]} {number[2:3]} {number[3:5]} {number[5:7]} {number[7:9]} {number[9:]}"
        )
        return web.json_response(
            {"display_phone_number": shown, "verified_name": "Coup de pouce", "id": node}
        )

    async def _handle_unknown_path(self, request: web.Request) -> web.Response:
        try:
            self._authenticate(request)
        except GraphError as error:
            return _error_response(error)
        logger.warning("request to unknown path %s", request.path)
        return _error_response(_unknown_path(request.path))

    def _authenticate(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        token = credentials.strip() if scheme.lower() in ("bearer", "oauth") else ""
        token = token or request.query.get("access_token", "")
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            raise GraphError(190, whatsapp=False)

    async def _handle_messages(self, request: web.Request) -> web.Response:
        raw = await request.read()
        at = self.clock()
        try:
            decoded = json.loads(raw) if raw.strip() else {}
        except ValueError:
            decoded = None
        body: JSONDict = decoded if isinstance(decoded, dict) else {}
        record = SentMessage(
            to=_str(body.get("to")) or "", type=_str(body.get("type")) or "text", body=body, at=at
        )
        self.sent.append(record)
        try:
            answer = self._process_send(record, body_is_object=isinstance(decoded, dict))
            status = 200
        except GraphError as error:
            answer, status = error.payload(), error.status
            record.error_code = error.code
        record.http_status = status
        record.response = answer
        logger.debug("send %s to %s -> %s", record.type, record.to, status)
        self._notify()
        try:
            if self.response_delay > 0:
                await asyncio.sleep(self.response_delay)
        finally:
            # Statuses follow the answer, as with Meta, even when the client gave up waiting.
            if record.accepted:
                self._queue_statuses(record)
        return web.json_response(answer, status=status)

    def _process_send(self, record: SentMessage, *, body_is_object: bool) -> JSONDict:
        body = record.body
        if not body_is_object or body.get("messaging_product") is None:
            raise param_error("The parameter messaging_product is required.")
        if body.get("messaging_product") != "whatsapp":
            got = json.dumps(body.get("messaging_product"))
            raise param_error(f"Param messaging_product must be one of {{WHATSAPP}} - got {got}.")
        if not record.to:
            raise param_error("The parameter to is required.")
        if not 5 <= len(record.wa_id) <= 15:
            raise GraphError(100, details="Param to is not valid")
        self._raise_injected_failure(record)
        kind = body.get("type", "text")
        if not isinstance(kind, str) or kind.upper() not in MESSAGE_TYPES:
            allowed = ", ".join(MESSAGE_TYPES)
            raise param_error(f"Param type must be one of {{{allowed}}} - got {json.dumps(kind)}.")
        if kind not in EMULATED_TYPES:
            raise invalid(
                f"Message type {kind} is not emulated (text, interactive, template, "
                "document and image are)"
            )
        if kind == "text":
            _check_text(body)
        elif kind == "interactive":
            _check_interactive(body.get("interactive"))
        elif kind in ("document", "image"):
            self._check_media_message(kind, body.get(kind))
        else:
            record.rendered = self._check_template(body.get("template"))
        if self._limits is not None:
            refused = self._limits.take(record.wa_id, record.at)
            if refused is not None:
                self.refusals.append(record)
                raise GraphError(refused)
        return self._accept(record)

    def _accept(self, record: SentMessage) -> JSONDict:
        record.accepted = True
        record.wamid = new_wamid(record.wa_id, inbound=False)
        record.window_open = self.window_open(record.wa_id)
        if record.wa_id in self._undeliverable:
            record.error_code = 131026
        elif not record.is_template and not record.window_open:
            record.error_code = 131047
        message: JSONDict = {"id": record.wamid}
        if record.is_template:
            message["message_status"] = "accepted"
        return {
            "messaging_product": "whatsapp",
            "contacts": [{"input": record.to, "wa_id": record.wa_id}],
            "messages": [message],
        }

    def _raise_injected_failure(self, record: SentMessage) -> None:
        for failure in self._failures:
            if failure.wa_id is not None and failure.wa_id != record.wa_id:
                continue
            failure.remaining -= 1
            if failure.remaining == 0:
                self._failures.remove(failure)
            raise GraphError(failure.code, details=failure.details, status=failure.status)

    def _check_media_message(self, kind: str, media: Any) -> None:
        if not isinstance(media, dict):
            raise param_error(f"The parameter {kind} is required.")
        media_id, link = media.get("id"), media.get("link")
        if (media_id is None) == (link is None):
            raise invalid(f"Param {kind} must contain exactly one of id or link")
        if media_id is not None and str(media_id) not in self.media:
            raise invalid(f"Invalid media id: {media_id}")
        if link is not None and not re.match(r"https?://\S+$", str(link)):
            raise invalid(f"Invalid {kind} link: {link}")
        caption = media.get("caption")
        if caption is not None and units(str(caption)) > MAX_CAPTION_LENGTH:
            raise param_error(
                f"Param {kind}['caption'] must be at most {MAX_CAPTION_LENGTH} characters long."
            )
        filename = media.get("filename")
        if filename is not None and (kind != "document" or not isinstance(filename, str)):
            raise param_error(f"Param {kind}['filename'] is not valid.")

    def _check_template(self, raw: Any) -> str:
        """Validate a template send like Meta; returns the text the person reads."""
        if not isinstance(raw, dict):
            raise param_error("The parameter template is required.")
        name = raw.get("name")
        language = _dict(raw.get("language")).get("code")
        if not isinstance(name, str) or not name:
            raise param_error("The parameter template['name'] is required.")
        if not isinstance(language, str) or not language:
            raise param_error("The parameter template['language']['code'] is required.")
        template = self.templates.get((name, language))
        if template is None or template.status in ("PENDING", "REJECTED"):
            raise GraphError(132001, details=f"template name ({name}) does not exist in {language}")
        if template.status == "PAUSED":
            raise GraphError(132015)
        if template.status == "DISABLED":
            raise GraphError(132016)
        values: list[str] = []
        for component in _list(raw.get("components")):
            component = _dict(component)
            kind = str(component.get("type", "")).lower()
            if kind == "body":
                values = [
                    _parameter_text(parameter) for parameter in _list(component.get("parameters"))
                ]
            elif kind == "button":
                _check_template_button(component, template)
        expected = len(template.placeholders)
        if len(values) != expected:
            raise GraphError(
                132000,
                details=f"body: number of localizable_params ({len(values)}) does not match "
                f"the expected number of params ({expected})",
            )
        if any(_BAD_PARAMETER_TEXT.search(value) for value in values):
            raise GraphError(132018)
        return template.render(values)

    async def _handle_media(self, request: web.Request) -> web.Response:
        try:
            answer = await self._upload(request)
            response = web.json_response(answer)
        except GraphError as error:
            response = _error_response(error)
        self._notify()
        if self.response_delay > 0:
            await asyncio.sleep(self.response_delay)
        return response

    async def _upload(self, request: web.Request) -> JSONDict:
        if request.content_type != "multipart/form-data":
            raise param_error("The parameter messaging_product is required.")
        form = await request.post()
        fields = {key: value for key, value in form.items() if isinstance(value, str)}
        upload = form.get("file")
        if fields.get("messaging_product") != "whatsapp":
            raise param_error("The parameter messaging_product is required.")
        if not isinstance(upload, web.FileField):
            raise param_error("The parameter file is required.")
        content = upload.file.read()
        mime_type = (fields.get("type") or upload.content_type or "").split(";")[0].strip()
        if mime_type not in SUPPORTED_MEDIA:
            allowed = ", ".join(SUPPORTED_MEDIA)
            raise param_error(
                f"Param file must be a file with one of the following types: {allowed}. "
                f"Received file of type '{mime_type}'."
            )
        if not content:
            raise GraphError(131053, details="The uploaded file is empty.")
        if len(content) > SUPPORTED_MEDIA[mime_type]:
            raise GraphError(
                131053,
                details=f"File size exceeds the {SUPPORTED_MEDIA[mime_type]} bytes limit "
                f"for {mime_type}.",
            )
        return {"id": self.store_media(content, mime_type, upload.filename or "")}

    async def _create_template(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise param_error("The parameter name is required.")
        for name in ("name", "language", "category", "components"):
            if not body.get(name):
                raise param_error(f"The parameter {name} is required.")
        name, language = str(body["name"]), str(body["language"])
        category = str(body["category"]).upper()
        if not _TEMPLATE_NAME.fullmatch(name):
            raise GraphError(
                100,
                title="Invalid parameter",
                details="Template name can only contain lowercase letters, numbers and "
                "underscores.",
            )
        if category not in TEMPLATE_CATEGORIES:
            got = json.dumps(body["category"])
            raise param_error(
                f"Param category must be one of {{{', '.join(TEMPLATE_CATEGORIES)}}} - got {got}."
            )
        if (name, language) in self.templates:
            raise GraphError(
                100,
                title="Invalid parameter",
                details=f"Content in this language already exists: {name} ({language})",
                subcode=2388024,
            )
        components = [_dict(component) for component in _list(body["components"])]
        body_text = ""
        buttons: list[str] = []
        for component in components:
            kind = str(component.get("type", "")).upper()
            if kind == "BODY":
                body_text = str(component.get("text", ""))
            elif kind == "BUTTONS":
                buttons = [
                    str(_dict(button).get("text", ""))
                    for button in _list(component.get("buttons"))
                    if str(_dict(button).get("type", "")).upper() == "QUICK_REPLY"
                ]
        if not body_text:
            raise invalid("components: a BODY component with text is required")
        status = "APPROVED" if self.auto_approve else "PENDING"
        template = self.add_template(
            name, language, body_text, status, category=category, buttons=buttons
        )
        template.components = copy.deepcopy(components)
        self._notify()
        return web.json_response({"id": template.id, "status": status, "category": category})

    def _list_templates(self, request: web.Request) -> web.Response:
        name = request.query.get("name")
        status = request.query.get("status")
        data = [
            template.json()
            for template in self.templates.values()
            if (name is None or template.name == name)
            and (status is None or template.status == status.upper())
        ]
        cursor = base64.b64encode(b"MAZDZD").decode()
        return web.json_response(
            {"data": data, "paging": {"cursors": {"before": cursor, "after": cursor}}}
        )


class FakeWhatsAppUser:
    """A person on WhatsApp writing to the business number (posts signed webhooks)."""

    def __init__(self, emulator: CloudApiEmulator, wa_id: str, name: str) -> None:
        self._emulator = emulator
        self.wa_id = wa_id
        self.name = name
        self.last_posted: bytes | None = None
        """Raw body of the last webhook posted for this person (to replay it)."""
        self._cursor = 0

    def __repr__(self) -> str:
        return f"FakeWhatsAppUser(wa_id={self.wa_id!r}, name={self.name!r})"

    @property
    def last_inbound_at(self) -> float | None:
        """Unix time of this person's last message (opens the 24-hour window); settable."""
        return self._emulator._last_inbound.get(self.wa_id)

    @last_inbound_at.setter
    def last_inbound_at(self, value: float | None) -> None:
        if value is None:
            self._emulator._last_inbound.pop(self.wa_id, None)
        else:
            self._emulator._last_inbound[self.wa_id] = value

    # ------------------------------------------------------------------ writing

    async def send(self, text: str) -> int:
        """The person writes `text`; returns the HTTP status the bot answered."""
        return await self._post("text", {"body": text})

    async def tap(self, label: str, message: SentMessage | None = None) -> int:
        """Tap a reply button or choose a list row titled `label`.

        Default message: the latest one to this person with reply buttons or list rows.
        """
        message = message or self._latest(lambda sent: bool(sent.buttons or sent.rows))
        if label in message.buttons:
            reply_id = message.button_ids[message.buttons.index(label)]
            return await self.tap_id(reply_id, message, "button_reply", title=label)
        if label in message.rows:
            reply_id = message.row_ids[message.rows.index(label)]
            return await self.tap_id(reply_id, message, "list_reply", title=label)
        raise AssertionError(
            f"label {label!r} matches no button or row of message {message.wamid} "
            f"({message.text!r}); buttons: {message.buttons}, rows: {message.rows}"
        )

    async def tap_id(
        self,
        reply_id: str,
        message: SentMessage | None = None,
        kind: str = "button_reply",
        *,
        title: str | None = None,
    ) -> int:
        """Send an interactive reply with an arbitrary id (a forged or outdated tap).

        The title (and a row's description) come from the message when the id is one of its
        buttons or rows, else `title` or the id itself.
        """
        if kind not in ("button_reply", "list_reply"):
            raise ValueError("kind is 'button_reply' or 'list_reply'")
        message = message or self._latest(lambda sent: bool(sent.buttons or sent.rows))
        reply: JSONDict = {"id": reply_id, "title": title if title is not None else reply_id}
        if kind == "button_reply" and title is None and reply_id in message.button_ids:
            reply["title"] = message.buttons[message.button_ids.index(reply_id)]
        if kind == "list_reply":
            for row in message.list_rows():
                if row.get("id") == reply_id:
                    reply["title"] = title if title is not None else row.get("title", reply_id)
                    if row.get("description"):
                        reply["description"] = row["description"]
                    break
        return await self._post(
            "interactive", {"type": kind, kind: reply}, context=self._context(message)
        )

    async def tap_template(
        self, label: str | None = None, message: SentMessage | None = None
    ) -> int:
        """Tap a quick-reply button of a template message (default: the latest one).

        `label` is the button text; it may be left out when the template has one button.
        """
        message = message or self._latest(lambda sent: bool(self._quick_replies(sent)))
        options = self._quick_replies(message)
        if label is None:
            if len(options) != 1:
                raise AssertionError(
                    f"template {message.template!r} has quick replies {[t for t, _ in options]}; "
                    "say which label to tap"
                )
            text, payload = options[0]
        else:
            matches = [(text, payload) for text, payload in options if text == label]
            if not matches:
                raise AssertionError(
                    f"label {label!r} matches no quick reply of template {message.template!r}; "
                    f"quick replies: {[text for text, _ in options]}"
                )
            text, payload = matches[0]
        return await self._post(
            "button", {"payload": payload, "text": text}, context=self._context(message)
        )

    async def send_location(
        self,
        latitude: float,
        longitude: float,
        name: str | None = None,
        address: str | None = None,
    ) -> int:
        """The person shares a place (📎 → Location)."""
        location: JSONDict = {"latitude": latitude, "longitude": longitude}
        if name is not None:
            location["name"] = name
        if address is not None:
            location["address"] = address
        return await self._post("location", location)

    async def send_reaction(self, emoji: str, message: SentMessage | None = None) -> int:
        """The person reacts to a message (default: the latest one they received)."""
        message = message or self._latest(lambda sent: True)
        return await self._post("reaction", {"message_id": message.wamid, "emoji": emoji})

    async def send_sticker(self) -> int:
        content = b"RIFF\x1a\x00\x00\x00WEBPVP8 " + bytes(16)
        return await self._post(
            "sticker", {**self._media(content, "image/webp"), "animated": False}
        )

    async def send_voice(self) -> int:
        """A voice note: an ``audio`` message with ``voice: true``."""
        content = b"OggS\x00\x02" + bytes(58)
        media = self._media(content, "audio/ogg; codecs=opus")
        return await self._post("audio", {**media, "voice": True})

    async def send_image(self, caption: str | None = None) -> int:
        content = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(32) + b"\xff\xd9"
        image = self._media(content, "image/jpeg")
        if caption is not None:
            image["caption"] = caption
        return await self._post("image", image)

    async def send_unsupported(self, kind: str = "unknown") -> int:
        """A message WhatsApp cannot hand over (an edit, a poll...): type ``unsupported``.

        The errors array is worded like Meta's unsupported-message webhook reference.
        """
        return await self._post(
            "unsupported",
            {"type": kind},
            errors=[
                {
                    "code": 131051,
                    "title": "Message type unknown",
                    "message": "Message type unknown",
                    "error_data": {"details": "Message type is currently not supported."},
                }
            ],
        )

    # ------------------------------------------------------------------ reading

    @property
    def inbox(self) -> list[SentMessage]:
        """Messages the person sees (accepted, not failed), oldest first."""
        return self._emulator.messages_to(self.wa_id)

    async def next_message(self, timeout: float = 5.0) -> SentMessage:  # noqa: ASYNC109
        """The first message to this person that no earlier next_message call returned."""

        def new_message() -> SentMessage | None:
            inbox = self.inbox
            return inbox[self._cursor] if len(inbox) > self._cursor else None

        try:
            message = await self._emulator.wait_until(new_message, timeout)
        except AssertionError:
            raise AssertionError(
                f"no new message for {self!r} within {timeout}s (already read: {self._cursor})"
                f"\n{self._emulator.describe(self.wa_id)}"
            ) from None
        self._cursor += 1
        return message

    async def wait_for(
        self,
        predicate: Callable[[SentMessage], bool],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> SentMessage:
        """The most recent message to this person satisfying `predicate`."""

        def match() -> SentMessage | None:
            candidates = [message for message in self.inbox if predicate(message)]
            return candidates[-1] if candidates else None

        try:
            return await self._emulator.wait_until(match, timeout)
        except AssertionError:
            raise AssertionError(
                f"no message for {self!r} matched within {timeout}s\n"
                f"{self._emulator.describe(self.wa_id)}"
            ) from None

    # ------------------------------------------------------------------ helpers

    async def _post(
        self,
        kind: str,
        content: JSONDict,
        *,
        context: JSONDict | None = None,
        errors: list[JSONDict] | None = None,
    ) -> int:
        message: JSONDict = {}
        if context is not None:
            message["context"] = context
        message.update(
            {
                "from": self.wa_id,
                "id": new_wamid(self.wa_id, inbound=True),
                "timestamp": str(int(self._emulator.wall_clock())),
                "type": kind,
            }
        )
        if errors is not None:
            message["errors"] = errors
        message[kind] = content
        return await self._emulator._post_person_message(self, message)

    def _context(self, message: SentMessage) -> JSONDict:
        return {"from": self._emulator.display_phone_number, "id": message.wamid}

    def _media(self, content: bytes, mime_type: str) -> JSONDict:
        media_id = self._emulator.store_media(content, mime_type.split(";")[0])
        digest = base64.b64encode(hashlib.sha256(content).digest()).decode()
        return {"mime_type": mime_type, "sha256": digest, "id": media_id}

    def _quick_replies(self, message: SentMessage) -> list[tuple[str, str]]:
        """(text, payload) of each quick-reply button of a template message."""
        if not message.is_template:
            return []
        language = _dict(_dict(message.body.get("template")).get("language")).get("code")
        template = self._emulator.templates.get((message.template or "", str(language)))
        labels = template.buttons if template else []
        payloads = message.quick_replies
        options = [(label, payloads.get(index, label)) for index, label in enumerate(labels)]
        options += [
            (payload, payload) for index, payload in payloads.items() if index >= len(labels)
        ]
        return options

    def _latest(self, wanted: Callable[[SentMessage], bool]) -> SentMessage:
        for message in reversed(self.inbox):
            if wanted(message):
                return message
        raise AssertionError(
            f"no suitable message to {self!r}\n{self._emulator.describe(self.wa_id)}"
        )


# ---------------------------------------------------------------------- validation


def _check_text(body: JSONDict) -> None:
    text = body.get("text")
    content = text.get("body") if isinstance(text, dict) else None
    if not isinstance(content, str) or not content:
        raise param_error("The parameter text['body'] is required.")
    if units(content) > MAX_TEXT_LENGTH:
        raise param_error(f"Param text['body'] must be at most {MAX_TEXT_LENGTH} characters long.")


def _check_length(value: Any, what: str, minimum: int, maximum: int) -> str:
    text = value if isinstance(value, str) else ""
    if not minimum <= units(text) <= maximum:
        bounds = (
            f"Min length: {minimum}, Max length: {maximum}"
            if minimum
            else (f"Max length: {maximum}")
        )
        raise invalid(f"{what} length invalid. {bounds}")
    return text


def _check_interactive(raw: Any) -> None:
    if not isinstance(raw, dict):
        raise param_error("The parameter interactive is required.")
    kind = raw.get("type")
    if kind not in ("button", "list"):
        raise invalid(
            f"Interactive type {kind!r} is not emulated (button and list are)"
            if isinstance(kind, str)
            else "The parameter interactive['type'] is required."
        )
    body_limit = MAX_BUTTON_BODY_LENGTH if kind == "button" else MAX_LIST_BODY_LENGTH
    _check_length(_dict(raw.get("body")).get("text"), "Body text", 1, body_limit)
    if "footer" in raw:
        _check_length(_dict(raw.get("footer")).get("text"), "Footer text", 1, MAX_FOOTER_LENGTH)
    header = raw.get("header")
    if header is not None:
        header = _dict(header)
        if kind == "list" and header.get("type") != "text":
            raise invalid("Header type invalid. List messages support a text header only")
        if header.get("type") == "text":
            _check_length(header.get("text"), "Header text", 1, MAX_HEADER_LENGTH)
    action = raw.get("action")
    if not isinstance(action, dict):
        raise param_error("The parameter interactive['action'] is required.")
    if kind == "button":
        _check_buttons(action)
    else:
        _check_list(action)


def _check_buttons(action: JSONDict) -> None:
    buttons = action.get("buttons")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= MAX_BUTTONS:
        count = len(buttons) if isinstance(buttons, list) else 0
        raise invalid(f"Buttons count invalid. Min count: 1, Max count: {MAX_BUTTONS}, got {count}")
    titles: list[str] = []
    ids: list[str] = []
    for button in buttons:
        button = _dict(button)
        if button.get("type") != "reply" or not isinstance(button.get("reply"), dict):
            raise invalid("Button type invalid. Reply buttons must be of type reply")
        reply = button["reply"]
        titles.append(_check_length(reply.get("title"), "Button title", 1, MAX_BUTTON_TITLE_LENGTH))
        ids.append(_check_length(reply.get("id"), "Button id", 1, MAX_BUTTON_ID_LENGTH))
    _check_unique(titles, "Button title")
    _check_unique(ids, "Button id")


def _check_list(action: JSONDict) -> None:
    _check_length(action.get("button"), "Button text", 1, MAX_LIST_BUTTON_LENGTH)
    sections = action.get("sections")
    if not isinstance(sections, list) or not sections:
        raise invalid("Section count invalid. Min count: 1")
    if len(sections) > MAX_SECTIONS:
        raise invalid(f"Total section count exceed max allowed count: {MAX_SECTIONS}")
    rows = [row for section in sections for row in _list(_dict(section).get("rows"))]
    if len(rows) > MAX_ROWS:
        raise invalid(f"Total row count exceed max allowed count: {MAX_ROWS}")
    for section in sections:
        section = _dict(section)
        if not _list(section.get("rows")):
            raise invalid("Each section must contain at least one row")
        title = section.get("title")
        if title is None and len(sections) > 1:
            raise invalid("Section title is required when there are multiple sections")
        if title is not None:
            _check_length(title, "Section title", 1, MAX_SECTION_TITLE_LENGTH)
    ids: list[str] = []
    for row in rows:
        row = _dict(row)
        _check_length(row.get("title"), "Row title", 1, MAX_ROW_TITLE_LENGTH)
        ids.append(_check_length(row.get("id"), "Row id", 1, MAX_ROW_ID_LENGTH))
        if "description" in row:
            _check_length(row.get("description"), "Row description", 0, MAX_ROW_DESCRIPTION_LENGTH)
    _check_unique(ids, "Row id")


def _check_unique(values: list[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise invalid(f"Duplicate {what.lower()}: {what} must be unique, got {value!r} twice")
        seen.add(value)


def _check_template_button(component: JSONDict, template: Template) -> None:
    if component.get("sub_type") != "quick_reply":
        return
    index = _int(component.get("index"))
    if index is None or index < 0 or (template.buttons and index >= len(template.buttons)):
        raise invalid(f"buttons: Button at index {component.get('index')} does not exist")
    parameters = _list(component.get("parameters"))
    if not parameters or not all(
        _dict(parameter).get("type") == "payload"
        and isinstance(_dict(parameter).get("payload"), str)
        for parameter in parameters
    ):
        raise GraphError(
            131008,
            details=f"buttons: Button at index {index} of type QuickReply requires a "
            "payload parameter",
        )


def _parameter_text(parameter: Any) -> str:
    parameter = _dict(parameter)
    kind = parameter.get("type")
    if kind == "text":
        return str(parameter.get("text", ""))
    value = _dict(parameter.get(str(kind)))
    return str(value.get("fallback_value", parameter.get("text", "")))


def _error_response(error: GraphError) -> web.Response:
    headers = (
        {"WWW-Authenticate": 'OAuth "Facebook Platform" "invalid_token"'}
        if (error.code == 190)
        else None
    )
    return web.json_response(error.payload(), status=error.status, headers=headers)


def _unknown_path(path: str) -> GraphError:
    tail = "/" + path.strip("/").split("/", 2)[-1]
    return GraphError(
        2500,
        title=f"Unknown path components: {tail}",
        status=404,
        whatsapp=False,
        prefixed=False,
    )


def _unsupported_request(method: str, node: str) -> GraphError:
    return GraphError(
        100,
        title=f"Unsupported {method.lower()} request. Object with ID '{node}' does not exist, "
        "cannot be loaded due to missing permissions, or does not support this operation. "
        "Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api",
        error_type="GraphMethodException",
        subcode=33,
        whatsapp=False,
        prefixed=False,
    )


def _dict(value: Any) -> JSONDict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None

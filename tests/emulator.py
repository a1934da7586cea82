"""An in-process fake of the Telegram Bot API server, for tests.

`BotApiEmulator` is a small aiohttp server on 127.0.0.1 that speaks the Bot API wire protocol,
so the real python-telegram-bot HTTP stack talks to it exactly as it would talk to Telegram::

    emulator = BotApiEmulator()
    await emulator.start()
    application = (
        ApplicationBuilder()
        .token("123456:TEST")
        .base_url(f"{emulator.url}/bot")
        .base_file_url(f"{emulator.url}/file/bot")
        .build()
    )
    amina = emulator.resident(111)
    amina.send("/start")
    welcome = await amina.next_message()
    amina.tap("Oui", welcome)
    ...
    await emulator.stop()

What it does:

* records every request (`calls`, `calls_to`) with its decoded parameters and uploaded files;
* keeps, per chat, the messages the bot sent with later edits and deletions applied (`messages`);
* feeds updates to the bot through `getUpdates` long polling (`push_update`, `FakeUser`,
  `FakeGroup`), with Telegram's offset/confirmation semantics, or hands them over for a webhook
  (`take_update`);
* rejects invalid requests the way Telegram does (empty or too long text, unknown chat, identical
  edit, bad callback data, broken HTML, ...), with Telegram's wording and HTTP status;
* lets a test inject failures (`fail`, `block`, `reject_token`) and slowness (`response_delay`);
* on demand, enforces Telegram's flood limits with token buckets (`enforce_limits`), answering
  429 with a retry_after like Telegram, and measures how fast the bot sent (`received`,
  `max_rate`, `delivered_texts`);
* optionally checks every call against a machine-readable copy of the Bot API reference
  (`spec_violations`).

Deliberate simplifications: one bot per emulator, no inline mode or inline messages, no business
connections, no file downloads, no flood limits unless asked for (`enforce_limits`, or `fail`
for a single 429). Markdown parse modes are approximated (escapes and emphasis markers removed),
only HTML is validated.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import html
import itertools
import json
import logging
import math
import mimetypes
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

logger = logging.getLogger(__name__)

JSONDict = dict[str, Any]
UploadedFile = tuple[str, bytes]
"""(filename, content) of a file uploaded with multipart/form-data."""

T = TypeVar("T")

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_INLINE_BUTTONS = 100
LONG_POLL_CAP = 1.0
"""Longest wait of a getUpdates long poll, whatever timeout the bot asks for (keeps tests fast)."""

FIRST_UPDATE_ID = 100_001

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
POLLING_CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
BLOCKED_BY_USER = "Forbidden: bot was blocked by the user"
KICKED_FROM_GROUP = "Forbidden: bot was kicked from the supergroup chat"
QUERY_INVALID = "query is too old and response timeout expired or query ID is invalid"

# Update kinds Telegram leaves out when the bot never asked for a specific list.
DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)

# Methods that `response_delay` slows down by default: the ones that act on a chat.
SLOW_METHODS = frozenset(
    {
        "sendMessage",
        "sendDocument",
        "sendPhoto",
        "sendChatAction",
        "editMessageText",
        "editMessageCaption",
        "editMessageReplyMarkup",
        "deleteMessage",
        "answerCallbackQuery",
    }
)

# Methods that put a message into a chat or change one: the ones Telegram's flood limits count
# (see `BotApiEmulator.enforce_limits`). copyMessage and forwardMessage are listed for
# completeness; the emulator answers them 404.
FLOOD_LIMITED_METHODS = frozenset(
    {
        "sendMessage",
        "sendDocument",
        "sendPhoto",
        "editMessageText",
        "editMessageCaption",
        "editMessageReplyMarkup",
        "copyMessage",
        "forwardMessage",
    }
)

_EPSILON = 1e-9
"""Tolerance on token counts and waits, so float rounding never costs a whole second."""

# Parameters whose Bot API type is plain "String". Form-encoded requests carry them unquoted, so
# they must never be JSON-decoded: a text "42" stays "42", a text "true" stays "true".
STRING_PARAMETERS = frozenset(
    {
        "action",
        "address",
        "bio",
        "business_connection_id",
        "callback_query_id",
        "caption",
        "currency",
        "custom_emoji_id",
        "custom_title",
        "description",
        "emoji",
        "explanation",
        "explanation_parse_mode",
        "file_id",
        "first_name",
        "game_short_name",
        "inline_message_id",
        "inline_query_id",
        "invite_link",
        "ip_address",
        "language_code",
        "last_name",
        "message_effect_id",
        "name",
        "next_offset",
        "parse_mode",
        "payload",
        "performer",
        "phone_number",
        "question",
        "question_parse_mode",
        "secret_token",
        "short_description",
        "start_parameter",
        "text",
        "title",
        "type",
        "url",
        "username",
        "vcard",
    }
)

INLINE_BUTTON_ACTIONS = frozenset(
    {
        "url",
        "callback_data",
        "web_app",
        "login_url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "copy_text",
        "callback_game",
        "pay",
    }
)

IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"RIFF")

HTML_TAGS = frozenset(
    {
        "a",
        "b",
        "blockquote",
        "code",
        "del",
        "em",
        "i",
        "ins",
        "pre",
        "s",
        "span",
        "strike",
        "strong",
        "tg-emoji",
        "tg-spoiler",
        "tg-time",
        "u",
    }
)
_HTML_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]+|#x[0-9a-fA-F]+);")
_HTML_TAG_NAME = re.compile(r"[a-zA-Z0-9-]*")
_MARKDOWN_MARKUP = re.compile(r"\\(.)|[*_~|`]")
_COMMAND = re.compile(r"/\S+")


class ApiError(Exception):
    """A Bot API error answer: ``{"ok": false, "error_code": ..., "description": ...}``."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def payload(self) -> JSONDict:
        body: JSONDict = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(reason: str) -> ApiError:
    return ApiError(400, f"Bad Request: {reason}")


@dataclass
class Button:
    """One inline keyboard button of a message the bot sent."""

    text: str
    callback_data: str | None = None
    url: str | None = None


@dataclass
class SentMessage:
    """A message the bot sent, as it currently looks in the chat (edits applied).

    `text` and `caption` are exactly what the bot sent (markup included); `plain_text` is what
    the user reads.
    """

    message_id: int
    chat_id: int
    text: str | None = None
    caption: str | None = None
    buttons: list[list[Button]] = field(default_factory=list)
    document: UploadedFile | None = None
    photo: bytes | None = field(default=None, repr=False)
    parse_mode: str | None = None
    edited: int = 0
    deleted: bool = False
    entities: list[JSONDict] | None = field(default=None, repr=False)
    reply_markup: JSONDict | None = field(default=None, repr=False)
    """Markup as sent: inline keyboard, reply keyboard, keyboard removal or force reply."""
    file_id: str | None = field(default=None, repr=False)
    """Identifier the emulator gave to the document or photo (the bot may send it again)."""
    date: int = field(default=0, repr=False)
    edit_date: int | None = field(default=None, repr=False)

    @property
    def plain_text(self) -> str | None:
        """Text (or caption) as displayed: markup removed, HTML entities decoded."""
        source = self.text if self.text is not None else self.caption
        return None if source is None else visible_text(source, self.parse_mode)

    def labels(self) -> list[str]:
        """Labels of the inline buttons, row after row."""
        return [button.text for row in self.buttons for button in row]

    def button(self, label: str) -> Button:
        """The button labelled `label`, or else the only one whose label contains it."""
        flat = [button for row in self.buttons for button in row]
        exact = [button for button in flat if button.text == label]
        if len(exact) == 1:
            return exact[0]
        partial = [button for button in flat if label in button.text]
        if not exact and len(partial) == 1:
            return partial[0]
        problem = "is ambiguous" if exact or partial else "matches no button"
        raise AssertionError(
            f"label {label!r} {problem} in message {self.message_id} "
            f"({self.plain_text!r}); buttons: {self.labels()}"
        )


@dataclass
class Call:
    """One request the bot made, with decoded parameters."""

    method: str
    params: dict[str, Any]
    files: dict[str, UploadedFile]
    at: float
    """The emulator's clock (time.monotonic() unless replaced) when the request was read."""
    token: str
    response: JSONDict | None = None
    """The JSON the emulator answered, once answered."""

    @property
    def ok(self) -> bool:
        return bool(self.response and self.response.get("ok"))


@dataclass
class _InjectedFailure:
    method: str
    status: int
    description: str
    retry_after: int | None
    remaining: int
    chat_id: int | None
    after: int = 0  # matching calls let through before the first failure


@dataclass
class _TokenBucket:
    """`rate` tokens per second, refilled continuously, holding at most `capacity`."""

    rate: float
    capacity: float
    tokens: float
    updated: float

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        self.updated = max(self.updated, now)

    def wait(self, now: float) -> float:
        """Seconds until a token is available (0 when one is)."""
        self.refill(now)
        missing = 1.0 - self.tokens
        return 0.0 if missing <= _EPSILON else missing / self.rate


_GLOBAL = "global"
"""Scope key of the bot-wide limit; chat scopes are keyed by chat id."""
_Scope = int | str


class _FloodLimits:
    """Telegram's flood limits: one bucket for the bot, one per chat, bans after a 429."""

    def __init__(
        self,
        *,
        global_per_second: float | None,
        per_chat_per_second: float | None,
        per_group_per_minute: float | None,
        retry_after: int | None,
        burst: float,
        now: float,
        window: bool = False,
    ) -> None:
        for name, rate in (
            ("global_per_second", global_per_second),
            ("per_chat_per_second", per_chat_per_second),
            ("per_group_per_minute", per_group_per_minute),
        ):
            if rate is not None and not rate > 0:
                raise ValueError(f"{name} must be positive (or None for no limit)")
        if not burst > 0:
            raise ValueError("burst must be positive")
        if retry_after is not None and retry_after < 1:
            raise ValueError("retry_after must be at least 1 second (or None to compute it)")
        self.private_rate = per_chat_per_second
        self.group_rate = None if per_group_per_minute is None else per_group_per_minute / 60
        self.retry_after = retry_after
        self.burst = burst
        self.buckets: dict[_Scope, _TokenBucket] = {}
        if global_per_second is not None:
            self.buckets[_GLOBAL] = self._bucket(global_per_second, now)
        self.banned_until: dict[_Scope, float] = {}
        # The bot-wide limit as a moving one-second window: at most `global_per_second` sends
        # in any second, however they bunch (stricter than the bucket, which lends a burst).
        self.window = window and global_per_second is not None
        self.most = int(global_per_second or 0)
        self.recent: collections.deque[float] = collections.deque()

    def _window_wait(self, now: float) -> float:
        while self.recent and self.recent[0] <= now - 1.0:
            self.recent.popleft()
        return self.recent[0] + 1.0 - now if len(self.recent) >= self.most else 0.0

    def _bucket(self, rate: float, now: float) -> _TokenBucket:
        capacity = max(1.0, rate * self.burst)
        return _TokenBucket(rate=rate, capacity=capacity, tokens=capacity, updated=now)

    def _scopes(self, chat_id: int | None, now: float) -> list[tuple[_Scope, _TokenBucket]]:
        scopes: list[tuple[_Scope, _TokenBucket]] = []
        if _GLOBAL in self.buckets:
            scopes.append((_GLOBAL, self.buckets[_GLOBAL]))
        if chat_id is not None:
            rate = self.group_rate if chat_id < 0 else self.private_rate
            if rate is not None:
                bucket = self.buckets.get(chat_id)
                if bucket is None:
                    bucket = self.buckets[chat_id] = self._bucket(rate, now)
                scopes.append((chat_id, bucket))
        return scopes

    def take(self, chat_id: int | None, now: float) -> int | None:
        """Take a token from every bucket the send counts against, or refuse it.

        Returns None when the send may go ahead, else the retry_after to announce; a refused
        send takes no token, and bans each scope that ran dry until the announced time.
        """
        scopes = self._scopes(chat_id, now)
        waits: dict[_Scope, float] = {}
        newly_dry: list[_Scope] = []
        for scope, bucket in scopes:
            banned = self.banned_until.get(scope, now) - now
            if banned > _EPSILON:
                waits[scope] = banned
                continue
            wait = self._window_wait(now) if scope == _GLOBAL and self.window else bucket.wait(now)
            if wait > _EPSILON:
                waits[scope] = wait
                newly_dry.append(scope)
        if not waits:
            for _, bucket in scopes:
                bucket.tokens -= 1.0
            if self.window:
                self.recent.append(now)
            return None
        announced = self.retry_after
        if announced is None:
            announced = max(1, math.ceil(max(waits.values()) - _EPSILON))
        for scope in newly_dry:
            self.banned_until[scope] = now + announced
        return announced

    def give_back(self, chat_id: int | None, now: float) -> None:
        """Return the tokens of a send that failed for another reason (nothing delivered)."""
        for _, bucket in self._scopes(chat_id, now):
            bucket.tokens = min(bucket.capacity, bucket.tokens + 1.0)
        if self.window and self.recent:
            self.recent.pop()


def utf16_length(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units: an emoji beyond the BMP counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def visible_text(text: str, parse_mode: str | None) -> str:
    """Return `text` as the user sees it once Telegram has applied `parse_mode`."""
    mode = (parse_mode or "").lower()
    if mode == "html":
        text = html_to_text(text)
    elif mode in ("markdown", "markdownv2"):
        text = _MARKDOWN_MARKUP.sub(lambda match: match.group(1) or "", text)
    return text.strip()


def html_to_text(source: str) -> str:
    """Strip the tags of a Telegram-HTML text, rejecting what Telegram rejects.

    Raises ApiError with Telegram's "can't parse entities" wording on unsupported or unbalanced
    tags (a bare "<" included); byte offsets are counted in UTF-8 like Telegram does.
    """
    output: list[str] = []
    open_tags: list[str] = []
    position = 0
    while position < len(source):
        char = source[position]
        if char == "&":
            entity = _HTML_ENTITY.match(source, position)
            if entity:
                output.append(html.unescape(entity.group(0)))
                position = entity.end()
            else:
                output.append(char)
                position += 1
            continue
        if char != "<":
            output.append(char)
            position += 1
            continue
        offset = len(source[:position].encode())
        closing = source.startswith("</", position)
        end = source.find(">", position)
        if end == -1:
            kind = "end" if closing else "start"
            raise _entities_error(f"Unclosed {kind} tag at byte offset {offset}")
        name_match = _HTML_TAG_NAME.match(source, position + (2 if closing else 1))
        name = name_match.group(0).lower() if name_match else ""
        if closing:
            if not open_tags:
                raise _entities_error(f"Unexpected end tag at byte offset {offset}")
            if name != open_tags[-1]:
                raise _entities_error(
                    f'Unmatched end tag at byte offset {offset}, expected "</{open_tags[-1]}>", '
                    f'found "</{name}>"'
                )
            open_tags.pop()
        elif name in HTML_TAGS:
            open_tags.append(name)
        else:
            raise _entities_error(f'Unsupported start tag "{name}" at byte offset {offset}')
        position = end + 1
    if open_tags:
        raise _entities_error(f'Can\'t find end tag corresponding to start tag "{open_tags[-1]}"')
    return "".join(output)


def _entities_error(reason: str) -> ApiError:
    return bad_request(f"can't parse entities: {reason}")


def decode_form_value(name: str, raw: str) -> Any:
    """Decode one form field the way the Bot API does.

    Clients JSON-encode every value except plain strings, so numbers, booleans, arrays and
    objects are decoded, while String parameters and anything that is not valid JSON stay text.
    """
    if name in STRING_PARAMETERS:
        return raw
    try:
        decoded = json.loads(raw)
    except ValueError:
        return raw
    return decoded if isinstance(decoded, int | float | list | dict) else raw


async def read_parameters(request: web.Request) -> tuple[JSONDict, dict[str, UploadedFile]]:
    """Parameters and uploaded files of a Bot API request: query string plus body.

    The body may be application/x-www-form-urlencoded, multipart/form-data or application/json;
    a JSON body that is not an object raises ApiError (400).
    """
    params: JSONDict = {key: decode_form_value(key, value) for key, value in request.query.items()}
    files: dict[str, UploadedFile] = {}
    if request.content_type == "application/json":
        raw = await request.read()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise bad_request("can't parse JSON object")
        params.update(body)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                files[key] = (value.filename, value.file.read())
            else:
                text = value if isinstance(value, str) else bytes(value).decode()
                params[key] = decode_form_value(key, text)
    return params, files


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def text_message(message_id: int, chat: JSONDict, sender: JSONDict, text: str) -> JSONDict:
    """A Message object as Telegram delivers it, with a bot_command entity for "/command"."""
    message: JSONDict = {
        "message_id": message_id,
        "from": sender,
        "chat": chat,
        "date": int(time.time()),
        "text": text,
    }
    command = _COMMAND.match(text)
    if command:
        length = _utf16_length(command.group(0))
        message["entities"] = [{"offset": 0, "length": length, "type": "bot_command"}]
    return message


class SpecChecker:
    """Checks calls against a Bot API description (the JSON format of telegram-bot-api-spec).

    Expected layout: ``{"methods": {"sendMessage": {"fields": [{"name": ..., "required": ...,
    "types": [...]}]}}, "types": {...}}``.
    """

    def __init__(self, path: Path) -> None:
        spec = json.loads(path.read_text(encoding="utf-8"))
        self.methods: dict[str, tuple[str, dict[str, bool]]] = {
            name.lower(): (
                name,
                {item["name"]: bool(item.get("required")) for item in method.get("fields", [])},
            )
            for name, method in spec["methods"].items()
        }
        self._verdicts: dict[tuple[str, frozenset[str]], list[str]] = {}

    def check(self, method: str, params: Mapping[str, Any], files: Mapping[str, Any]) -> list[str]:
        """Readable problems with one call; empty when it matches the spec.

        Only field names matter, so verdicts are cached per (method, names present).
        """
        attached = (
            {
                value.removeprefix("attach://")
                for value in params.values()
                if isinstance(value, str) and value.startswith("attach://")
            }
            if files
            else set()
        )
        present = frozenset(set(params) | (set(files) - attached))
        key = (method, present)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._verdicts[key] = self._problems(method, present)
        return list(verdict)

    def _problems(self, method: str, present: frozenset[str]) -> list[str]:
        entry = self.methods.get(method.lower())
        if entry is None:
            return [f"{method}: no such method in the Bot API"]
        name, fields = entry
        problems = [
            f"{name}: required field {field_name!r} is missing"
            for field_name, required in fields.items()
            if required and field_name not in present
        ]
        problems += [
            f"{name}: unknown field {field_name!r}"
            for field_name in sorted(present)
            if field_name not in fields
        ]
        return problems


Handler = Callable[[JSONDict, dict[str, UploadedFile]], Awaitable[Any]]


class BotApiEmulator:
    """Fake Telegram Bot API server for one bot. See the module docstring."""

    def __init__(
        self,
        *,
        bot_id: int = 7000000001,
        bot_username: str = "coupdepouce_test_bot",
        bot_first_name: str = "Coup de pouce",
        spec_path: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bot_id = bot_id
        self.bot_username = bot_username
        self.bot_first_name = bot_first_name
        self.calls: list[Call] = []
        self.spec_violations: list[str] = []
        self.flood_refusals: list[Call] = []
        """Calls refused with 429 by `enforce_limits` (they are in `calls` too)."""
        self.clock: Callable[[], float] = clock
        """Time source of `Call.at` and of the flood limits, in seconds. A test may swap in a
        fake clock to step time by hand; it must never go backwards."""
        self.response_delay: float = 0.0
        """Seconds to wait before answering `slow_methods`. The request is processed first, so
        a client that times out still finds its message sent, as with the real Telegram."""
        self.slow_methods: frozenset[str] = SLOW_METHODS
        """The methods `response_delay` slows down (canonical names, e.g. "getUpdates"): those
        acting on a chat unless changed (a benchmark may delay every round trip)."""
        self.webhook_url: str | None = None
        self.webhook_secret: str | None = None
        self.webhook_allowed_updates: list[str] | None = None

        self._spec = SpecChecker(spec_path) if spec_path is not None else None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._closing = False
        self._changed = asyncio.Event()

        self._updates: list[JSONDict] = []
        self._next_update_id = FIRST_UPDATE_ID
        self._allowed_updates: frozenset[str] | None = None
        self._poll_generation = 0

        self._chats: dict[int, JSONDict] = {}
        self._usernames: dict[str, int] = {}
        self._users: dict[int, FakeUser] = {}
        self._groups: dict[int, FakeGroup] = {}
        self._blocked: set[int] = set()
        self._rejected_tokens: set[str] = set()
        self._failures: list[_InjectedFailure] = []
        self._limits: _FloodLimits | None = None
        self._deliveries: list[tuple[int, str]] = []

        self._last_message_id: dict[int, int] = {}
        self._sent: dict[int, list[SentMessage]] = {}
        self._files: dict[str, UploadedFile] = {}
        self._file_ids = itertools.count(1)
        self._callback_query_ids: set[str] = set()
        self._commands: dict[tuple[str, str], list[JSONDict]] = {}
        self._menu_buttons: dict[int | None, JSONDict] = {}

        self._handlers: dict[str, tuple[str, Handler]] = {
            name.lower(): (name, handler)
            for name, handler in {
                "getMe": self._get_me,
                "getUpdates": self._get_updates,
                "sendMessage": self._send_message,
                "editMessageText": self._edit_message_text,
                "editMessageReplyMarkup": self._edit_message_reply_markup,
                "editMessageCaption": self._edit_message_caption,
                "deleteMessage": self._delete_message,
                "answerCallbackQuery": self._answer_callback_query,
                "sendDocument": self._send_document,
                "sendPhoto": self._send_photo,
                "sendChatAction": self._send_chat_action,
                "setWebhook": self._set_webhook,
                "deleteWebhook": self._delete_webhook,
                "getWebhookInfo": self._get_webhook_info,
                "setMyCommands": self._set_my_commands,
                "deleteMyCommands": self._delete_my_commands,
                "getMyCommands": self._get_my_commands,
                "setChatMenuButton": self._set_chat_menu_button,
                "getChatMenuButton": self._get_chat_menu_button,
                "close": self._always_true,
                "logOut": self._always_true,
            }.items()
        }

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Serve on 127.0.0.1 on a free port."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api_request)
        app.router.add_route("*", "/{tail:.*}", self._handle_unknown_path)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=LONG_POLL_CAP)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._closing = False
        self._port = int(runner.addresses[0][1])
        logger.info("Bot API emulator listening on %s", self.url)

    async def stop(self) -> None:
        if self._runner is None:
            return
        self._closing = True
        self._notify()
        await self._runner.cleanup()
        self._runner = None
        self._port = None
        logger.info("Bot API emulator stopped")

    async def __aenter__(self) -> BotApiEmulator:
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
        """Root URL of the server, e.g. "http://127.0.0.1:38421"."""
        if self._port is None:
            raise RuntimeError("the emulator is not running; await start() first")
        return f"http://127.0.0.1:{self._port}"

    # ------------------------------------------------------------------ inspection

    def calls_to(self, method: str) -> list[Call]:
        """Calls to `method` (case-insensitive), in order."""
        wanted = method.lower()
        return [call for call in self.calls if call.method.lower() == wanted]

    def received(self, method: str | None = None) -> list[Call]:
        """Successful calls to FLOOD_LIMITED_METHODS (or to `method` only), in arrival order.

        Their `at` is the time the emulator read them, on `clock`.
        """
        wanted = None if method is None else method.lower()
        return [
            call
            for call in self.calls
            if call.method in FLOOD_LIMITED_METHODS
            and (wanted is None or call.method.lower() == wanted)
            and call.ok
        ]

    def max_rate(self, window: float = 1.0, chat_id: int | None = None) -> float:
        """Most successful sends seen in any `window` seconds (into `chat_id` if given), per second.

        Windows are half-open: sends exactly `window` apart never share one. Note that a token
        bucket of capacity C and rate r admits up to C + r * window sends in a window, so with
        `burst` = 1 s a bot using its whole allowance reaches up to twice the rate over 1 s.
        """
        if not window > 0:
            raise ValueError("window must be positive")
        times = sorted(
            call.at
            for call in self.received()
            if chat_id is None or _chat_id_of(call.params, self._usernames) == chat_id
        )
        most = 0
        end = 0
        for start, opened in enumerate(times):
            while end < len(times) and times[end] - opened < window:
                end += 1
            most = max(most, end - start)
        return most / window

    def delivered_texts(self) -> list[tuple[int, str]]:
        """(chat_id, text) of every message delivered, in delivery order, duplicates kept.

        The text is as the bot sent it (markup included), or the caption of a document or photo
        ("" when it has none). Edits deliver nothing new and do not appear.
        """
        return list(self._deliveries)

    def messages(self, chat_id: int) -> list[SentMessage]:
        """Messages the bot sent into the chat, oldest first, edits applied (deleted ones kept)."""
        return list(self._sent.get(chat_id, []))

    def my_commands(self, scope: JSONDict | None = None, language_code: str = "") -> list[JSONDict]:
        """Commands set with setMyCommands for that scope and language."""
        return list(self._commands.get(_commands_key(scope, language_code), []))

    def chat_json(self, chat_id: int) -> JSONDict:
        """The Chat object of a known chat."""
        return dict(self._chats[chat_id])

    def message_json(self, message: SentMessage) -> JSONDict:
        """The Message object Telegram would deliver for a bot message in its current state."""
        body: JSONDict = {
            "message_id": message.message_id,
            "from": self._bot_user(),
            "chat": self.chat_json(message.chat_id),
            "date": message.date,
        }
        if message.edit_date is not None:
            body["edit_date"] = message.edit_date
        if message.text is not None:
            body["text"] = message.plain_text
        if message.document is not None and message.file_id is not None:
            filename, content = message.document
            body["document"] = {
                "file_id": message.file_id,
                "file_unique_id": f"unique-{message.file_id}",
                "file_name": filename,
                "mime_type": mimetypes.guess_type(filename)[0] or "application/octet-stream",
                "file_size": len(content),
            }
        if message.photo is not None and message.file_id is not None:
            body["photo"] = [
                {
                    "file_id": message.file_id,
                    "file_unique_id": f"unique-{message.file_id}",
                    "width": 512,
                    "height": 512,
                    "file_size": len(message.photo),
                }
            ]
        if message.caption is not None:
            body["caption"] = visible_text(message.caption, message.parse_mode)
        if message.reply_markup is not None and "inline_keyboard" in message.reply_markup:
            body["reply_markup"] = message.reply_markup
        return body

    def describe_chat(self, chat_id: int) -> str:
        """Human-readable summary of a chat, for assertion messages."""
        lines = [f"messages the bot sent to chat {chat_id}:"]
        for index, message in enumerate(self.messages(chat_id)):
            flags = " (deleted)" if message.deleted else ""
            flags += f" (edited {message.edited}x)" if message.edited else ""
            shown = message.plain_text if message.document is None else f"[{message.document[0]}]"
            lines.append(f"  #{index} id={message.message_id}{flags}: {shown!r} {message.labels()}")
        if len(lines) == 1:
            lines.append("  (none)")
        failed = [
            call
            for call in self.calls
            if not call.ok
            and call.response is not None
            and _chat_id_of(call.params, self._usernames) == chat_id
        ]
        for call in failed[-5:]:
            description = call.response.get("description") if call.response else None
            lines.append(f"  failed {call.method}: {description}")
        lines.append(f"  updates not yet confirmed by getUpdates: {self.pending_updates}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ updates and people

    def push_update(self, update: JSONDict) -> int:
        """Queue an update for getUpdates; returns its update_id (assigned when absent).

        Chats and users seen in the update become known, so the bot can write to them. A
        my_chat_member update for a private chat with status "kicked" blocks that chat ("member"
        unblocks it), like a user blocking or restarting the bot.
        """
        update = copy.deepcopy(update)
        update_id = update.setdefault("update_id", self._next_update_id)
        if not isinstance(update_id, int):
            raise TypeError(f"update_id must be an int, got {update_id!r}")
        self._next_update_id = max(self._next_update_id, update_id + 1)
        self._learn_from(update)
        self._updates.append(update)
        self._updates.sort(key=lambda queued: int(queued["update_id"]))
        self._notify()
        logger.debug("update %s queued: %s", update_id, sorted(set(update) - {"update_id"}))
        return update_id

    def take_update(self, update_id: int) -> JSONDict:
        """Remove a pending update from the getUpdates queue and return it.

        Useful in webhook mode: push (or `send`/`tap`), take, then post it to the bot's webhook.
        """
        for index, update in enumerate(self._updates):
            if update["update_id"] == update_id:
                del self._updates[index]
                self._notify()
                return copy.deepcopy(update)
        raise AssertionError(f"update {update_id} is not pending (fetched and confirmed already?)")

    @property
    def pending_updates(self) -> int:
        """Updates pushed but not yet confirmed by a later getUpdates offset."""
        return len(self._updates)

    async def wait_until_consumed(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until getUpdates confirmed every pushed update.

        Confirmed means fetched by the bot (a later getUpdates offset is past it), not handled.
        """
        if await self._settled(lambda: not self._updates, timeout) is None:
            hint = " (a webhook is set, so getUpdates fails)" if self.webhook_url else ""
            raise AssertionError(
                f"{self.pending_updates} update(s) still unconfirmed after {timeout}s{hint}; "
                f"getUpdates calls so far: {len(self.calls_to('getUpdates'))}"
            )

    def resident(
        self,
        user_id: int,
        *,
        first_name: str = "Amina",
        language_code: str | None = "fr",
        username: str | None = None,
    ) -> FakeUser:
        """A person in a private chat with the bot (same object when asked twice for one id)."""
        if user_id in self._users:
            return self._users[user_id]
        if user_id <= 0:
            raise ValueError("user ids are positive")
        user: JSONDict = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username is not None:
            user["username"] = username
        if language_code is not None:
            user["language_code"] = language_code
        self._learn_user(user)
        fake = FakeUser(self, user)
        self._users[user_id] = fake
        return fake

    def group(self, chat_id: int, *, title: str = "Conseil") -> FakeGroup:
        """A supergroup the bot is a member of (same object when asked twice for one id)."""
        if chat_id in self._groups:
            return self._groups[chat_id]
        if chat_id >= 0:
            raise ValueError("group chat ids are negative, e.g. -1001234567890")
        self._learn_chat({"id": chat_id, "type": "supergroup", "title": title})
        fake = FakeGroup(self, chat_id, title)
        self._groups[chat_id] = fake
        return fake

    def next_message_id(self, chat_id: int) -> int:
        """Reserve the next message id of a chat (bot and people share the sequence)."""
        message_id = self._last_message_id.get(chat_id, 0) + 1
        self._last_message_id[chat_id] = message_id
        return message_id

    async def wait_until(
        self,
        condition: Callable[[], T | None],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> T:
        """Wait until `condition()` returns something other than None or False; return that.

        The condition is evaluated again each time the emulator's state changes (a request was
        answered, an update pushed or confirmed). Raises AssertionError on timeout.
        """
        result = await self._settled(condition, timeout)
        if result is None:
            raise AssertionError(f"condition still unmet after {timeout}s")
        return result

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

    # ------------------------------------------------------------------ failure injection

    def fail(
        self,
        method: str,
        *,
        status: int,
        description: str,
        retry_after: int | None = None,
        times: int = 1,
        chat_id: int | None = None,
        after: int = 0,
    ) -> None:
        """Answer the next `times` calls to `method` (for `chat_id` only, if given) with an error,
        once `after` such calls went through (the second part of a long message, say).

        Give the description in Telegram's words, e.g. status=429,
        description="Too Many Requests: retry after 5", retry_after=5.
        """
        if status < 400 or times < 1 or after < 0:
            raise ValueError("status must be an HTTP error code and times at least 1")
        failure = _InjectedFailure(
            method.lower(), status, description, retry_after, times, chat_id, after
        )
        self._failures.append(failure)

    def enforce_limits(
        self,
        *,
        global_per_second: float | None = 30.0,
        per_chat_per_second: float | None = 1.0,
        per_group_per_minute: float | None = 20.0,
        retry_after: int | None = None,
        burst: float = 1.0,
        window: bool = False,
    ) -> None:
        """Refuse sends beyond Telegram's flood limits from now on, like Telegram does.

        Calls to FLOOD_LIMITED_METHODS count against a bot-wide token bucket
        (`global_per_second`) and one bucket per chat: `per_chat_per_second` for a private chat,
        `per_group_per_minute` for a group or channel (negative chat id). None lifts that limit.
        Buckets refill continuously on `clock` and hold `burst` seconds of their rate (at least
        one token); they start full.

        A send that finds a bucket empty is answered 429 "Too Many Requests: retry after N" with
        parameters.retry_after N, is not delivered, takes no token and lands in
        `flood_refusals`. N is `retry_after` if given, else the whole seconds until a token
        frees up (at least 1). Like Telegram, the scope whose bucket ran dry (the bot, or that
        chat) then stays refused until those N seconds have passed, however many tokens it has
        meanwhile. Sends refused for another reason (400, 403, ...) take no token either.

        With `window`, the bot-wide limit is a moving one-second window instead: at most
        `global_per_second` sends in any second, a burst lent by nothing.

        Calling it again replaces the limits and starts afresh (full buckets, no bans).
        """
        self._limits = _FloodLimits(
            global_per_second=global_per_second,
            per_chat_per_second=per_chat_per_second,
            per_group_per_minute=per_group_per_minute,
            retry_after=retry_after,
            burst=burst,
            now=self.clock(),
            window=window,
        )

    def lift_limits(self) -> None:
        """Stop enforcing flood limits (bans included); `flood_refusals` keeps its history."""
        self._limits = None

    def block(self, chat_id: int) -> None:
        """Every request aimed at the chat now fails with 403 (user blocked / bot kicked)."""
        self._blocked.add(chat_id)

    def unblock(self, chat_id: int) -> None:
        self._blocked.discard(chat_id)

    def reject_token(self, token: str) -> None:
        """Answer 401 Unauthorized to every request made with that token."""
        self._rejected_tokens.add(token)

    # ------------------------------------------------------------------ HTTP plumbing

    async def _handle_api_request(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        requested = request.match_info["method"]
        known = self._handlers.get(requested.lower())
        method = known[0] if known else requested
        unreadable: ApiError | None = None
        try:
            params, files = await read_parameters(request)
        except ApiError as error:
            params, files, unreadable = {}, {}, error
        call = Call(method, params, files, at=self.clock(), token=token)
        self.calls.append(call)
        if self._spec is not None and unreadable is None:
            self.spec_violations.extend(self._spec.check(method, params, files))
        try:
            if unreadable is not None:
                raise unreadable
            body: JSONDict = {"ok": True, "result": await self._dispatch(call, known)}
            status = 200
        except ApiError as error:
            body, status = error.payload(), error.status
        call.response = body
        logger.debug("%s %s -> %s", method, _abridged(params), status)
        self._notify()
        if method in self.slow_methods and self.response_delay > 0:
            await asyncio.sleep(self.response_delay)
        return web.json_response(body, status=status)

    async def _handle_unknown_path(self, request: web.Request) -> web.Response:
        logger.warning("request to unknown path %s", request.path)
        return web.json_response(ApiError(404, "Not Found").payload(), status=404)

    async def _dispatch(self, call: Call, known: tuple[str, Handler] | None) -> Any:
        if call.token in self._rejected_tokens:
            raise ApiError(401, "Unauthorized")
        if known is None:
            logger.warning("the emulator does not implement %s", call.method)
            raise ApiError(404, "Not Found")
        self._raise_injected_failure(call)
        limits = self._limits
        if limits is None or call.method not in FLOOD_LIMITED_METHODS:
            return await known[1](call.params, call.files)
        chat_id = _chat_id_of(call.params, self._usernames)
        retry_after = limits.take(chat_id, call.at)
        if retry_after is not None:
            self.flood_refusals.append(call)
            raise ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after)
        try:
            return await known[1](call.params, call.files)
        except ApiError:
            limits.give_back(chat_id, call.at)
            raise

    def _raise_injected_failure(self, call: Call) -> None:
        chat_id = _chat_id_of(call.params, self._usernames)
        for failure in self._failures:
            if failure.method != call.method.lower():
                continue
            if failure.chat_id is not None and failure.chat_id != chat_id:
                continue
            if failure.after > 0:
                failure.after -= 1
                continue
            failure.remaining -= 1
            if failure.remaining == 0:
                self._failures.remove(failure)
            raise ApiError(failure.status, failure.description, failure.retry_after)

    def _notify(self) -> None:
        """Wake everything waiting in wait_until."""
        self._changed.set()
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ known chats

    def _learn_from(self, node: Any, key: str = "") -> None:
        """Register the chats, users and message ids found anywhere in an update."""
        if isinstance(node, list):
            for item in node:
                self._learn_from(item, key)
            return
        if not isinstance(node, dict):
            return
        if key == "chat" and isinstance(node.get("id"), int) and "type" in node:
            self._learn_chat(node)
        elif key == "from" and isinstance(node.get("id"), int) and not node.get("is_bot"):
            self._learn_user(node)
        chat = node.get("chat")
        if isinstance(node.get("message_id"), int) and isinstance(chat, dict):
            chat_id = chat.get("id")
            if isinstance(chat_id, int):
                last = self._last_message_id.get(chat_id, 0)
                self._last_message_id[chat_id] = max(last, node["message_id"])
        if key == "callback_query" and isinstance(node.get("id"), str):
            self._callback_query_ids.add(node["id"])
        if key == "my_chat_member" and isinstance(chat, dict) and chat.get("type") == "private":
            status = (node.get("new_chat_member") or {}).get("status")
            if status == "kicked":
                self.block(chat["id"])
            elif status == "member":
                self.unblock(chat["id"])
        for child_key, child in node.items():
            self._learn_from(child, child_key)

    def _learn_chat(self, chat: JSONDict) -> None:
        known = {key: value for key, value in chat.items() if value is not None}
        self._chats[chat["id"]] = {**self._chats.get(chat["id"], {}), **known}
        if isinstance(chat.get("username"), str):
            self._usernames[chat["username"].lower()] = chat["id"]

    def _learn_user(self, user: JSONDict) -> None:
        chat: JSONDict = {"id": user["id"], "type": "private"}
        for key in ("first_name", "last_name", "username"):
            if user.get(key) is not None:
                chat[key] = user[key]
        self._learn_chat(chat)

    def _target_chat(self, params: JSONDict) -> int:
        """The known chat a request is aimed at; raises Telegram's error otherwise."""
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise bad_request("chat_id is empty")
        chat_id = _chat_id_of(params, self._usernames)
        if chat_id is None or chat_id not in self._chats:
            raise bad_request("chat not found")
        if chat_id in self._blocked:
            private = self._chats[chat_id].get("type") == "private"
            raise ApiError(403, BLOCKED_BY_USER if private else KICKED_FROM_GROUP)
        return chat_id

    def _bot_user(self) -> JSONDict:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    # ------------------------------------------------------------------ message helpers

    def _store(self, message: SentMessage) -> JSONDict:
        self._sent.setdefault(message.chat_id, []).append(message)
        shown = message.text if message.text is not None else message.caption
        self._deliveries.append((message.chat_id, shown or ""))
        return self.message_json(message)

    def _find_message(self, params: JSONDict, missing: str) -> SentMessage:
        if params.get("inline_message_id"):
            raise bad_request(f"{missing} (inline messages are not emulated)")
        chat_id = self._target_chat(params)
        message_id = _as_int(params.get("message_id"))
        if message_id is None:
            raise bad_request("message identifier is not specified")
        for message in self._sent.get(chat_id, []):
            if message.message_id == message_id and not message.deleted:
                return message
        raise bad_request(missing)

    def _media(
        self, kind: str, params: JSONDict, files: dict[str, UploadedFile]
    ) -> tuple[str, UploadedFile]:
        """The (file_id, file) sent as `kind`: upload, attach:// upload, known file_id or URL."""
        value = params.get(kind)
        if isinstance(value, str) and value in self._files:
            return value, self._files[value]
        if isinstance(value, str) and value.startswith("attach://"):
            upload = files.get(value.removeprefix("attach://"))
        elif kind in files:
            upload = files[kind]
        elif isinstance(value, str) and value.startswith(("http://", "https://")):
            # Telegram would download it; the emulator keeps the name only.
            return self._remember_file((value.rsplit("/", 1)[-1] or kind, b""))
        elif value:
            raise bad_request("wrong file identifier/HTTP URL specified")
        else:
            upload = None
        if upload is None:
            raise bad_request(f"there is no {kind} in the request")
        if not upload[1]:
            raise bad_request("file must be non-empty")
        return self._remember_file(upload)

    def _remember_file(self, upload: UploadedFile) -> tuple[str, UploadedFile]:
        file_id = f"EMU-FILE-{next(self._file_ids):05d}"
        self._files[file_id] = upload
        return file_id, upload

    # ------------------------------------------------------------------ methods

    async def _always_true(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        return True

    async def _get_me(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(
        self, params: JSONDict, files: dict[str, UploadedFile]
    ) -> list[JSONDict]:
        if self.webhook_url:
            raise ApiError(409, WEBHOOK_CONFLICT)
        offset = _as_int(params.get("offset")) or 0
        limit = min(max(_as_int(params.get("limit")) or 100, 1), 100)
        requested = params.get("timeout")
        wait = float(requested) if isinstance(requested, int | float) else 0.0
        wait = min(max(wait, 0.0), LONG_POLL_CAP)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = frozenset(allowed) if allowed else None
        self._poll_generation += 1
        generation = self._poll_generation
        self._notify()  # an older long poll still waiting must now report the conflict
        if offset:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]

        def deliverable() -> list[JSONDict] | None:
            if generation != self._poll_generation:
                raise ApiError(409, POLLING_CONFLICT)
            if self._closing:
                return []
            self._drop_unwanted_updates()
            return self._updates[:limit] or None

        batch = await self._settled(deliverable, wait)
        return copy.deepcopy(batch or [])

    def _drop_unwanted_updates(self) -> None:
        """Forget updates of kinds the bot did not ask for, as Telegram never delivers them."""

        def wanted(update: JSONDict) -> bool:
            kinds = set(update) - {"update_id"}
            if self._allowed_updates is None:
                return not kinds <= DEFAULT_EXCLUDED_UPDATES
            return bool(kinds & self._allowed_updates)

        kept = [update for update in self._updates if wanted(update)]
        if len(kept) != len(self._updates):
            self._updates = kept
            self._notify()

    async def _send_message(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        chat_id = self._target_chat(params)
        text, parse_mode = _checked_text(params)
        markup, buttons = _checked_markup(params.get("reply_markup"))
        return self._store(
            SentMessage(
                message_id=self.next_message_id(chat_id),
                chat_id=chat_id,
                text=text,
                buttons=buttons,
                parse_mode=parse_mode,
                entities=params.get("entities"),
                reply_markup=markup,
                date=int(time.time()),
            )
        )

    async def _send_document(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        chat_id = self._target_chat(params)
        caption, parse_mode = _checked_caption(params)
        markup, buttons = _checked_markup(params.get("reply_markup"))
        file_id, upload = self._media("document", params, files)
        return self._store(
            SentMessage(
                message_id=self.next_message_id(chat_id),
                chat_id=chat_id,
                caption=caption,
                buttons=buttons,
                document=upload,
                parse_mode=parse_mode,
                reply_markup=markup,
                file_id=file_id,
                date=int(time.time()),
            )
        )

    async def _send_photo(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        chat_id = self._target_chat(params)
        caption, parse_mode = _checked_caption(params)
        markup, buttons = _checked_markup(params.get("reply_markup"))
        file_id, (_, content) = self._media("photo", params, files)
        if content and not content.startswith(IMAGE_SIGNATURES):
            raise bad_request("IMAGE_PROCESS_FAILED")
        return self._store(
            SentMessage(
                message_id=self.next_message_id(chat_id),
                chat_id=chat_id,
                caption=caption,
                buttons=buttons,
                photo=content,
                parse_mode=parse_mode,
                reply_markup=markup,
                file_id=file_id,
                date=int(time.time()),
            )
        )

    async def _send_chat_action(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        self._target_chat(params)
        if params.get("action") not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return True

    async def _edit_message_text(
        self, params: JSONDict, files: dict[str, UploadedFile]
    ) -> JSONDict:
        message = self._find_message(params, "message to edit not found")
        if message.text is None:
            raise bad_request("there is no text in the message to edit")
        text, parse_mode = _checked_text(params)
        markup, buttons = _checked_markup(params.get("reply_markup"))
        entities = params.get("entities")
        old = (message.plain_text, message.text, message.entities, _inline(message.reply_markup))
        if old == (visible_text(text, parse_mode), text, entities, _inline(markup)):
            raise ApiError(400, NOT_MODIFIED)
        message.text, message.parse_mode, message.entities = text, parse_mode, entities
        return self._apply_edit(message, markup, buttons)

    async def _edit_message_caption(
        self, params: JSONDict, files: dict[str, UploadedFile]
    ) -> JSONDict:
        message = self._find_message(params, "message to edit not found")
        if message.text is not None:
            raise bad_request("there is no caption in the message to edit")
        caption, parse_mode = _checked_caption(params)
        markup, buttons = _checked_markup(params.get("reply_markup"))
        old = (message.caption, message.parse_mode, _inline(message.reply_markup))
        if old == (caption, parse_mode, _inline(markup)):
            raise ApiError(400, NOT_MODIFIED)
        message.caption, message.parse_mode = caption, parse_mode
        return self._apply_edit(message, markup, buttons)

    async def _edit_message_reply_markup(
        self, params: JSONDict, files: dict[str, UploadedFile]
    ) -> JSONDict:
        message = self._find_message(params, "message to edit not found")
        markup, buttons = _checked_markup(params.get("reply_markup"))
        if _inline(message.reply_markup) == _inline(markup):
            raise ApiError(400, NOT_MODIFIED)
        return self._apply_edit(message, markup, buttons)

    def _apply_edit(
        self, message: SentMessage, markup: JSONDict | None, buttons: list[list[Button]]
    ) -> JSONDict:
        """Finish an edit. Like Telegram, an edit without reply_markup removes the keyboard."""
        message.reply_markup, message.buttons = markup, buttons
        message.edited += 1
        message.edit_date = int(time.time())
        return self.message_json(message)

    async def _delete_message(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        message = self._find_message(params, "message to delete not found")
        message.deleted = True
        return True

    async def _answer_callback_query(
        self, params: JSONDict, files: dict[str, UploadedFile]
    ) -> bool:
        if str(params.get("callback_query_id")) not in self._callback_query_ids:
            raise bad_request(QUERY_INVALID)
        return True

    async def _set_webhook(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        url = params.get("url") or ""
        if not url:
            return await self._delete_webhook(params, files)
        if not str(url).startswith("https://"):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        self.webhook_url = str(url)
        self.webhook_secret = params.get("secret_token")
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self.webhook_allowed_updates = allowed
            self._allowed_updates = frozenset(allowed) if allowed else None
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _delete_webhook(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        self.webhook_url = self.webhook_secret = self.webhook_allowed_updates = None
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _get_webhook_info(self, params: JSONDict, files: dict[str, UploadedFile]) -> JSONDict:
        info: JSONDict = {
            "url": self.webhook_url or "",
            "has_custom_certificate": False,
            "pending_update_count": self.pending_updates,
        }
        if self.webhook_url and self.webhook_allowed_updates:
            info["allowed_updates"] = self.webhook_allowed_updates
        return info

    async def _set_my_commands(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        for command in commands:
            name = command.get("command", "") if isinstance(command, dict) else ""
            description = command.get("description", "") if isinstance(command, dict) else ""
            if not re.fullmatch(r"[a-z0-9_]{1,32}", name) or not 1 <= len(description) <= 256:
                raise bad_request("BOT_COMMAND_INVALID")
        key = _commands_key(params.get("scope"), params.get("language_code") or "")
        self._commands[key] = commands
        return True

    async def _delete_my_commands(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        key = _commands_key(params.get("scope"), params.get("language_code") or "")
        self._commands.pop(key, None)
        return True

    async def _get_my_commands(
        self, params: JSONDict, files: dict[str, UploadedFile]
    ) -> list[JSONDict]:
        return self.my_commands(params.get("scope"), params.get("language_code") or "")

    async def _set_chat_menu_button(self, params: JSONDict, files: dict[str, UploadedFile]) -> bool:
        chat_id = self._target_chat(params) if "chat_id" in params else None
        self._menu_buttons[chat_id] = params.get("menu_button") or {"type": "default"}
        return True

    async def _get_chat_menu_button(
        self, params: JSONDict, files: dict[str, UploadedFile]
    ) -> JSONDict:
        chat_id = self._target_chat(params) if "chat_id" in params else None
        return (
            self._menu_buttons.get(chat_id) or self._menu_buttons.get(None) or {"type": "commands"}
        )


class FakeUser:
    """A person talking to the bot in a private chat (chat id == user id)."""

    def __init__(self, emulator: BotApiEmulator, user: JSONDict) -> None:
        self._emulator = emulator
        self.user: JSONDict = user
        """The Telegram User object."""
        self.id: int = user["id"]
        self.first_name: str = user["first_name"]
        self.language_code: str | None = user.get("language_code")
        self.username: str | None = user.get("username")
        self._cursor = 0
        self._query_ids: set[str] = set()

    def __repr__(self) -> str:
        return f"FakeUser(id={self.id}, first_name={self.first_name!r})"

    def send(self, text: str) -> int:
        """The person writes `text` to the bot; returns the update_id."""
        message_id = self._emulator.next_message_id(self.id)
        chat = self._emulator.chat_json(self.id)
        return self._emulator.push_update(
            {"message": text_message(message_id, chat, self.user, text)}
        )

    def send_location(self, latitude: float, longitude: float) -> int:
        """The person shares a place on the map (📎 → Location); returns the update_id."""
        message_id = self._emulator.next_message_id(self.id)
        message: JSONDict = {
            "message_id": message_id,
            "from": self.user,
            "chat": self._emulator.chat_json(self.id),
            "date": int(time.time()),
            "location": {"latitude": latitude, "longitude": longitude},
        }
        return self._emulator.push_update({"message": message})

    def tap(self, label: str, message: SentMessage | None = None) -> int:
        """Tap a callback button (default message: the latest one with buttons in this chat)."""
        message = message or self._latest_with_buttons()
        button = message.button(label)
        if button.callback_data is None:
            raise AssertionError(
                f"button {button.text!r} sends no callback query (url={button.url!r})"
            )
        return self.tap_data(button.callback_data, message)

    def tap_data(self, data: str, message: SentMessage | None = None) -> int:
        """Send a callback query with arbitrary data, as a modified client could."""
        message = message or self._latest_with_buttons()
        if message.deleted:
            raise AssertionError(f"message {message.message_id} was deleted; it cannot be tapped")
        query_id = str(next(_callback_query_ids))
        self._query_ids.add(query_id)
        query = {
            "id": query_id,
            "from": self.user,
            "message": self._emulator.message_json(message),
            "chat_instance": str(abs(message.chat_id) * 7919),
            "data": data,
        }
        return self._emulator.push_update({"callback_query": query})

    @property
    def inbox(self) -> list[SentMessage]:
        return self._emulator.messages(self.id)

    def read_all(self) -> None:
        """Count every message so far as read: next_message returns only later ones."""
        self._cursor = len(self.inbox)

    async def next_message(self, timeout: float = 5.0) -> SentMessage:  # noqa: ASYNC109
        """The first message the bot sent here that no earlier next_message call returned."""

        def new_message() -> SentMessage | None:
            inbox = self.inbox
            return inbox[self._cursor] if len(inbox) > self._cursor else None

        try:
            message = await self._emulator.wait_until(new_message, timeout)
        except AssertionError:
            raise AssertionError(
                f"no new message for {self!r} within {timeout}s "
                f"(already read: {self._cursor})\n{self._emulator.describe_chat(self.id)}"
            ) from None
        self._cursor += 1
        return message

    async def wait_for(
        self,
        predicate: Callable[[SentMessage], bool],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> SentMessage:
        """The most recent non-deleted message here satisfying `predicate` (edits count)."""

        def match() -> SentMessage | None:
            candidates = [m for m in self.inbox if not m.deleted and predicate(m)]
            return candidates[-1] if candidates else None

        try:
            return await self._emulator.wait_until(match, timeout)
        except AssertionError:
            raise AssertionError(
                f"no message for {self!r} matched within {timeout}s\n"
                f"{self._emulator.describe_chat(self.id)}"
            ) from None

    @property
    def answered_callbacks(self) -> list[Call]:
        """answerCallbackQuery calls for this person's callback queries."""
        return [
            call
            for call in self._emulator.calls_to("answerCallbackQuery")
            if str(call.params.get("callback_query_id")) in self._query_ids
        ]

    def _latest_with_buttons(self) -> SentMessage:
        for message in reversed(self.inbox):
            if message.buttons and not message.deleted:
                return message
        raise AssertionError(
            f"the bot sent no message with buttons to {self!r}\n"
            f"{self._emulator.describe_chat(self.id)}"
        )


class FakeGroup:
    """A supergroup the bot belongs to."""

    def __init__(self, emulator: BotApiEmulator, chat_id: int, title: str) -> None:
        self._emulator = emulator
        self.id = chat_id
        self.title = title

    def __repr__(self) -> str:
        return f"FakeGroup(id={self.id}, title={self.title!r})"

    def send(self, user: FakeUser, text: str) -> int:
        """`user` writes `text` in the group ("/cmd" and "/cmd@botname" are commands)."""
        message_id = self._emulator.next_message_id(self.id)
        chat = self._emulator.chat_json(self.id)
        return self._emulator.push_update(
            {"message": text_message(message_id, chat, user.user, text)}
        )

    @property
    def inbox(self) -> list[SentMessage]:
        return self._emulator.messages(self.id)


_callback_query_ids = itertools.count(4_000_000_000_000_000_001)


def _chat_id_of(params: Mapping[str, Any], usernames: Mapping[str, int]) -> int | None:
    """The chat_id parameter as an int ("@name" resolved), or None if absent or unknown."""
    raw = params.get("chat_id")
    if isinstance(raw, str) and raw.startswith("@"):
        return usernames.get(raw[1:].lower())
    return _as_int(raw)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
        return int(value)
    return None


def _checked_text(params: JSONDict) -> tuple[str, str | None]:
    """The text and parse mode of a message, validated like Telegram."""
    parse_mode = _checked_parse_mode(params)
    text = params.get("text")
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    visible = visible_text(text, parse_mode)
    if not visible:
        raise bad_request("message text is empty")
    if utf16_length(visible) > MAX_TEXT_LENGTH:
        raise bad_request("message is too long")
    return text, parse_mode


def _checked_caption(params: JSONDict) -> tuple[str | None, str | None]:
    parse_mode = _checked_parse_mode(params)
    caption = params.get("caption")
    if caption is None:
        return None, parse_mode
    caption = str(caption)
    if utf16_length(visible_text(caption, parse_mode)) > MAX_CAPTION_LENGTH:
        raise bad_request("message caption is too long")
    return caption, parse_mode


def _checked_parse_mode(params: JSONDict) -> str | None:
    parse_mode = params.get("parse_mode") or None
    if parse_mode is not None and str(parse_mode).lower() not in ("html", "markdown", "markdownv2"):
        raise bad_request("unsupported parse_mode")
    return parse_mode


def _checked_markup(raw: Any) -> tuple[JSONDict | None, list[list[Button]]]:
    """The reply_markup of a request and its inline buttons, validated like Telegram."""
    if raw is None:
        return None, []
    if not isinstance(raw, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    rows = raw.get("inline_keyboard")
    if rows is None:
        return raw, []
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request('field "inline_keyboard" must be of type Array')
    if sum(len(row) for row in rows) > MAX_INLINE_BUTTONS:
        raise bad_request("reply markup is too long")
    return raw, [[_checked_button(button) for button in row] for row in rows]


def _checked_button(button: Any) -> Button:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise bad_request("can't parse inline keyboard button: Can't find field \"text\"")
    if not INLINE_BUTTON_ACTIONS & set(button):
        raise bad_request(
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    data = button.get("callback_data")
    if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA_BYTES:
        raise bad_request("BUTTON_DATA_INVALID")
    url = button.get("url")
    if url is not None and not re.match(r"(https?|tg)://\S+$", str(url)):
        raise bad_request("BUTTON_URL_INVALID")
    return Button(
        text=button["text"],
        callback_data=None if data is None else str(data),
        url=None if url is None else str(url),
    )


def _inline(markup: JSONDict | None) -> Any:
    """The part of a markup that stays attached to a message (only inline keyboards do)."""
    return markup.get("inline_keyboard") if markup else None


def _commands_key(scope: Any, language_code: str) -> tuple[str, str]:
    scope = scope or {"type": "default"}
    return json.dumps(scope, sort_keys=True), language_code


def _abridged(params: JSONDict) -> str:
    text = repr({key: value for key, value in params.items() if key != "reply_markup"})
    return text if len(text) <= 200 else text[:197] + "..."

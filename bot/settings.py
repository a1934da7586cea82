"""One frozen, typed Settings object, read from the environment and `.env`.

A bad setting stops the program at start with one clear line naming it.
"""

from __future__ import annotations

import re
from ipaddress import ip_network
from typing import Annotated
from urllib.parse import urlparse

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
WEBHOOK_SECRET_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
GRAPH_API_URL = "https://graph.facebook.com/v26.0"
# Without all four there is no WhatsApp channel; with some but not all, the program stops.
WHATSAPP_REQUIRED = (
    "whatsapp_token",
    "whatsapp_phone_number_id",
    "whatsapp_app_secret",
    "whatsapp_verify_token",
)


class SettingsError(Exception):
    """A setting is missing or wrong; the message is one line for the deployer."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", frozen=True, extra="ignore")

    database_url: str = Field(
        "sqlite+aiosqlite:///coupdepouce.db",
        description="Where data lives: sqlite+aiosqlite:///FILE or postgresql+asyncpg://USER:PASS@HOST/DB.",
    )
    telegram_bot_token: SecretStr | None = Field(
        None, description="The token BotFather gave; `run` needs it, `demo` does not."
    )
    telegram_api_url: str = Field(
        "https://api.telegram.org",
        description="The Bot API server: Telegram's, or a self-hosted one.",
    )
    telegram_bot_username: str | None = Field(
        None, description="The bot's @username, for invitation links without asking Telegram."
    )
    webhook_url: str | None = Field(
        None, description="Public HTTPS address Telegram posts updates to; unset: long polling."
    )
    webhook_secret: SecretStr | None = Field(
        None, description="Checked against X-Telegram-Bot-Api-Secret-Token on every webhook call."
    )
    http_host: str = Field("127.0.0.1", description="Address the web server listens on.")
    http_port: int = Field(8080, ge=0, le=65535, description="Port the web server listens on.")
    public_url: str | None = Field(
        None,
        description="The address people reach the web server at (https://…), for dashboard "
        "links; default http://HTTP_HOST:HTTP_PORT.",
    )
    dashboard_link_minutes: int = Field(
        10, ge=1, le=60, description="How long a /dashboard sign-in link works, in minutes."
    )
    dashboard_session_hours: float = Field(
        8.0, gt=0, le=720, description="How long a dashboard sign-in lasts, in hours."
    )
    admin_telegram_ids: Annotated[frozenset[str], NoDecode] = Field(
        frozenset(), description="Comma-separated Telegram user ids of the bot's administrators."
    )
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR.")
    trusted_proxy: Annotated[frozenset[str], NoDecode] = Field(
        frozenset(),
        description="Comma-separated addresses or networks of the HTTPS reverse proxy in front: "
        "only from them are X-Forwarded-For and X-Forwarded-Proto believed (then cookies are "
        "Secure and HSTS is sent).",
    )
    webchat_origins: Annotated[frozenset[str], NoDecode] = Field(
        frozenset(),
        description="Comma-separated sites (https://…) that embed the web chat: they may frame "
        "it and open its socket.",
    )
    webpush_contact: str | None = Field(
        None,
        description="How browser push services can reach the operator (mailto:… or https://…), "
        "sent with every notification; default: PUBLIC_URL.",
    )
    webchat_new_chats_per_hour: int = Field(
        60, ge=1, description="New web chat visitors from one address in an hour."
    )
    webchat_messages_per_second: int = Field(
        5, ge=1, description="Messages one web chat page may send in a second."
    )
    webchat_messages_per_minute: int = Field(
        60, ge=1, description="Messages one web chat page may send in a minute."
    )
    webchat_sockets_per_address: int = Field(
        30, ge=1, description="Web chat pages open at once from one address."
    )
    webchat_messages_per_address: int = Field(
        10, ge=1, description="Messages all web chat pages of one address may send in a second."
    )
    webchat_sockets_per_minute: int = Field(
        30, ge=1, description="Web chat pages one address may open (or reopen) in a minute."
    )
    telegram_paid_broadcast: bool = Field(
        False,
        description="Use Telegram's paid broadcasts (up to 1,000 messages/s, billed in Stars).",
    )
    dispatch_rate: float | None = Field(
        None,
        gt=0,
        le=10_000,
        description="Messages per second across chats; default 30, or 1,000 with paid broadcasts.",
    )
    dispatch_chat_interval: float = Field(
        1.0, ge=0, le=60, description="Seconds between two messages into one private chat."
    )
    dispatch_group_per_minute: float = Field(
        20.0, gt=0, le=600, description="Messages per minute into one group chat."
    )
    dispatch_report_seconds: float = Field(
        3.0, gt=0, le=3600, description="How often a broadcast's progress message is updated."
    )
    whatsapp_token: SecretStr | None = Field(
        None, description="A permanent access token of the WhatsApp Business app (system user)."
    )
    whatsapp_phone_number_id: str | None = Field(
        None, description="The id of the WhatsApp Business phone number the bot speaks from."
    )
    whatsapp_app_secret: SecretStr | None = Field(
        None, description="The Meta app's secret: every webhook call's signature is checked."
    )
    whatsapp_verify_token: SecretStr | None = Field(
        None, description="A phrase of your choice, given to Meta when setting the webhook."
    )
    whatsapp_api_url: str = Field(
        GRAPH_API_URL, description="Meta's Graph API with its version, or another Cloud API server."
    )
    whatsapp_business_account_id: str | None = Field(
        None, description="The WhatsApp Business Account id, to submit the message templates."
    )
    whatsapp_number: str | None = Field(
        None,
        description="The bot's WhatsApp number in international form (digits), for wa.me "
        "links; default: asked from the Graph API.",
    )
    whatsapp_rate: float = Field(
        80.0, gt=0, le=1000, description="WhatsApp messages per second for the whole number."
    )
    whatsapp_template_price: float | None = Field(
        None, ge=0, le=10, description="What one template message costs, for estimates."
    )
    whatsapp_price_currency: str = Field(
        "EUR", description="The currency of WHATSAPP_TEMPLATE_PRICE (ISO 4217)."
    )
    dispatch_lease_seconds: float = Field(
        30.0,
        ge=1,
        le=3600,
        description="After this long, messages a stopped process had taken are queued again.",
    )

    @field_validator("database_url")
    @classmethod
    def _async_database_url(cls, value: str) -> str:
        try:
            url = make_url(value.strip())
        except ArgumentError:
            raise ValueError(
                "not a database URL; use sqlite+aiosqlite:///FILE or postgresql+asyncpg://USER@HOST/DB"
            ) from None
        backend = (
            "postgresql"
            if url.get_backend_name() in {"postgres", "postgresql"}
            else url.get_backend_name()
        )
        if backend not in ASYNC_DRIVERS:
            raise ValueError(f"unsupported database {backend!r}; use SQLite or PostgreSQL")
        if url.drivername not in {backend, "postgres", ASYNC_DRIVERS[backend]}:
            raise ValueError(f"use the driver {ASYNC_DRIVERS[backend]}, not {url.drivername}")
        if backend == "postgresql" and not url.database:
            raise ValueError("name the database: postgresql+asyncpg://USER@HOST/DB")
        if backend == "sqlite" and not url.database:
            raise ValueError("name the file: sqlite+aiosqlite:///coupdepouce.db")
        return url.set(drivername=ASYNC_DRIVERS[backend]).render_as_string(hide_password=False)

    @field_validator("telegram_api_url", "webhook_url", "public_url", "whatsapp_api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        parsed = urlparse(value.strip())
        if parsed.scheme not in {"http", "https"} or not parsed.netloc:
            raise ValueError("must be an http(s):// address")
        return value.strip().rstrip("/")

    @field_validator(
        "telegram_bot_token",
        "webhook_secret",
        *WHATSAPP_REQUIRED,
        "whatsapp_business_account_id",
        "whatsapp_number",
        "whatsapp_template_price",
        mode="before",
    )
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip() == "" else value

    @field_validator("whatsapp_phone_number_id", "whatsapp_business_account_id")
    @classmethod
    def _graph_id(cls, value: str | None) -> str | None:
        if value is not None and not value.strip().isdigit():
            raise ValueError("a Graph API id is a number, as Meta's app dashboard shows it")
        return None if value is None else value.strip()

    @field_validator("whatsapp_number")
    @classmethod
    def _phone_number(cls, value: str | None) -> str | None:
        if value is None:
            return None
        digits = re.sub(r"[\s().-]", "", value).removeprefix("+").removeprefix("00")
        if not digits.isdigit() or not 8 <= len(digits) <= 15:
            raise ValueError("the number in international form, e.g. +33 6 12 34 56 78")
        return digits

    @field_validator("whatsapp_price_currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        code = value.strip().upper()
        if not re.fullmatch(r"[A-Z]{3}", code):
            raise ValueError("a three-letter currency code, e.g. EUR")
        return code

    @field_validator("admin_telegram_ids", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            ids = [part.strip() for part in value.split(",") if part.strip()]
            bad = [part for part in ids if not part.lstrip("-").isdigit()]
            if bad:
                raise ValueError(f"Telegram user ids are numbers; got {bad[0]!r}")
            return frozenset(ids)
        return value

    @field_validator("webpush_contact")
    @classmethod
    def _contact(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not (value.startswith("mailto:") and "@" in value) and not value.startswith("https://"):
            raise ValueError("a mailto: address or an https:// address")
        return value

    @property
    def served_locally(self) -> bool:
        """No PUBLIC_URL, or one on this machine: development, the demo, tests."""
        if self.public_url is None:
            return True
        host = urlparse(self.public_url).hostname or ""
        return host == "localhost" or host.startswith("127.") or host == "::1"

    @field_validator("trusted_proxy", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",") if part.strip()]
            for part in parts:
                try:
                    ip_network(part, strict=False)
                except ValueError:
                    raise ValueError(f"not an address or network: {part!r}") from None
            return frozenset(parts)
        return value

    @field_validator("webchat_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        if isinstance(value, str):
            origins = set()
            for part in (part.strip() for part in value.split(",") if part.strip()):
                parsed = urlparse(part)
                if parsed.scheme not in {"http", "https"} or not parsed.netloc or parsed.path:
                    raise ValueError(f"a site is scheme://host[:port], got {part!r}")
                origins.add(f"{parsed.scheme}://{parsed.netloc}".lower())
            return frozenset(origins)
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("use DEBUG, INFO, WARNING or ERROR")
        return level

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        if self.webhook_url is None:
            return self
        if self.webhook_secret is None:
            raise ValueError("WEBHOOK_SECRET is required when WEBHOOK_URL is set")
        if not WEBHOOK_SECRET_PATTERN.match(self.webhook_secret.get_secret_value()):
            raise ValueError("WEBHOOK_SECRET: 1 to 256 characters among A-Z a-z 0-9 _ -")
        return self

    @model_validator(mode="after")
    def _whatsapp_all_or_nothing(self) -> Settings:
        given = [name for name in WHATSAPP_REQUIRED if getattr(self, name) is not None]
        if given and len(given) < len(WHATSAPP_REQUIRED):
            missing = [name.upper() for name in WHATSAPP_REQUIRED if name not in given]
            raise ValueError(
                f"WhatsApp also needs {' and '.join(missing)} (set all four WhatsApp settings, "
                "or none)"
            )
        return self

    @property
    def whatsapp(self) -> bool:
        """Whether the WhatsApp channel is configured."""
        return self.whatsapp_token is not None

    @property
    def telegram(self) -> bool:
        """Whether the Telegram channel is configured."""
        return self.telegram_bot_token is not None

    @property
    def webhook_path(self) -> str:
        """The path of WEBHOOK_URL, where the web server takes Telegram's calls."""
        path = urlparse(self.webhook_url or "").path
        return path if path and path != "/" else "/telegram/webhook"

    @property
    def broadcast_rate(self) -> float:
        if self.dispatch_rate is not None:
            return self.dispatch_rate
        return 1000.0 if self.telegram_paid_broadcast else 30.0

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def load_settings(**overrides: object) -> Settings:
    """Read the settings; a problem becomes one SettingsError line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        first = error.errors()[0]
        name = "_".join(str(part) for part in first["loc"]).upper()
        message = str(first["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"{name}: {message}" if name else message) from None


def require_channel(settings: Settings) -> None:
    """`run` needs a messenger: Telegram, WhatsApp or both."""
    if not (settings.telegram or settings.whatsapp):
        raise SettingsError(
            "no messenger configured: set TELEGRAM_BOT_TOKEN (from @BotFather) or the WHATSAPP_* "
            "settings, or both (or try `coupdepouce demo`, which needs neither)"
        )

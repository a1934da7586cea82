"""Web Push for the web chat: tell a browser a message is waiting, even with the page closed.

The browser's push service (Google's, Mozilla's, Apple's…) is given an encrypted payload
(RFC 8291, `aes128gcm`) signed with our VAPID key (RFC 8292), and wakes the chat's service
worker, which shows a notification. The push service never reads the message; it only sees
that we are the same sender as the one the browser subscribed for.

Sending is best effort and never raises: a message that could not be announced still waits
in the person's mailbox for their next visit. A subscription the push service calls gone
(404 or 410) is for the caller to delete.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
import ipaddress
import json
import logging
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02  # type: ignore[import-untyped]
from pywebpush import WebPushException, webpush_async  # type: ignore[import-untyped]
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.db import session_scope
from storage.queries import push as stored_push
from storage.queries import secrets as stored_secrets

log = logging.getLogger(__name__)

SECRET_NAME = "webpush-vapid"
# The order of P-256's group: a private key is a number in [1, ORDER - 1].
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

MAX_PAYLOAD_BYTES = 3000  # services accept 4096 bytes once encrypted; keep well below
MAX_TITLE_CHARS = 120
ELLIPSIS = "…"
VAPID_LIFETIME = 12 * 3600  # services refuse a token valid for more than 24 hours
DEFAULT_TTL = 24 * 3600  # a phone off for a day still hears about the message
DEFAULT_TIMEOUT = 10.0
GONE_STATUSES = frozenset({404, 410})
TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")  # RFC 8030 Topic: 32 base64url characters

MAX_ENDPOINT_CHARS = 1000  # push_subscriptions.endpoint
MAX_KEY_CHARS = 100
P256DH_BYTES = 65  # an uncompressed P-256 point: 0x04, x, y
AUTH_BYTES = 16
BASE64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")
PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")
TOP_LEVEL_DOMAIN = re.compile(r"[a-z]{2,63}|xn--[a-z0-9-]{1,59}")


def b64url(data: bytes) -> str:
    """Unpadded base64url, as the Push API writes keys."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; ValueError if it is not base64url."""
    if not BASE64URL.fullmatch(text):
        raise ValueError("not base64url")
    stripped = text.rstrip("=")
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError) as error:
        raise ValueError("not base64url") from error


# --- keys -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VapidKeys:
    """Our VAPID key pair: the private key signs every push, the public key is what the page
    gives `pushManager.subscribe` as `applicationServerKey`."""

    private_key: ec.EllipticCurvePrivateKey

    @classmethod
    def from_secret(cls, secret: str) -> VapidKeys:
        """The key pair made from a stored random secret (32 bytes, base64url).

        A P-256 private key is a number from 1 to the group's order minus one; reducing the
        secret into that range keeps every stored value valid (a raw 32-byte value is above
        the order about once in four billion).
        """
        seed = b64url_decode(secret)
        if len(seed) < 32:
            raise ValueError("a VAPID secret needs 32 random bytes")
        scalar = int.from_bytes(seed, "big") % (P256_ORDER - 1) + 1
        return cls(ec.derive_private_key(scalar, ec.SECP256R1()))

    @classmethod
    def generate(cls) -> VapidKeys:
        """A fresh key pair (tests, or a one-off tool)."""
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_key(self) -> str:
        """The public key as the browser wants it: base64url of the uncompressed point."""
        return b64url(
            self.private_key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )


async def vapid_keys(session: AsyncSession) -> VapidKeys:
    """This installation's VAPID keys, made on first use and kept with the other app secrets.

    They must never change: every browser subscribed with the public key, and a push signed
    by another key is refused, so a new key would silence every subscription at once.
    """
    secret = await stored_secrets.get_or_create(session, SECRET_NAME, nbytes=32)
    return VapidKeys.from_secret(secret)


# --- subscriptions --------------------------------------------------------------------------


class SubscriptionLike(Protocol):
    """What sending needs of a subscription (a `PushSubscription` row, or a `Subscription`)."""

    @property
    def endpoint(self) -> str: ...

    @property
    def p256dh(self) -> str: ...

    @property
    def auth(self) -> str: ...


@dataclass(frozen=True)
class Subscription:
    """A browser's subscription, checked: an https endpoint and keys of the right sizes."""

    endpoint: str
    p256dh: str  # base64url, unpadded
    auth: str  # base64url, unpadded


def parse_subscription(data: object, *, allow_loopback: bool = False) -> Subscription | None:
    """The subscription a page sent (`PushSubscription.toJSON()`); None if it is not one.

    The endpoint is where our server will POST, so it is untrusted: https only, no
    credentials, no address of our own network. A bot itself served from a loopback address
    (development, tests) passes `allow_loopback`, which also allows plain http there.
    """
    if not isinstance(data, Mapping):
        return None
    endpoint, keys = data.get("endpoint"), data.get("keys")
    if not isinstance(endpoint, str) or not isinstance(keys, Mapping):
        return None
    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    if not isinstance(p256dh, str) or not isinstance(auth, str):
        return None
    if not _acceptable_endpoint(endpoint, allow_loopback):
        return None
    public = _decoded_key(p256dh, P256DH_BYTES)
    secret = _decoded_key(auth, AUTH_BYTES)
    if public is None or secret is None or public[0] != 0x04:
        return None
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public)
    except ValueError:
        return None  # not a point on the curve: encryption to it would fail
    return Subscription(endpoint=endpoint, p256dh=b64url(public), auth=b64url(secret))


def _decoded_key(text: str, size: int) -> bytes | None:
    if len(text) > MAX_KEY_CHARS:
        return None
    try:
        decoded = b64url_decode(text)
    except ValueError:
        return None
    return decoded if len(decoded) == size else None


def _acceptable_endpoint(endpoint: str, allow_loopback: bool) -> bool:
    if len(endpoint) > MAX_ENDPOINT_CHARS or not PRINTABLE_ASCII.fullmatch(endpoint):
        return False
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        return False
    host = (parts.hostname or "").rstrip(".")
    if not host or parts.username is not None or parts.password is not None or parts.fragment:
        return False
    if port == 0 or parts.scheme not in {"https", "http"}:
        return False
    address = _ip_address(host)
    if address is not None:
        if not _reachable(address, allow_loopback):
            return False
        return parts.scheme == "https" or address.is_loopback
    if host == "localhost" or host.endswith(".localhost"):
        return allow_loopback
    # A public name ends in letters: not a single label, nor digits that a resolver reads
    # as an address ("127.1", "0x7f.1").
    label, dot, top = host.rpartition(".")
    if not (label and dot and TOP_LEVEL_DOMAIN.fullmatch(top)):
        return False
    return parts.scheme == "https"


def _ip_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.partition("%")[0])  # fe80::1%eth0
    except ValueError:
        return None


def _reachable(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_loopback: bool
) -> bool:
    """A public address; a loopback one too when the bot itself runs on one."""
    return address.is_global or (allow_loopback and address.is_loopback)


class PublicAddressesOnly(AbstractResolver):
    """Resolves names as usual and keeps only public addresses.

    An endpoint comes from a browser, that is from anyone: checking its name is not enough,
    since any name can point at an address of our own network. The check is made on the
    addresses actually connected to.
    """

    def __init__(self, allow_loopback: bool = False) -> None:
        self._resolver = DefaultResolver()
        self._allow_loopback = allow_loopback

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        kept = [
            result
            for result in results
            if (address := _ip_address(result["host"])) is not None
            and _reachable(address, self._allow_loopback)
        ]
        if not kept:
            raise OSError(f"{host} has no public address")
        return kept

    async def close(self) -> None:
        await self._resolver.close()


def origin_of(endpoint: str) -> str:
    """The scheme, host and port of an endpoint: the `aud` of the token that goes with it."""
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


# --- payloads -------------------------------------------------------------------------------


def notification(title: str, body: str, message_id: int, locale: str, rtl: bool) -> dict[str, Any]:
    """What the service worker shows for a message of the mailbox: a tap opens the chat at
    that message, and pushing the same message again replaces its notification."""
    return {
        "title": title,
        "body": body,
        "id": message_id,
        "url": f"/?m={message_id}",
        "lang": locale,
        "dir": "rtl" if rtl else "ltr",
        "tag": f"m{message_id}",
    }


def fit_payload(payload: Mapping[str, Any], limit: int = MAX_PAYLOAD_BYTES) -> bytes | None:
    """The payload as compact UTF-8 JSON of at most `limit` bytes, its title and body cut at
    a word with an ellipsis if need be; None if even that does not fit.

    A push service refuses a payload above 4096 encrypted bytes, and a notification shows
    the start of a message anyway: the rest is in the chat.
    """
    fitted = dict(payload)
    title = fitted.get("title")
    if isinstance(title, str) and len(title) > MAX_TITLE_CHARS:
        fitted["title"] = _shortened(title, MAX_TITLE_CHARS)
    encoded = _encode(fitted)
    if len(encoded) <= limit:
        return encoded
    body = fitted.get("body")
    if not isinstance(body, str):
        return None
    fitted["body"] = ""
    room = limit - len(_encode(fitted)) - _json_bytes(ELLIPSIS)
    if room <= 0:
        return None
    kept, used = 0, 0
    for character in body:
        used += _json_bytes(character)
        if used > room:
            break
        kept += 1
    fitted["body"] = _shortened(body, kept)
    encoded = _encode(fitted)
    return encoded if len(encoded) <= limit else None


def _shortened(text: str, chars: int) -> str:
    """The first `chars` characters or fewer, ended at a word if one ends near, then "…"."""
    if len(text) <= chars:
        return text
    cut = text[: max(chars - 1, 0)]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    if space >= len(cut) * 3 // 4:
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS


def _encode(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")


def _json_bytes(character: str) -> int:
    return len(json.dumps(character, ensure_ascii=False).encode("utf-8", "replace")) - 2


# --- sending --------------------------------------------------------------------------------


class PushOutcome(enum.StrEnum):
    SENT = "sent"  # the push service took it
    GONE = "gone"  # the subscription no longer exists (404, 410): delete it
    FAILED = "failed"  # anything else; the message still waits in the mailbox


@dataclass(frozen=True)
class PushResult:
    outcome: PushOutcome
    status: int | None = None  # the push service's HTTP status, if it answered
    error: str | None = None


class WebPush:
    """Sends Web Push messages with this installation's VAPID keys over one HTTP session.

    `subject` is how a push service can reach us about our traffic: a `mailto:` address or
    the bot's public https URL. `allow_loopback` lets it post to this machine (a bot served
    from a loopback address, in development and tests), as `parse_subscription` does.
    """

    def __init__(
        self,
        keys: VapidKeys,
        subject: str,
        *,
        ttl: int = DEFAULT_TTL,
        timeout: float = DEFAULT_TIMEOUT,
        allow_loopback: bool = False,
    ) -> None:
        scheme = urlsplit(subject).scheme
        if scheme not in {"mailto", "https", "http"} or len(subject) <= len(scheme) + 1:
            raise ValueError("the Web Push subject is a mailto: address or the bot's URL")
        self.keys = keys
        self.subject = subject
        self.ttl = ttl
        self.timeout = timeout
        self.allow_loopback = allow_loopback
        # py_vapid's own check of `sub` refuses URLs with a port or a path: ours is checked above.
        self._vapid = Vapid02(private_key=keys.private_key, conf={"no-strict": True})
        self._session: aiohttp.ClientSession | None = None

    @property
    def public_key(self) -> str:
        return self.keys.public_key

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def notify_chat(
        self,
        sessions: async_sessionmaker[AsyncSession],
        chat_id: str,
        payload: Mapping[str, Any],
    ) -> list[PushResult]:
        """Send to every browser of a chat, then forget those the push service calls gone.

        The subscriptions are read in one transaction and the gone ones deleted in another:
        no transaction stays open while the push services answer.
        """
        async with session_scope(sessions) as session:
            subscriptions = [
                Subscription(row.endpoint, row.p256dh, row.auth)
                for row in await stored_push.subscriptions_of(session, chat_id)
            ]
        if not subscriptions:
            return []
        results = await asyncio.gather(
            *(self.send(subscription, payload) for subscription in subscriptions)
        )
        gone = [
            subscription.endpoint
            for subscription, result in zip(subscriptions, results, strict=True)
            if result.outcome is PushOutcome.GONE
        ]
        if gone:
            async with session_scope(sessions) as session:
                for endpoint in gone:
                    await stored_push.unsubscribe(session, endpoint)
        return list(results)

    async def send(self, subscription: SubscriptionLike, payload: Mapping[str, Any]) -> PushResult:
        """Encrypt, sign and post one message; what became of it, never an exception.

        `payload` is what the service worker shows: title, body, id, url, lang, dir, tag.
        """
        if self._session is None:
            raise RuntimeError("WebPush.start() was not called")
        origin = origin_of(subscription.endpoint)
        if not _acceptable_endpoint(subscription.endpoint, self.allow_loopback):
            log.warning("web push to %s not sent: not an endpoint we post to", origin)
            return PushResult(PushOutcome.FAILED, error="endpoint refused")
        data = fit_payload(payload)
        if data is None:
            log.warning("web push to %s not sent: the payload does not fit", origin)
            return PushResult(PushOutcome.FAILED, error="payload too large")
        headers: dict[str, str | int | float] = {"Urgency": "normal"}
        tag = payload.get("tag")
        if isinstance(tag, str) and TOPIC.fullmatch(tag):
            headers["Topic"] = tag  # an undelivered earlier push of this message is replaced
        claims: dict[str, str | int] = {
            "sub": self.subject,
            "aud": origin,
            "exp": int(time.time()) + VAPID_LIFETIME,
        }
        try:
            async with asyncio.timeout(self.timeout):
                response = await webpush_async(
                    subscription_info={
                        "endpoint": subscription.endpoint,
                        "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth},
                    },
                    data=data.decode("utf-8"),
                    vapid_private_key=self._vapid,
                    vapid_claims=claims,
                    content_encoding="aes128gcm",
                    ttl=self.ttl,
                    headers=headers,
                    timeout=self.timeout,
                    aiohttp_session=self._session,
                )
        except WebPushException as error:
            status = error.status_code
            if status in GONE_STATUSES:
                return PushResult(PushOutcome.GONE, status=status)
            log.warning("web push to %s failed: HTTP %s", origin, status)
            return PushResult(PushOutcome.FAILED, status=status, error=f"HTTP {status}")
        except TimeoutError:
            log.warning("web push to %s failed: no answer in %.0f s", origin, self.timeout)
            return PushResult(PushOutcome.FAILED, error="timeout")
        except Exception as error:  # network, TLS, a key the library refuses: never raised
            log.warning("web push to %s failed: %s: %s", origin, type(error).__name__, error)
            return PushResult(PushOutcome.FAILED, error=type(error).__name__)
        return PushResult(PushOutcome.SENT, status=int(response.status))

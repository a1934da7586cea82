"""A push service on 127.0.0.1, as a browser vendor runs one, at the HTTP level.

It holds subscriptions the way a browser makes them (a P-256 key pair and a 16-byte auth
secret per subscription), takes `POST /push/<token>` as RFC 8030 says, checks the VAPID
token (RFC 8292) with its own code, not the sender's library, decrypts the `aes128gcm`
body (RFC 8291, likewise) and keeps what it read. Like real services it answers 201 when
it took a message, 401 or 403 with a JSON error for a missing or bad authorisation, 404
for a token it never issued and 410 for an expired one.

    service = PushService()
    await service.start()
    subscription = service.subscribe()  # what PushSubscription.toJSON() gives a page
    ...
    [message] = service.messages_for(subscription)
    await service.stop()
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import struct
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hmac import HMAC

MAX_BODY = 4096  # RFC 8030 section 7.2: services must accept at least this much
MAX_TOKEN_LIFETIME = 24 * 3600  # RFC 8292 section 2: no more than 24 hours
URGENCIES = frozenset({"very-low", "low", "normal", "high"})


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _uncompressed(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    mac = HMAC(salt, hashes.SHA256())
    mac.update(ikm)
    return mac.finalize()


def _hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    mac = HMAC(prk, hashes.SHA256())
    mac.update(info + b"\x01")
    return mac.finalize()[:length]  # one block is enough for 32 bytes or fewer


class RefusedError(Exception):
    """An error answer of the service: its status and JSON reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Subscriber:
    """A browser's side of one subscription: what decrypts what is sent to it."""

    token: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    application_server_key: str | None  # the key the page subscribed with, if it gave one
    status: int | None = None  # answered instead of 201 (404 missing, 410 expired, 500…)

    @property
    def p256dh(self) -> str:
        return _b64url(_uncompressed(self.private_key.public_key()))

    def decrypt(self, body: bytes) -> bytes:
        """RFC 8291: the message, from an aes128gcm body of one record."""
        if len(body) < 21:
            raise RefusedError(400, "body shorter than an aes128gcm header")
        salt, (record_size,), id_length = body[:16], struct.unpack("!L", body[16:20]), body[20]
        sender_key, ciphertext = body[21 : 21 + id_length], body[21 + id_length :]
        if id_length != 65 or record_size < 18 or len(ciphertext) > record_size:
            raise RefusedError(400, "one aes128gcm record with the sender's key as key id")
        try:
            sender = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender_key)
        except ValueError as error:
            raise RefusedError(400, "the key id is not a P-256 point") from error
        shared = self.private_key.exchange(ec.ECDH(), sender)
        receiver_key = _uncompressed(self.private_key.public_key())
        ikm = _hkdf_expand(
            _hkdf_extract(self.auth, shared),
            b"WebPush: info\x00" + receiver_key + sender_key,
            32,
        )
        prk = _hkdf_extract(salt, ikm)
        key = _hkdf_expand(prk, b"Content-Encoding: aes128gcm\x00", 16)
        nonce = _hkdf_expand(prk, b"Content-Encoding: nonce\x00", 12)
        try:
            padded = AESGCM(key).decrypt(nonce, ciphertext, None)
        except InvalidTag as error:
            raise RefusedError(400, "the body does not decrypt") from error
        content = padded.rstrip(b"\x00")
        if not content.endswith(b"\x02"):
            raise RefusedError(400, "the last record's delimiter is not 0x02")
        return content[:-1]


@dataclass(frozen=True)
class PushedMessage:
    """A message the service took, as the browser will read it."""

    token: str
    payload: Any  # the decrypted body, as JSON
    ttl: int
    urgency: str | None
    topic: str | None
    claims: dict[str, Any]
    public_key: str  # the `k` of the VAPID authorisation


class PushService:
    """The service; start() picks a free port."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay  # the round trip, added before every answer
        self.received: list[PushedMessage] = []  # what it took, in order
        self.refused: list[tuple[int, str]] = []  # the status and reason of each refusal
        self._subscribers: dict[str, Subscriber] = {}
        self._runner: web.AppRunner | None = None
        self._origin = ""

    @property
    def origin(self) -> str:
        return self._origin

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_post("/push/{token}", self._push)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self._origin = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- what a test asks of it -------------------------------------------------------------

    def subscribe(self, application_server_key: str | None = None) -> dict[str, Any]:
        """A new subscription, as a page's `PushSubscription.toJSON()` gives it. With
        `application_server_key`, pushes signed with another key are refused (403)."""
        token = secrets.token_urlsafe(24)
        subscriber = Subscriber(
            token=token,
            private_key=ec.generate_private_key(ec.SECP256R1()),
            auth=secrets.token_bytes(16),
            application_server_key=application_server_key,
        )
        self._subscribers[token] = subscriber
        return {
            "endpoint": f"{self._origin}/push/{token}",
            "expirationTime": None,
            "keys": {"p256dh": subscriber.p256dh, "auth": _b64url(subscriber.auth)},
        }

    def expire(self, subscription: dict[str, Any]) -> None:
        """The browser unsubscribed or the subscription lapsed: 410 Gone from now on."""
        self._subscriber(subscription).status = 410

    def forget(self, subscription: dict[str, Any]) -> None:
        """The service lost track of the subscription: 404 Not Found from now on."""
        self._subscriber(subscription).status = 404

    def fail(self, subscription: dict[str, Any], status: int = 500) -> None:
        """The service is in trouble for this subscription: this status from now on."""
        self._subscriber(subscription).status = status

    def messages_for(self, subscription: dict[str, Any]) -> list[PushedMessage]:
        token = self._subscriber(subscription).token
        return [message for message in self.received if message.token == token]

    def _subscriber(self, subscription: dict[str, Any]) -> Subscriber:
        return self._subscribers[urlsplit(subscription["endpoint"]).path.rsplit("/", 1)[1]]

    # --- the HTTP side ----------------------------------------------------------------------

    async def _push(self, request: web.Request) -> web.Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        try:
            message = await self._take(request)
        except RefusedError as refusal:
            self.refused.append((refusal.status, refusal.reason))
            return web.json_response(
                {"code": refusal.status, "error": refusal.reason}, status=refusal.status
            )
        self.received.append(message)
        return web.Response(
            status=201, headers={"Location": f"{self._origin}/message/{len(self.received)}"}
        )

    async def _take(self, request: web.Request) -> PushedMessage:
        subscriber = self._subscribers.get(request.match_info["token"])
        if subscriber is None:
            raise RefusedError(404, "no such subscription")
        if subscriber.status is not None:
            raise RefusedError(subscriber.status, "subscription unavailable")
        claims, public_key = self._authorised(request.headers.get("Authorization"))
        if (
            subscriber.application_server_key is not None
            and public_key != subscriber.application_server_key
        ):
            raise RefusedError(403, "the key does not match the subscription's")
        ttl_header = request.headers.get("TTL", "")
        if not ttl_header.isdigit():
            raise RefusedError(400, "TTL header missing or not a number")
        urgency = request.headers.get("Urgency")
        if urgency is not None and urgency not in URGENCIES:
            raise RefusedError(400, "unknown Urgency")
        if request.headers.get("Content-Encoding") != "aes128gcm":
            raise RefusedError(415, "only aes128gcm is accepted")
        body = await request.read()
        if len(body) > MAX_BODY:
            raise RefusedError(413, "payload too large")
        plaintext = subscriber.decrypt(body)
        try:
            payload = json.loads(plaintext.decode("utf-8"))
        except ValueError:
            payload = plaintext
        return PushedMessage(
            token=subscriber.token,
            payload=payload,
            ttl=int(ttl_header),
            urgency=urgency,
            topic=request.headers.get("Topic"),
            claims=claims,
            public_key=public_key,
        )

    def _authorised(self, header: str | None) -> tuple[dict[str, Any], str]:
        """The claims and key of a valid `vapid t=…, k=…` authorisation (RFC 8292)."""
        if header is None:
            raise RefusedError(401, "missing Authorization header")
        scheme, _, rest = header.partition(" ")
        if scheme.lower() != "vapid":
            raise RefusedError(401, "the authorisation scheme is not vapid")
        parameters: dict[str, str] = {}
        for part in rest.split(","):
            name, _, value = part.strip().partition("=")
            parameters[name.strip()] = value.strip()
        token, key = parameters.get("t"), parameters.get("k")
        if not token or not key or token.count(".") != 2:
            raise RefusedError(401, "the vapid authorisation needs t and k")
        try:
            public = ec.EllipticCurvePublicKey.from_encoded_point(
                ec.SECP256R1(), _b64url_decode(key)
            )
            header_part, claims_part, signature_part = token.split(".")
            jose = json.loads(_b64url_decode(header_part))
            claims = json.loads(_b64url_decode(claims_part))
            signature = _b64url_decode(signature_part)
        except ValueError as error:
            raise RefusedError(401, "unreadable vapid token or key") from error
        if not isinstance(jose, dict) or jose.get("alg") != "ES256" or len(signature) != 64:
            raise RefusedError(401, "the token is not signed with ES256")
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        try:
            public.verify(der, f"{header_part}.{claims_part}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as error:
            raise RefusedError(403, "the token's signature does not match k") from error
        if not isinstance(claims, dict):
            raise RefusedError(403, "the token's claims are not an object")
        now = time.time()
        expiry = claims.get("exp")
        if not isinstance(expiry, int) or not now < expiry <= now + MAX_TOKEN_LIFETIME:
            raise RefusedError(403, "exp must be in the future and within 24 hours")
        if claims.get("aud") != self._origin:
            raise RefusedError(403, "aud is not this push service's origin")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise RefusedError(403, "sub is missing")
        return claims, key

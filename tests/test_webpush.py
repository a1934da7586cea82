"""Web Push: our messages reach a push service encrypted and signed as browsers require, bad
subscriptions are refused at the door, and the service worker shows what arrives.

The push service is the local one of tests/push_service.py, which checks signatures and
decrypts with its own code; the service worker runs in a real Chromium, which is handed the
push through the DevTools protocol exactly where its push service would hand it over.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Browser, CDPSession, Page, expect
from playwright.async_api import Error as PlaywrightError
from py_vapid import Vapid02  # type: ignore[import-untyped]
from pywebpush import WebPushException, webpush_async  # type: ignore[import-untyped]
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.webpush import (
    MAX_PAYLOAD_BYTES,
    SECRET_NAME,
    PublicAddressesOnly,
    PushOutcome,
    Subscription,
    VapidKeys,
    WebPush,
    fit_payload,
    notification,
    parse_subscription,
    vapid_keys,
)
from storage import db
from storage.models import AppSecret
from storage.queries import push as stored_push
from tests.browser import (
    browser_fixture,  # noqa: F401 (the `browser` fixture)
    console_errors,
    new_page,
)
from tests.push_service import PushService

STATIC = Path(__file__).resolve().parents[1] / "bot" / "channels" / "static"
SUBJECT = "mailto:conseil@example.org"
MESSAGE = {
    "title": "Conseil citoyen Quartier Nord",
    "body": "Réunion jeudi à 18 h, salle des fêtes. Venez nombreux !",
    "id": 42,
    "url": "/?m=42",
    "lang": "fr",
    "dir": "ltr",
    "tag": "m42",
}


@pytest.fixture
async def service() -> AsyncIterator[PushService]:
    running = PushService()
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
def keys() -> VapidKeys:
    return VapidKeys.generate()


@pytest.fixture
async def pusher(keys: VapidKeys) -> AsyncIterator[WebPush]:
    sender = WebPush(keys, SUBJECT, timeout=2.0, allow_loopback=True)
    await sender.start()
    yield sender
    await sender.close()


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = db.create_engine(database_url)
    yield db.session_factory(engine)
    await engine.dispose()


def checked(subscription: dict[str, Any]) -> Subscription:
    parsed = parse_subscription(subscription, allow_loopback=True)
    assert parsed is not None
    return parsed


# --- sending ------------------------------------------------------------------------------


async def test_a_message_arrives_decrypted_with_a_valid_vapid_signature(
    service: PushService, keys: VapidKeys, pusher: WebPush
) -> None:
    subscription = service.subscribe(application_server_key=keys.public_key)

    result = await pusher.send(checked(subscription), MESSAGE)

    assert result.outcome is PushOutcome.SENT and result.status == 201
    [message] = service.messages_for(subscription)
    assert message.payload == MESSAGE
    assert message.public_key == keys.public_key
    assert message.claims["aud"] == service.origin
    assert message.claims["sub"] == SUBJECT
    assert 11.9 * 3600 < message.claims["exp"] - time.time() <= 12 * 3600
    assert (message.ttl, message.urgency, message.topic) == (24 * 3600, "normal", "m42")
    assert service.refused == []


async def test_a_push_signed_with_another_key_is_refused_by_the_service(
    service: PushService, pusher: WebPush
) -> None:
    """The service compares the signing key with the one the browser subscribed with."""
    subscription = service.subscribe(application_server_key=VapidKeys.generate().public_key)

    result = await pusher.send(checked(subscription), MESSAGE)

    assert (result.outcome, result.status) == (PushOutcome.FAILED, 403)
    assert service.messages_for(subscription) == []


async def test_a_long_message_is_cut_at_a_word_to_fit(
    service: PushService, pusher: WebPush
) -> None:
    subscription = service.subscribe()
    words = "Les habitants de la rue des Tilleuls proposent un jardin partagé. " * 100
    arabic = "يقترح سكان شارع الزيزفون حديقة مشتركة. " * 100

    for body in (words, arabic, "\u00e9" * 10_000, '"\\' * 5000):
        result = await pusher.send(checked(subscription), {**MESSAGE, "body": body})
        assert result.outcome is PushOutcome.SENT

    messages = service.messages_for(subscription)
    assert len(messages) == 4
    for message, body in zip(messages, (words, arabic), strict=False):
        sent = message.payload["body"]
        assert sent.endswith("…") and body.startswith(sent[:-1])
        assert body[len(sent) - 1] == " "  # cut between two words
    for message in messages:
        size = len(json.dumps(message.payload, ensure_ascii=False, separators=(",", ":")).encode())
        assert MAX_PAYLOAD_BYTES - 20 < size <= MAX_PAYLOAD_BYTES
        assert message.payload["title"] == MESSAGE["title"]


def test_a_payload_that_cannot_be_cut_does_not_fit() -> None:
    assert fit_payload({**MESSAGE, "url": "/" + "x" * 5000}) is None
    assert fit_payload({"title": "t" * 1000}) == '{"title":"%s…"}'.encode() % (b"t" * 119)


@pytest.mark.parametrize(("tell", "status"), [("expire", 410), ("forget", 404)])
async def test_a_subscription_the_service_no_longer_knows_is_gone(
    service: PushService, pusher: WebPush, tell: str, status: int
) -> None:
    subscription = service.subscribe()
    getattr(service, tell)(subscription)

    result = await pusher.send(checked(subscription), MESSAGE)

    assert (result.outcome, result.status) == (PushOutcome.GONE, status)


async def test_a_service_in_trouble_is_a_failure_logged_in_one_line(
    service: PushService, pusher: WebPush, caplog: pytest.LogCaptureFixture
) -> None:
    subscription = service.subscribe()
    service.fail(subscription, 500)

    with caplog.at_level(logging.WARNING, logger="bot.channels.webpush"):
        result = await pusher.send(checked(subscription), MESSAGE)

    assert (result.outcome, result.status) == (PushOutcome.FAILED, 500)
    [line] = [record.getMessage() for record in caplog.records]
    assert line == f"web push to {service.origin} failed: HTTP 500"
    assert "\n" not in line and "/push/" not in line  # the endpoint is a secret of sorts


async def test_a_closed_port_is_a_failure_not_an_exception(
    service: PushService, pusher: WebPush
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subscription = {**service.subscribe(), "endpoint": f"http://127.0.0.1:{port}/push/x"}

    result = await pusher.send(checked(subscription), MESSAGE)

    assert result.outcome is PushOutcome.FAILED and result.status is None
    assert result.error == "ClientConnectorError"


async def test_a_slow_service_is_a_failure_after_the_timeout(
    service: PushService, keys: VapidKeys
) -> None:
    service.delay = 1.0
    subscription = service.subscribe()
    sender = WebPush(keys, SUBJECT, timeout=0.2, allow_loopback=True)
    await sender.start()
    try:
        started = time.monotonic()
        result = await sender.send(checked(subscription), MESSAGE)
    finally:
        await sender.close()

    assert result.outcome is PushOutcome.FAILED and result.error == "timeout"
    assert time.monotonic() - started < 0.9


async def test_sends_share_one_session_and_run_concurrently(
    service: PushService, pusher: WebPush
) -> None:
    service.delay = 0.2
    subscriptions = [service.subscribe() for _ in range(20)]

    started = time.monotonic()
    results = await asyncio.gather(*(pusher.send(checked(s), MESSAGE) for s in subscriptions))

    assert {result.outcome for result in results} == {PushOutcome.SENT}
    assert time.monotonic() - started < 2.0
    assert len(service.received) == 20


async def test_a_chat_is_told_on_every_browser_and_gone_ones_are_forgotten(
    service: PushService,
    pusher: WebPush,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    phone, laptop, old_tablet, bobs = (service.subscribe() for _ in range(4))
    service.expire(old_tablet)
    async with db.session_scope(sessions) as session:
        for chat_id, data in (
            ("alice", phone),
            ("alice", laptop),
            ("alice", old_tablet),
            ("bob", bobs),
        ):
            parsed = checked(data)
            await stored_push.subscribe(
                session, chat_id, parsed.endpoint, parsed.p256dh, parsed.auth
            )
    payload = notification("Coup de pouce", "Un nouvel appel à talents", 7, "fr", rtl=False)

    results = await pusher.notify_chat(sessions, "alice", payload)

    assert sorted(result.outcome for result in results) == ["gone", "sent", "sent"]
    assert [m.payload for m in service.messages_for(phone)] == [payload]
    assert [m.payload for m in service.messages_for(laptop)] == [payload]
    assert service.messages_for(bobs) == []
    async with db.session_scope(sessions) as session:
        left = await stored_push.subscriptions_of(session, "alice")
        assert {row.endpoint for row in left} == {phone["endpoint"], laptop["endpoint"]}
        assert len(await stored_push.subscriptions_of(session, "bob")) == 1
    assert await pusher.notify_chat(sessions, "nobody", payload) == []


async def test_the_local_push_service_refuses_what_real_ones_refuse(
    service: PushService, keys: VapidKeys
) -> None:
    """Its checks are what makes the tests above mean something."""
    subscription = service.subscribe()

    async def status(claims: dict[str, Any] | None) -> tuple[int, Any]:
        try:
            await webpush_async(
                subscription,
                data="{}",
                vapid_private_key=Vapid02(keys.private_key, conf={"no-strict": True}),
                vapid_claims=claims,
                ttl=60,
            )
        except WebPushException as error:
            return error.status_code, await error.response.json()
        return 201, None

    now = int(time.time())
    assert await status(None) == (401, {"code": 401, "error": "missing Authorization header"})
    for claims in (
        {"sub": SUBJECT, "aud": "https://fcm.googleapis.com", "exp": now + 3600},
        {"sub": SUBJECT, "aud": service.origin, "exp": now + 25 * 3600},
        {"sub": "", "aud": service.origin, "exp": now + 3600},
    ):
        assert (await status(claims))[0] == 403, claims
    assert await status({"sub": SUBJECT, "aud": service.origin, "exp": now + 3600}) == (201, None)
    assert len(service.messages_for(subscription)) == 1


async def test_nothing_is_posted_to_our_own_network_unless_the_bot_runs_there(
    service: PushService, keys: VapidKeys
) -> None:
    """A subscription row made under other rules, or a public name pointing at a private
    address: the sender checks the endpoint again and the addresses it connects to."""
    subscription = service.subscribe()
    sender = WebPush(keys, SUBJECT)
    await sender.start()
    try:
        result = await sender.send(checked(subscription), MESSAGE)
    finally:
        await sender.close()
    assert (result.outcome, result.error) == (PushOutcome.FAILED, "endpoint refused")
    assert service.received == []

    with pytest.raises(OSError, match="no public address"):
        await PublicAddressesOnly().resolve("localhost", 443)
    assert await PublicAddressesOnly(allow_loopback=True).resolve("localhost", 443)


def test_the_subject_is_a_mailto_address_or_a_url(keys: VapidKeys) -> None:
    WebPush(keys, "https://conseil.example.org/")
    WebPush(keys, "http://127.0.0.1:8080")
    for subject in ("conseil@example.org", "mailto:", "ftp://example.org", ""):
        with pytest.raises(ValueError, match="subject"):
            WebPush(keys, subject)


# --- keys ---------------------------------------------------------------------------------


async def test_vapid_keys_are_made_once_and_kept(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with db.session_scope(sessions) as session:
        first = await vapid_keys(session)
    async with db.session_scope(sessions) as session:
        second = await vapid_keys(session)
        stored = await session.scalar(
            select(func.count()).select_from(AppSecret).where(AppSecret.name == SECRET_NAME)
        )

    assert first.public_key == second.public_key
    assert stored == 1
    assert len(first.public_key) == 87  # base64url of a 65-byte uncompressed point
    assert (
        parse_subscription(
            {
                "endpoint": "https://push.example.org/x",
                "keys": {"p256dh": first.public_key, "auth": "A" * 22},
            }
        )
        is not None
    )  # a valid P-256 point


def test_every_stored_secret_makes_a_valid_key() -> None:
    """A secret above the curve's order (rare, but possible) still gives a key."""
    top = VapidKeys.from_secret("_" * 43)  # 2^256 - 1
    zero = VapidKeys.from_secret("A" * 43)
    assert top.public_key != zero.public_key
    with pytest.raises(ValueError, match="32 random bytes"):
        VapidKeys.from_secret("AAAA")


# --- subscriptions ------------------------------------------------------------------------


def browser_subscription(**changes: Any) -> dict[str, Any]:
    """A subscription as Chrome makes one, with some parts changed."""
    keys = VapidKeys.generate()  # any P-256 point will do as p256dh
    data: dict[str, Any] = {
        "endpoint": "https://fcm.googleapis.com/fcm/send/dXJ2aWV3OkFQQTkxYkVk",
        "expirationTime": None,
        "keys": {"p256dh": keys.public_key, "auth": "x7cS9qWbf_oS3v5Cb2Ytyw"},
    }
    keys_changes = changes.pop("keys", {})
    data.update(changes)
    data["keys"] = {**data["keys"], **keys_changes}
    return data


def test_a_browser_subscription_is_accepted_as_it_comes() -> None:
    data = browser_subscription()
    parsed = parse_subscription(data)
    assert parsed == Subscription(data["endpoint"], data["keys"]["p256dh"], data["keys"]["auth"])
    padded = browser_subscription(keys={"auth": "x7cS9qWbf_oS3v5Cb2Ytyw=="})
    assert parse_subscription(padded) is not None
    assert parse_subscription(padded).auth == "x7cS9qWbf_oS3v5Cb2Ytyw"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "data",
    [
        None,
        "https://fcm.googleapis.com/fcm/send/x",
        [],
        {},
        browser_subscription(endpoint=None),
        browser_subscription(endpoint=12),
        browser_subscription() | {"keys": None},
        browser_subscription(keys={"p256dh": None}),
        browser_subscription(keys={"auth": 16}),
        browser_subscription() | {"keys": ["p256dh", "auth"]},
    ],
    ids=[
        "null",
        "a string",
        "a list",
        "empty",
        "no endpoint",
        "endpoint a number",
        "keys null",
        "p256dh null",
        "auth a number",
        "keys a list",
    ],
)
def test_wrong_shapes_are_refused(data: object) -> None:
    assert parse_subscription(data, allow_loopback=True) is None


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://push.example.org/x",
        "ftp://push.example.org/x",
        "javascript:alert(1)",
        "https:///x",
        "https://user:secret@push.example.org/x",
        "https://push.example.org/x#fragment",
        "https://push.example.org:99999/x",
        "https://push.example.org/ x",
        "https://push.example.org/x\n",
        "https://push.exämple.org/x",
        "https://10.0.0.7/x",
        "https://169.254.169.254/latest/meta-data",
        "https://[fd00::1]/x",
        "https://intranet/x",
        "https://127.0.0.1/x",
        "https://127.1/x",
        "https://0x7f.1/x",
        "https://localhost./x",
        "https://chat.localhost/x",
        "https://[::ffff:127.0.0.1]/x",
        "http://127.0.0.1:8080/x",
        "https://push.example.org/" + "x" * 1000,
    ],
)
def test_endpoints_we_must_not_post_to_are_refused(endpoint: str) -> None:
    assert parse_subscription(browser_subscription(endpoint=endpoint)) is None


def test_loopback_endpoints_only_when_allowed() -> None:
    for endpoint in ("http://127.0.0.1:8080/push/x", "http://localhost:1/x", "http://[::1]/x"):
        data = browser_subscription(endpoint=endpoint)
        assert parse_subscription(data) is None
        assert parse_subscription(data, allow_loopback=True) is not None
    assert (
        parse_subscription(browser_subscription(endpoint="http://10.0.0.1/x"), allow_loopback=True)
        is None
    )


@pytest.mark.parametrize(
    "keys",
    [
        {"p256dh": "BA" + "A" * 84},  # 64 bytes
        {"p256dh": VapidKeys.generate().public_key + "AA"},  # 66 bytes
        {"p256dh": "BP" + "A" * 85},  # 65 bytes, a point not on the curve
        {"p256dh": "Aw" + VapidKeys.generate().public_key[2:]},  # does not start with 0x04
        {"p256dh": "B" * 10_000},
        {"p256dh": "BA+/" + "A" * 83},  # base64, not base64url
        {"auth": "x7cS9qWbf_oS3v5Cb2Yt"},  # 15 bytes
        {"auth": "x7cS9qWbf_oS3v5Cb2Ytyw" + "AA"},  # 17 bytes
        {"auth": "x7cS9qWbf_oS3v5Cb2Yt!w"},
        {"auth": "x7cS9qWbf_oS3v5Cb2Ytyw\n"},
        {"auth": ""},
        {"auth": "x" * 1_000_000},
    ],
)
def test_keys_of_the_wrong_size_or_alphabet_are_refused(keys: dict[str, str]) -> None:
    assert parse_subscription(browser_subscription(keys=keys)) is None


# --- storage ------------------------------------------------------------------------------


async def test_a_browser_subscribing_again_moves_to_the_new_chat(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    first = browser_subscription(endpoint="https://push.example.org/first")
    second = browser_subscription(endpoint="https://push.example.org/second")
    # The first browser subscribes again for Bob, with new keys.
    again = browser_subscription(endpoint="https://push.example.org/first")
    async with db.session_scope(sessions) as session:
        for chat_id, data in (("alice", first), ("alice", second), ("bob", again)):
            parsed = parse_subscription(data)
            assert parsed is not None
            await stored_push.subscribe(
                session, chat_id, parsed.endpoint, parsed.p256dh, parsed.auth
            )
    async with db.session_scope(sessions) as session:
        alices = await stored_push.subscriptions_of(session, "alice")
        bobs = await stored_push.subscriptions_of(session, "bob")

    assert [row.endpoint for row in alices] == [second["endpoint"]]
    assert [row.p256dh for row in bobs] == [again["keys"]["p256dh"]]
    assert [row.endpoint for row in bobs] == [first["endpoint"]]


async def test_unsubscribing_and_forgetting(sessions: async_sessionmaker[AsyncSession]) -> None:
    subscriptions = [browser_subscription(endpoint=f"https://push.example.org/{n}") for n in "abc"]
    async with db.session_scope(sessions) as session:
        for chat_id, data in zip(("alice", "alice", "bob"), subscriptions, strict=True):
            await stored_push.subscribe(
                session, chat_id, data["endpoint"], data["keys"]["p256dh"], data["keys"]["auth"]
            )
    async with db.session_scope(sessions) as session:
        # Bob's page cannot unsubscribe Alice's browser; the push service can say it is gone.
        assert not await stored_push.unsubscribe(session, "https://push.example.org/a", "bob")
        assert await stored_push.unsubscribe(session, "https://push.example.org/a")
        assert not await stored_push.unsubscribe(session, "https://push.example.org/a")
        assert await stored_push.forget_chat(session, "alice") == 1
        assert await stored_push.subscriptions_of(session, "alice") == []
        assert len(await stored_push.subscriptions_of(session, "bob")) == 1


async def test_a_broadcast_counts_who_will_only_see_it_in_the_web_chat(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    subscribed = [f"chat-{n}" for n in range(0, 1200, 3)]
    everyone = [f"chat-{n}" for n in range(1200)]
    async with db.session_scope(sessions) as session:
        for chat_id in subscribed:
            await stored_push.subscribe(
                session, chat_id, f"https://push.example.org/{chat_id}", "p", "a"
            )
        await stored_push.subscribe(session, "chat-0", "https://push.example.org/again", "p", "a")
    async with db.session_scope(sessions) as session:
        waiting = await stored_push.without_subscription(session, everyone)
        count = await stored_push.count_without_subscription(session, [*everyone, "chat-1"])

    assert waiting == set(everyone) - set(subscribed)
    assert count == 800


# --- in the browser -----------------------------------------------------------------------

CHAT_PAGE = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><title>Chat</title>
<link rel="manifest" href="/chat/manifest.webmanifest"></head>
<body><p id="status">chat</p>
<script>
window.registered = navigator.serviceWorker.register("/chat/sw.js", {scope: "/"})
  .then(() => navigator.serviceWorker.ready);
</script></body></html>"""


class Site:
    """The chat's origin as the bot will serve it: a page at / and the static files under
    /chat/, the worker allowed to control the whole site."""

    def __init__(self) -> None:
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._chat)
        app.router.add_static("/chat/", STATIC)
        app.on_response_prepare.append(self._headers)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _chat(self, request: web.Request) -> web.Response:
        return web.Response(text=CHAT_PAGE, content_type="text/html")

    async def _headers(self, request: web.Request, response: web.StreamResponse) -> None:
        if request.path == "/chat/sw.js":
            response.headers["Service-Worker-Allowed"] = "/"
            response.headers["Cache-Control"] = "no-cache"


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    running = Site()
    await running.start()
    yield running
    await running.stop()


async def active_registration(cdp: CDPSession, page: Page, scope: str) -> str:
    """The id Chromium gives the worker's registration (ServiceWorker domain events)."""
    registrations: dict[str, str] = {}
    activated: set[str] = set()
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda event: registrations.update(
            {r["scopeURL"]: r["registrationId"] for r in event["registrations"]}
        ),
    )
    cdp.on(
        "ServiceWorker.workerVersionUpdated",
        lambda event: activated.update(
            v["registrationId"] for v in event["versions"] if v["status"] == "activated"
        ),
    )
    await cdp.send("ServiceWorker.enable")
    await page.evaluate("window.registered.then(() => true)")
    for _ in range(100):
        if registrations.get(scope) in activated:
            return registrations[scope]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no active service worker for {scope}: {registrations}")


async def notifications(page: Page) -> list[dict[str, Any]]:
    """The notifications the page's service worker shows. The offline page reloads itself
    once the server answers, which can land while it is asked: it is asked again."""
    for _ in range(5):
        try:
            result: list[dict[str, Any]] = await page.evaluate(
                """navigator.serviceWorker.ready
                .then((registration) => registration.getNotifications())
                .then((shown) => shown.map((n) => ({title: n.title, body: n.body, tag: n.tag,
                                                   lang: n.lang, dir: n.dir, data: n.data})))"""
            )
            return result
        except PlaywrightError as error:
            if "context was destroyed" not in error.message:
                raise
            await page.wait_for_load_state()
    raise AssertionError("the page kept navigating while its notifications were asked for")


async def shown(page: Page, count: int) -> list[dict[str, Any]]:
    for _ in range(100):
        found = await notifications(page)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    return await notifications(page)


async def test_the_service_worker_shows_a_push_and_the_offline_page(
    browser: Browser, site: Site
) -> None:
    page = await new_page(browser, "fr-FR")
    await page.context.grant_permissions(["notifications"], origin=site.origin)
    cdp = await page.context.new_cdp_session(page)
    await page.goto(site.origin + "/")
    registration = await active_registration(cdp, page, site.origin + "/")

    async def deliver(message: dict[str, Any]) -> None:
        await cdp.send(
            "ServiceWorker.deliverPushMessage",
            {"origin": site.origin, "registrationId": registration, "data": json.dumps(message)},
        )

    await deliver(MESSAGE)
    [first] = await shown(page, 1)
    assert first == {
        "title": MESSAGE["title"],
        "body": MESSAGE["body"],
        "tag": "m42",
        "lang": "fr",
        "dir": "ltr",
        "data": {"id": 42, "url": site.origin + "/?m=42"},
    }

    # The same message pushed again replaces its notification; another one is added.
    await deliver({**MESSAGE, "body": "Réunion déplacée à 19 h."})
    await deliver(notification("مجلس الحي", "اجتماع يوم الخميس", 43, "ar", rtl=True))
    await deliver({**MESSAGE, "id": 44, "tag": "m44", "url": "https://elsewhere.example/"})
    found = {n["tag"]: n for n in await shown(page, 3)}
    assert found["m42"]["body"] == "Réunion déplacée à 19 h."
    assert (found["m43"]["title"], found["m43"]["dir"], found["m43"]["lang"]) == (
        "مجلس الحي",
        "rtl",
        "ar",
    )
    assert found["m43"]["data"] == {"id": 43, "url": site.origin + "/?m=43"}
    assert found["m44"]["data"]["url"] == site.origin + "/"  # never another site
    assert len(await notifications(page)) == 3
    assert console_errors(page) == []

    # The server goes away: the worker answers the chat's address with the offline page.
    await site.stop()
    await page.reload()
    await expect(page.get_by_role("heading", name="You are offline")).to_be_visible()
    await expect(page.locator("section[lang=ar]")).to_have_attribute("dir", "rtl")
    assert await page.title() == "Hors connexion · Offline · غير متصل"

    # It comes back: the offline page notices and reloads the chat by itself.
    await site.start()
    await expect(page.locator("#status")).to_have_text("chat", timeout=8000)
    assert page.url == site.origin + "/"

"""Web Push for web chat residents: the council's messages are announced on their browsers,
in their language, through the dispatcher; expired subscriptions go; nothing is lost; and a
broadcast's report counts those only the chat itself will show it to."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser as Chromium
from playwright.async_api import expect
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import CoupDePouce
from flows.broadcasts import service as broadcasts
from flows.engine import Notice, NoticeKind, Reply
from flows.i18n import Translator
from storage.models import Council, PushSubscription
from tests.browser import (
    browser_fixture,  # noqa: F401 (the `browser` fixture)
    console_errors,
    new_page,
    screenshot,
)
from tests.conftest import StartBot, in_transaction
from tests.emulator import BotApiEmulator
from tests.helpers import AR, FR
from tests.push_service import PushService
from tests.test_broadcast import FAST, until_finished
from tests.test_browser_resident import tap
from tests.test_webchat import Browser, onboard_on_the_web
from tests.test_webpush import active_registration, shown

COUNCIL_NAME = "Conseil citoyen Quartier Nord"


@pytest.fixture
async def push_service() -> AsyncIterator[PushService]:
    service = PushService(delay=0.05)  # a push service is a round trip away
    await service.start()
    yield service
    await service.stop()


def festival(t: Translator) -> Reply:
    notice = Notice(NoticeKind.MEETING, t.locale, council=COUNCIL_NAME, title="Fête de quartier")
    return Reply(t._("Hello! Send /help to see what I can do."), notice=notice)


async def announce(app: CoupDePouce, council: Council, report_chat: int) -> int:
    async def start(session: AsyncSession) -> int:
        stored = await session.get_one(Council, council.id)
        broadcast = await broadcasts.start_broadcast(
            session,
            council=stored,
            kind="test",
            audience=broadcasts.members(stored),
            render=festival,
            report_to=broadcasts.ReportTo("telegram", str(report_chat), "en"),
        )
        return broadcast.id

    broadcast_id: int = await in_transaction(app, start)
    app.dispatcher.wake()
    return broadcast_id


async def subscriptions(app: CoupDePouce) -> int:
    async def count(session: AsyncSession) -> int:
        return int(await session.scalar(select(func.count()).select_from(PushSubscription)) or 0)

    return int(await in_transaction(app, count))


async def test_the_councils_messages_are_announced_and_the_report_counts_the_rest(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council, push_service: PushService
) -> None:
    coordinator = emulator.resident(12_999, language_code="en")
    bot = await start_bot(limits=FAST)
    notified, reading, away = Browser(bot, "fr-FR"), Browser(bot, "ar"), Browser(bot, "fr-FR")
    subscription = push_service.subscribe()
    try:
        for browser, t in ((notified, FR), (reading, AR), (away, FR)):
            await browser.open_page()
            async with browser.connect() as socket:
                await onboard_on_the_web(browser, socket, t)
                if browser is notified:
                    answer = await browser.say(
                        socket, {"type": "subscribe", "subscription": subscription}
                    )
                    assert answer == {"type": "subscribed"}
        async with reading.connect() as socket:
            first = await announce(bot, council, coordinator.id)
            live = await socket.receive_json(timeout=10)
            assert live["type"] == "message" and live["dir"] == "rtl"
            await until_finished(bot, first)

        # The browser that accepted notifications was told, in French, with the council's
        # name and the message's id (a tap opens the chat there).
        [pushed] = push_service.messages_for(subscription)
        async with notified.connect():
            [waiting] = notified.waiting()  # …and the message waits in the chat all the same
        assert pushed.payload == {
            "title": COUNCIL_NAME,
            "body": FR._("New invitation: {title}").format(title="Fête de quartier"),
            "id": waiting["id"],
            "url": f"/?m={waiting['id']}",
            "lang": "fr",
            "dir": "ltr",
            "tag": f"m{waiting['id']}",
        }
        assert pushed.claims["aud"] == push_service.origin and pushed.ttl > 0

        # Only the resident with neither an open page nor notifications waits unannounced.
        report = await coordinator.wait_for(lambda m: (m.text or "").startswith("Done"))
        assert report.text == (
            "Done: sent 3 of 3. — 1 waiting in the web chat (no notification possible)"
        )

        # The browser unsubscribed meanwhile (410): the subscription goes, the message stays.
        push_service.expire(subscription)
        second = await announce(bot, council, coordinator.id)
        await until_finished(bot, second)
        assert await subscriptions(bot) == 0
        async with notified.connect():
            assert len(notified.waiting()) == 2
        report = await coordinator.wait_for(
            lambda m: (m.text or "").startswith("Done") and m.message_id != report.message_id
        )
        assert report.text == (
            "Done: sent 3 of 3. — 3 waiting in the web chat (no notification possible)"
        )
    finally:
        for browser in (notified, reading, away):
            await browser.close()


async def test_a_subscription_is_checked_and_forget_takes_it(
    bot: CoupDePouce, council: Council, push_service: PushService
) -> None:
    browser = Browser(bot)
    try:
        await browser.open_page()
        async with browser.connect() as socket:
            await onboard_on_the_web(browser, socket)
            good = push_service.subscribe()
            for bad in (
                {"endpoint": "https://10.0.0.1/push", "keys": good["keys"]},  # our network
                {"endpoint": good["endpoint"], "keys": {"p256dh": "x", "auth": "y"}},
                "not a subscription",
                {"endpoint": "x" * 5000, "keys": good["keys"]},
            ):
                answer = await browser.say(socket, {"type": "subscribe", "subscription": bad})
                assert answer == {"type": "error", "error": "subscription refused"}
            assert await subscriptions(bot) == 0
            await browser.say(socket, {"type": "subscribe", "subscription": good})
            assert await subscriptions(bot) == 1
            question = await browser.say(socket, {"type": "text", "text": "/forget"})
            [erase] = [
                c
                for r in question["replies"]
                for row in r["choices"]
                for c in row
                if c["label"] == FR._("Yes, erase everything")
            ]
            await browser.say(socket, {"type": "choice", "data": erase["data"]})
        assert await subscriptions(bot) == 0
    finally:
        await browser.close()


async def test_a_resident_accepts_notifications_and_one_arrives(
    start_bot: StartBot,
    emulator: BotApiEmulator,
    council: Council,
    browser: Chromium,
    push_service: PushService,
) -> None:
    """In Chromium: the page offers notifications once joined; accepted, a council message is
    pushed (encrypted, signed), handed to the page's service worker, shown as a notification
    in French, and its address opens the chat at that message."""
    coordinator = emulator.resident(12_999, language_code="en")
    bot = await start_bot(limits=FAST)
    origin = f"http://127.0.0.1:{bot.port}"
    page = await new_page(browser, "fr-FR")
    cdp = await page.context.new_cdp_session(page)
    await page.goto(f"{origin}/?start=quartier-nord")
    offer = page.get_by_role("region", name=FR._("Notifications"))
    await expect(offer).to_be_hidden()  # not before joining
    await tap(page, FR._("✅ Yes, I agree"))
    await expect(offer).to_be_visible()
    await expect(offer).to_contain_text(
        FR._("Be told when your council writes to you, even with this page closed?")
    )
    await screenshot(page, "webchat-notifications-offer")
    await page.context.grant_permissions(["notifications"], origin=origin)  # the browser's "Allow"
    await offer.get_by_role("button", name=FR._("Yes, notify me")).click()
    await expect(offer).to_be_hidden()

    # Chromium's own push service is on the internet; this browser subscribes through the
    # test's local one instead, over the page's socket as the page does.
    subscription = push_service.subscribe()
    await page.evaluate(
        """subscription => new Promise((resolve, reject) => {
            const socket = new WebSocket(`ws://${location.host}/chat/ws`);
            socket.onmessage = (event) => {
                const data = JSON.parse(event.data);
                if (data.type === "history") {
                    socket.send(JSON.stringify({type: "subscribe", subscription}));
                } else if (data.type === "subscribed") { socket.close(); resolve(true); }
                else { reject(new Error(event.data)); }
            };
        })""",
        subscription,
    )
    registration = await active_registration_of(cdp, page, origin)
    await page.goto("about:blank")  # the resident leaves the page
    broadcast = await announce(bot, council, coordinator.id)
    await until_finished(bot, broadcast)
    [pushed] = push_service.messages_for(subscription)

    # What the push service carries is handed to the browser, as the push service would.
    await page.goto(f"{origin}/chat/offline.html")
    await cdp.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": origin, "registrationId": registration, "data": json.dumps(pushed.payload)},
    )
    [shown_notification] = await shown(page, 1)
    message_id = pushed.payload["id"]
    assert shown_notification["title"] == COUNCIL_NAME
    assert shown_notification["body"] == FR._("New invitation: {title}").format(
        title="Fête de quartier"
    )
    assert shown_notification["data"] == {"id": message_id, "url": f"{origin}/?m={message_id}"}

    # Its address opens the chat at the message.
    await page.goto(shown_notification["data"]["url"])
    message = page.locator(f'[data-message="{message_id}"]')
    await expect(message).to_have_class("bubble bot revealed")
    await expect(message).to_be_in_viewport()
    await expect(message).to_contain_text(FR._("Hello! Send /help to see what I can do.")[:6])
    assert "m=" not in page.url
    # Chromium says it cannot reach its push service from a private (test) profile.
    assert [e for e in console_errors(page) if "Push API in incognito" not in e] == []


async def active_registration_of(cdp: Any, page: Any, origin: str) -> str:
    """The chat page's service worker registration, once active."""
    await page.evaluate("window.registered = navigator.serviceWorker.ready")
    for _ in range(3):
        try:
            return await active_registration(cdp, page, origin + "/")
        except AssertionError:
            await asyncio.sleep(0.5)
    return await active_registration(cdp, page, origin + "/")

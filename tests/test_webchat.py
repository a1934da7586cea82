"""The same flows in the browser chat: a signed cookie identifies the person."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import CoupDePouce
from bot.channels.webchat import COOKIE
from flows.i18n import Translator
from storage.models import Council, Identity, OutboxMessage, OutboxStatus, Role, WebMessage
from storage.queries import people
from tests.conftest import StartBot, in_transaction
from tests.helpers import AR, EN, FR
from tests.test_broadcast import FAST, broadcast_to_members


class Browser:
    """A browser tab on the chat page: keeps its cookie, talks over the WebSocket."""

    def __init__(self, app: CoupDePouce, language: str = "fr") -> None:
        self.base = f"http://127.0.0.1:{app.port}"
        self.language = language
        self.client = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Accept-Language": language}
        )

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
        """The page's socket, once it has given the kept conversation (`self.history`)."""
        async with self.client.ws_connect(f"{self.base}/chat/ws") as socket:
            history = await socket.receive_json(timeout=5)
            assert history["type"] == "history"
            self.history: list[dict[str, Any]] = history["messages"]
            yield socket

    def waiting(self) -> list[dict[str, Any]]:
        """The council's messages the history gave that no page has shown yet."""
        return [message for message in self.history if message["waiting"]]

    async def open_page(self) -> str:
        async with self.client.get(f"{self.base}/") as response:
            assert response.status == 200
            return await response.text()

    async def say(
        self, socket: aiohttp.ClientWebSocketResponse, message: dict[str, Any]
    ) -> dict[str, Any]:
        await socket.send_json(message)
        answer: dict[str, Any] = await socket.receive_json(timeout=5)
        return answer

    async def close(self) -> None:
        await self.client.close()


async def test_a_resident_onboards_in_the_web_chat(bot: CoupDePouce, council: Council) -> None:
    browser = Browser(bot, "fr-FR")
    try:
        page = await browser.open_page()
        assert '<html lang="fr" dir="ltr">' in page
        async with browser.connect() as socket:
            consent = await browser.say(socket, {"type": "text", "text": "/start quartier-nord"})
            [reply] = consent["replies"]
            assert FR._("Do you agree?") in reply["text"]
            yes = next(
                c for row in reply["choices"] for c in row if c["label"] == FR._("✅ Yes, I agree")
            )
            welcome = await browser.say(socket, {"type": "choice", "data": yes["data"]})
            assert welcome["clear_buttons"] is True
            assert "Conseil citoyen Quartier Nord" in welcome["replies"][0]["text"]
            mydata = await browser.say(socket, {"type": "text", "text": "/mydata"})
            assert mydata["replies"][0]["attachment"]["filename"] == "mydata.json"
    finally:
        await browser.close()

    async def web_identities(session: AsyncSession) -> list[str]:
        return list(await session.scalars(select(Identity.channel)))

    assert await in_transaction(bot, web_identities) == ["web"]


async def test_arabic_page_is_right_to_left(bot: CoupDePouce, council: Council) -> None:
    browser = Browser(bot, "ar")
    try:
        page = await browser.open_page()
        assert '<html lang="ar" dir="rtl">' in page
        async with browser.connect() as socket:
            outcome = await browser.say(socket, {"type": "text", "text": "/start quartier-nord"})
            assert outcome["dir"] == "rtl"
    finally:
        await browser.close()


async def test_no_cookie_or_a_forged_one_is_refused(bot: CoupDePouce) -> None:
    base = f"http://127.0.0.1:{bot.port}"
    for cookie in (None, "someone-else.0123456789abcdef0123456789abcdef"):
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as client:
            if cookie is not None:
                jar.update_cookies({COOKIE: cookie})
            async with client.ws_connect(f"{base}/chat/ws") as socket:
                message = await socket.receive(timeout=5)
                assert message.type == aiohttp.WSMsgType.CLOSE
                assert socket.close_code == 4401


async def test_unreadable_messages_change_nothing(bot: CoupDePouce, council: Council) -> None:
    browser = Browser(bot)
    try:
        await browser.open_page()
        async with browser.connect() as socket:
            await socket.send_str("not json")
            assert (await socket.receive_json(timeout=5))["type"] == "error"
            answer = await browser.say(socket, {"type": "choice", "data": "c:7:yes"})
            assert answer["toast"] == FR._("This button has expired.")
            answer = await browser.say(socket, {"type": "text", "text": "bonjour"})
            assert "/start" in answer["replies"][0]["text"]
    finally:
        await browser.close()


async def make_web_organiser(app: CoupDePouce, council: Council) -> None:
    """The one web chat member becomes an organiser of the council."""

    async def grant(session: AsyncSession) -> None:
        web_id = await session.scalar(select(Identity.external_id).where(Identity.channel == "web"))
        assert web_id is not None
        stored = await session.get_one(Council, council.id)
        await people.grant_role(session, stored, "web", web_id, Role.ORGANISER)

    await in_transaction(app, grant)


async def onboard_on_the_web(
    browser: Browser, socket: aiohttp.ClientWebSocketResponse, t: Translator = FR
) -> None:
    consent = await browser.say(socket, {"type": "text", "text": "/start quartier-nord"})
    [reply] = consent["replies"]
    yes = next(c for row in reply["choices"] for c in row if c["label"] == t._("✅ Yes, I agree"))
    await browser.say(socket, {"type": "choice", "data": yes["data"]})


async def test_council_messages_wait_in_the_mailbox_until_the_page_takes_them(
    start_bot: StartBot, council: Council
) -> None:
    bot = await start_bot(limits=FAST)
    browser = Browser(bot, "fr-FR")
    try:
        await browser.open_page()
        async with browser.connect() as socket:
            await onboard_on_the_web(browser, socket)
        # The page is closed: the council's message waits.
        broadcast = await broadcast_to_members(bot, council)
        await eventually(lambda: sent(bot, broadcast))
        async with browser.connect() as socket:
            [waiting] = browser.waiting()
            assert waiting["type"] == "message" and waiting["author"] == "bot"
            assert waiting["text"] == FR._("Hello! Send /help to see what I can do.")
            assert waiting["dir"] == "ltr"
        # Not acknowledged (the page went before showing it): sent again, then taken.
        async with browser.connect() as socket:
            [again] = browser.waiting()
            assert again["id"] == waiting["id"]
            await socket.send_json({"type": "ack", "id": again["id"]})
            answer = await browser.say(socket, {"type": "text", "text": "/help"})
            assert answer["type"] == "outcome"  # nothing else was waiting before it
        async with browser.connect() as socket:
            assert browser.waiting() == []  # shown: it no longer waits, and stays in the history
            assert waiting["id"] in [message["id"] for message in browser.history]
            answer = await browser.say(socket, {"type": "text", "text": "/help"})
            assert answer["type"] == "outcome"
        # Connected: the next one arrives at once.
        async with browser.connect() as socket:
            await broadcast_to_members(bot, council)
            live = await socket.receive_json(timeout=10)
            assert live["type"] == "message" and live["id"] > waiting["id"]
    finally:
        await browser.close()


async def test_an_acknowledgement_only_takes_ones_own_messages(
    start_bot: StartBot, council: Council
) -> None:
    bot = await start_bot(limits=FAST)
    first, second = Browser(bot, "fr-FR"), Browser(bot, "ar")
    try:
        for browser in (first, second):
            await browser.open_page()
            async with browser.connect() as socket:
                await onboard_on_the_web(browser, socket, FR if browser is first else AR)
        broadcast = await broadcast_to_members(bot, council)
        await eventually(lambda: sent(bot, broadcast, expected=2))
        async with first.connect() as socket:
            [mine] = first.waiting()
            for forged in (mine["id"] + 1, mine["id"] - 1, "1", True, None):
                await socket.send_json({"type": "ack", "id": forged})
        async with second.connect() as socket:
            [theirs] = second.waiting()
            assert theirs["type"] == "message" and theirs["id"] != mine["id"]
            assert theirs["dir"] == "rtl"  # they chose Arabic in the page's language
    finally:
        await first.close()
        await second.close()


async def eventually(condition: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:  # noqa: ASYNC109
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "condition still unmet"
        await asyncio.sleep(0.05)


async def sent(app: CoupDePouce, broadcast_id: int, expected: int = 1) -> bool:
    async def count(session: AsyncSession) -> int:
        return len(
            list(
                await session.scalars(
                    select(OutboxMessage.id).where(
                        OutboxMessage.broadcast_id == broadcast_id,
                        OutboxMessage.status == OutboxStatus.SENT,
                    )
                )
            )
        )

    return bool(await in_transaction(app, count) >= expected)


async def test_a_very_long_message_gets_an_answer_and_the_question_stays(
    bot: CoupDePouce, council: Council
) -> None:
    browser = Browser(bot, "ar")
    try:
        await browser.open_page()
        async with browser.connect() as socket:
            consent = await browser.say(socket, {"type": "text", "text": "/start quartier-nord"})
            answer = await browser.say(socket, {"type": "text", "text": "ب" * 10_000})
            assert answer["type"] == "outcome" and answer["replies"]
            again = await browser.say(socket, {"type": "text", "text": "/start quartier-nord"})
            assert again["replies"][-1]["text"] == consent["replies"][-1]["text"]
    finally:
        await browser.close()


async def test_the_kept_conversation_is_in_mydata_and_goes_with_forget(
    bot: CoupDePouce, council: Council
) -> None:
    browser = Browser(bot, "fr-FR")
    try:
        await browser.open_page()
        async with browser.connect() as socket:
            assert browser.history == []
            await onboard_on_the_web(browser, socket)
            mydata = await browser.say(socket, {"type": "text", "text": "/mydata"})
            [file] = [r["attachment"] for r in mydata["replies"] if r.get("attachment")]
            document = json.loads(base64.b64decode(file["base64"]))
            kept = document["web_chat"]["messages"]
            assert [m["from"] for m in kept][:2] == ["you", "bot"]  # /start, the consent question
            welcome = FR._("Thank you! You are now a member of {council}.")
            assert any(welcome.split("{")[0] in m["text"] for m in kept if m["from"] == "bot")
        # A new visit shows it: what the person said, the answers, the file.
        async with browser.connect() as socket:
            authors = [message["author"] for message in browser.history]
            assert authors.count("me") == 2 and authors.count("bot") >= 3
            assert any(m.get("attachment") for m in browser.history)
            question = await browser.say(socket, {"type": "text", "text": "/forget"})
            [erase] = [
                c
                for r in question["replies"]
                for row in r["choices"]
                for c in row
                if c["label"] == FR._("Yes, erase everything")
            ]
            goodbye = await browser.say(
                socket,
                {"type": "choice", "data": erase["data"], "message": question["replies"][-1]["id"]},
            )
            assert goodbye["erased"] is True

        async def kept_rows(session: AsyncSession) -> int:
            return int(await session.scalar(select(func.count()).select_from(WebMessage)) or 0)

        assert await in_transaction(bot, kept_rows) == 0
        async with browser.connect():
            assert browser.history == []
    finally:
        await browser.close()


async def test_a_tap_redraws_or_spends_only_ones_own_messages(
    bot: CoupDePouce, council: Council
) -> None:
    first, second = Browser(bot, "fr-FR"), Browser(bot, "fr-FR")
    try:
        for browser in (first, second):
            await browser.open_page()
        async with first.connect() as socket:
            await onboard_on_the_web(first, socket)
            theirs = await first.say(socket, {"type": "text", "text": "/language"})
            their_id = theirs["replies"][-1]["id"]
        async with second.connect() as socket:
            consent = await second.say(socket, {"type": "text", "text": "/start quartier-nord"})
            yes = consent["replies"][-1]["choices"][0][0]
            # A tap that names the other person's message: answered, and theirs is untouched.
            answer = await second.say(
                socket, {"type": "choice", "data": yes["data"], "message": their_id}
            )
            assert "tapped" not in answer and "mine" not in answer
        async with first.connect():
            [kept] = [m for m in first.history if m["id"] == their_id]
            assert kept["spent"] is False and kept["choices"]
    finally:
        await first.close()
        await second.close()


async def test_a_long_conversation_gives_its_last_hundred_messages(
    bot: CoupDePouce, council: Council
) -> None:
    browser = Browser(bot)
    try:
        await browser.open_page()
        async with browser.connect() as socket:
            await onboard_on_the_web(browser, socket)
            for n in range(60):
                await browser.say(socket, {"type": "text", "text": f"/help {n}"})
        async with browser.connect():
            assert len(browser.history) == 100
            mine = [m["text"] for m in browser.history if m["author"] == "me"]
            assert mine == [f"/help {n}" for n in range(10, 60)]  # each asked, then answered
    finally:
        await browser.close()


async def test_a_very_long_message_is_kept_shortened(bot: CoupDePouce, council: Council) -> None:
    browser = Browser(bot)
    try:
        await browser.open_page()
        async with browser.connect() as socket:
            await onboard_on_the_web(browser, socket)
            await browser.say(socket, {"type": "text", "text": "é" * 10_000})
        async with browser.connect():
            kept = [m["text"] for m in browser.history if m["author"] == "me"]
            assert kept[-1] == "é" * 1999 + "…"
    finally:
        await browser.close()


async def test_a_text_over_the_limit_goes_back_to_the_box_and_the_question_stays(
    bot: CoupDePouce, council: Council
) -> None:
    browser = Browser(bot, "fr-FR")
    try:
        await browser.open_page()
        async with browser.connect() as socket:
            await onboard_on_the_web(browser, socket)
            asked = await browser.say(socket, {"type": "text", "text": "/verify"})
            question = asked["replies"][-1]["text"]
            answer = await browser.say(socket, {"type": "text", "text": "A" * 10_000})
            assert answer["given_back"] is True  # the page puts it back in the box
            assert "mine" not in answer
            said, again = answer["replies"]
            assert said["text"] == "C\u2019est 10\u202f000 caractères, pour 40 au plus."
            assert again["text"] == question
        async with browser.connect():
            assert "A" * 100 not in json.dumps(browser.history)  # nothing kept of it
    finally:
        await browser.close()


async def test_a_place_is_asked_with_the_browsers_position_not_the_messengers_menu(
    bot: CoupDePouce, council: Council
) -> None:
    browser = Browser(bot, "en")
    try:
        await browser.open_page()
        async with browser.connect() as socket:
            await onboard_on_the_web(browser, socket, EN)
            await make_web_organiser(bot, council)
            await browser.say(socket, {"type": "text", "text": "/meeting"})
            await browser.say(socket, {"type": "text", "text": "Conseil citoyen de décembre"})
            await browser.say(socket, {"type": "text", "text": "Budget participatif."})
            asked = await browser.say(socket, {"type": "text", "text": "3 rue des Lilas"})
            [where] = asked["replies"]
            assert where["text"] == "To show it on a map, share its location. Or skip."
            assert where["location"] is True  # the page offers a button for the position
            forged = await browser.say(socket, {"type": "location", "latitude": 91, "longitude": 0})
            assert forged == {"type": "error", "error": "unreadable message"}
            here = {"type": "location", "latitude": 48.85, "longitude": 2.35}
            day = await browser.say(socket, here)
            assert day["replies"][-1]["text"].startswith("Which day?")
    finally:
        await browser.close()

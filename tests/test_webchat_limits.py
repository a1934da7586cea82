"""The web chat against abuse: new chats per address, messages per page, open pages per
address, the sites that may open its socket, and the HTTPS proxy in front."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from bot.channels.webchat import COOKIE
from bot.settings import SettingsError, load_settings
from bot.web import HSTS
from storage.models import Council
from tests.conftest import StartBot
from tests.helpers import FR
from tests.test_webchat import Browser


async def fresh_visit(port: int, headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:
    """A first visit to the chat page, from a browser without a cookie."""
    jar = aiohttp.CookieJar(unsafe=True)
    url = f"http://127.0.0.1:{port}/"
    async with (
        aiohttp.ClientSession(cookie_jar=jar) as client,
        client.get(url, headers={"Accept-Language": "fr", **(headers or {})}) as response,
    ):
        await response.read()
        return response


async def test_new_chats_from_one_address_are_limited_and_members_still_come_in(
    start_bot: StartBot, council: Council
) -> None:
    bot = await start_bot(webchat_new_chats_per_hour=3)
    assert bot.port is not None
    member = Browser(bot)
    try:
        await member.open_page()
        for _ in range(2):
            assert (await fresh_visit(bot.port)).status == 200
        refused = await fresh_visit(bot.port)
        assert refused.status == 429
        assert refused.headers["Retry-After"] == "3600"
        assert COOKIE not in refused.cookies  # no new person can be made from it
        # Someone who already has their chat is not counted, nor refused.
        for _ in range(3):
            await member.open_page()
    finally:
        await member.close()


async def test_the_refusal_is_kind_and_in_the_visitors_language(
    start_bot: StartBot, council: Council
) -> None:
    bot = await start_bot(webchat_new_chats_per_hour=1)
    assert bot.port is not None
    await fresh_visit(bot.port)
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"http://127.0.0.1:{bot.port}/", headers={"Accept-Language": "fr"}) as response,
    ):
        assert response.status == 429
        page = await response.text()
    assert '<html lang="fr"' in page
    assert "Revenez dans une heure" in page


async def test_a_page_writing_too_fast_is_slowed_down_without_losing_anything(
    start_bot: StartBot, council: Council
) -> None:
    bot = await start_bot(webchat_messages_per_second=2, webchat_messages_per_minute=4)
    browser = Browser(bot)
    try:
        await browser.open_page()
        async with browser.connect() as socket:
            for _ in range(6):
                await socket.send_json({"type": "text", "text": "/help"})
            answers = [await socket.receive_json(timeout=5) for _ in range(6)]
            assert [bool(a.get("refused")) for a in answers] == [False, False] + [True] * 4
            # The reason is said once, in the person's language, not for every message.
            toasts = [a["toast"] for a in answers if a.get("refused") and a.get("toast")]
            assert toasts == [FR._("You are writing very fast. Wait a moment, then send it again.")]
            # After a pause the page is heard again, up to the minute's limit.
            await asyncio.sleep(1.1)
            answer = await browser.say(socket, {"type": "text", "text": "/help"})
            assert not answer.get("refused") and answer["replies"]
            answer = await browser.say(socket, {"type": "text", "text": "/help"})
            assert not answer.get("refused")
            await asyncio.sleep(1.1)
            answer = await browser.say(socket, {"type": "text", "text": "/help"})
            assert answer.get("refused") is True  # five in the minute
            # Acknowledging what was shown is not a message: never refused, never counted.
            await socket.send_json({"type": "ack", "id": 1})
        # Only what was answered was kept.
        async with browser.connect():
            mine = [m for m in browser.history if m["author"] == "me"]
            assert len(mine) == 4
    finally:
        await browser.close()


async def test_open_pages_from_one_address_are_limited(
    start_bot: StartBot, council: Council
) -> None:
    bot = await start_bot(webchat_sockets_per_address=2)
    browser = Browser(bot)
    try:
        await browser.open_page()
        async with browser.connect(), browser.connect():
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await browser.client.ws_connect(f"{browser.base}/chat/ws")
            assert refused.value.status == 429
        async with browser.connect():  # closed ones make room
            pass
    finally:
        await browser.close()


async def test_only_the_chats_own_site_and_the_embedding_sites_open_the_socket(
    start_bot: StartBot, council: Council
) -> None:
    embedding = "https://conseil-nord.example.fr"
    bot = await start_bot(webchat_origins=embedding)
    browser = Browser(bot)
    try:
        async with browser.client.get(f"{browser.base}/") as response:
            policy = response.headers["Content-Security-Policy"]
        assert f"frame-ancestors 'self' {embedding}" in policy
        own = f"http://127.0.0.1:{bot.port}"
        for origin in (own, embedding):
            async with browser.client.ws_connect(
                f"{browser.base}/chat/ws", headers={"Origin": origin}
            ) as socket:
                assert (await socket.receive_json(timeout=5))["type"] == "history"
        for foreign in (
            "https://evil.example",
            "null",
            f"http://127.0.0.1:{bot.port}.evil.example",
        ):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await browser.client.ws_connect(
                    f"{browser.base}/chat/ws", headers={"Origin": foreign}
                )
            assert refused.value.status == 403
    finally:
        await browser.close()


async def test_forwarded_headers_are_believed_from_the_trusted_proxy_only(
    start_bot: StartBot, council: Council
) -> None:
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    # Not behind a proxy: anyone could send these headers, so they change nothing.
    bot = await start_bot(trusted_proxy="10.1.2.3", webchat_new_chats_per_hour=1)
    assert bot.port is not None
    plain = await fresh_visit(bot.port, forwarded)
    assert not plain.cookies[COOKIE]["secure"]
    assert "Strict-Transport-Security" not in plain.headers
    # A forged X-Forwarded-For does not give a fresh quota either.
    assert (await fresh_visit(bot.port, {"X-Forwarded-For": "198.51.100.1"})).status == 429

    # Behind the proxy (here, this machine): HTTPS as the proxy says, with HSTS and Secure
    # cookies, and each resident's own address for the limits.
    bot = await start_bot(trusted_proxy="127.0.0.1/32", webchat_new_chats_per_hour=1)
    assert bot.port is not None
    secure = await fresh_visit(bot.port, forwarded)
    assert secure.status == 200
    cookie = secure.cookies[COOKIE]
    assert cookie["secure"] and cookie["samesite"] == "None"
    assert "; Partitioned" in secure.headers["Set-Cookie"]  # kept apart per embedding site
    assert secure.headers["Strict-Transport-Security"] == HSTS
    other = await fresh_visit(bot.port, {**forwarded, "X-Forwarded-For": "203.0.113.8"})
    assert other.status == 200
    again = await fresh_visit(bot.port, forwarded)
    assert again.status == 429
    nonsense = await fresh_visit(bot.port, {"X-Forwarded-For": "not an address"})
    assert nonsense.status == 400  # a proxy that sends nonsense is a misconfiguration
    async with (  # the proxy's own health check
        aiohttp.ClientSession() as client,
        client.get(f"http://127.0.0.1:{bot.port}/healthz") as health,
    ):
        assert health.status == 200


@pytest.mark.parametrize(
    ("name", "value"),
    [("TRUSTED_PROXY", "the-proxy"), ("WEBCHAT_ORIGINS", "conseil.example/chat")],
)
def test_a_bad_proxy_or_site_setting_stops_at_start(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as error:
        load_settings(database_url="sqlite+aiosqlite:///x.db")
    assert name in str(error.value) and "\n" not in str(error.value)


async def test_a_page_that_goes_mid_answer_leaves_no_traceback(
    start_bot: StartBot, council: Council, caplog: pytest.LogCaptureFixture
) -> None:
    bot = await start_bot(webchat_messages_per_second=100, webchat_messages_per_minute=1000)
    browser = Browser(bot)
    caplog.set_level(logging.INFO)
    try:
        await browser.open_page()
        for _ in range(3):
            socket = await browser.client.ws_connect(f"{browser.base}/chat/ws")
            for _ in range(30):
                await socket.send_json({"type": "text", "text": "/help"})
            # The page goes without a goodbye while its answers are being written.
            connection = socket._response.connection
            assert connection is not None and connection.transport is not None
            connection.transport.abort()
        await asyncio.sleep(1.0)
        async with browser.connect() as socket:  # the server is fine
            answer = await browser.say(socket, {"type": "text", "text": "/help"})
            assert answer["replies"]
    finally:
        await browser.close()
    troubles = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert troubles == [], [r.getMessage() for r in troubles]


async def test_a_flood_is_refused_cheaply_then_its_socket_closed(
    start_bot: StartBot, council: Council
) -> None:
    bot = await start_bot(webchat_messages_per_second=2, webchat_messages_per_minute=100)
    browser = Browser(bot)
    try:
        await browser.open_page()
        async with browser.connect() as socket:
            for _ in range(200):
                await socket.send_json({"type": "text", "text": "/help"})
            answers: list[dict[str, object]] = []
            while (message := await socket.receive(timeout=5)).type == aiohttp.WSMsgType.TEXT:
                answers.append(message.json())
            assert message.type == aiohttp.WSMsgType.CLOSE and socket.close_code == 4429
            refused = [a for a in answers if a.get("refused")]
            assert len(answers) - len(refused) == 2  # what the window allowed was answered
            assert len(refused) == 20  # then 20 refusals in a row, and the socket went
        # Only the two answered messages were kept; the page may come back.
        async with browser.connect():
            assert [m["text"] for m in browser.history if m["author"] == "me"] == ["/help"] * 2
    finally:
        await browser.close()


async def test_the_pages_of_one_address_share_a_limit_and_cannot_reopen_in_a_loop(
    start_bot: StartBot, council: Council
) -> None:
    bot = await start_bot(webchat_messages_per_address=3, webchat_sockets_per_minute=4)
    first, second = Browser(bot), Browser(bot)
    try:
        await first.open_page()
        await second.open_page()
        async with first.connect() as one, second.connect() as other:
            # Four messages at once from the two pages (sent before any answer, so that a
            # slow machine does not spread them over more than the limit's second).
            for socket in (one, other, one, other):
                await socket.send_json({"type": "text", "text": "/help"})
            answers = [await socket.receive_json(timeout=5) for socket in (one, one, other, other)]
            assert sorted(bool(a.get("refused")) for a in answers) == [False, False, False, True]
        async with first.connect(), first.connect():  # the third and fourth this minute
            pass
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await first.client.ws_connect(f"{first.base}/chat/ws")
        assert refused.value.status == 429
    finally:
        await first.close()
        await second.close()

"""Several processes on one PostgreSQL database, each holding some of the web chat's pages:
what one of them keeps for a person (the dispatcher's delivery, a report rewritten, a turn of
the conversation in another tab) shows at once, and once, on the pages another one holds;
whether a page is open anywhere is known to all; and the listening survives its connection
being killed. On SQLite, one process: the same pages, without any of it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import asyncpg
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from yarl import URL

from bot.app import CoupDePouce
from bot.channels.webchat import COOKIE
from flows.engine import Reply
from storage import db
from storage.models import Council, WebMessage
from storage.queries import webchat as conversation
from tests.conftest import POSTGRES_URL, StartBot, _pg_dsn, in_transaction, requires_postgres
from tests.test_broadcast import FAST, broadcast_to_members, until_finished
from tests.test_webchat import Browser, eventually, onboard_on_the_web

AT_ONCE = 1.0  # seconds: a message kept by one process is on another's page within this
QUIET = 0.5  # seconds of silence that show nothing more is coming


async def start_process(start_bot: StartBot) -> CoupDePouce:
    """One `web` process of the installation: the web chat, its own web server and port."""
    return await start_bot(limits=FAST, telegram_bot_token=None)


def chat_of(browser: Browser) -> str:
    """The chat id the browser's cookie holds."""
    [cookie] = [cookie for cookie in browser.client.cookie_jar if cookie.key == COOKIE]
    return cookie.value.rpartition(".")[0]


async def a_page_and_another_process(
    start_bot: StartBot,
) -> tuple[CoupDePouce, CoupDePouce, Browser, str]:
    """Two processes; a person's page loaded from the first (the second holds none): the
    page's process, the other, the browser and the person's chat id."""
    web, other = await start_process(start_bot), await start_process(start_bot)
    browser = Browser(web)
    await browser.open_page()
    return web, other, browser, chat_of(browser)


def same_person(browser: Browser, app: CoupDePouce) -> Browser:
    """Another tab of the person, its page served by `app` (a load balancer's choice)."""
    tab = Browser(app, browser.language)
    [cookie] = [cookie for cookie in browser.client.cookie_jar if cookie.key == COOKIE]
    tab.client.cookie_jar.update_cookies({COOKIE: cookie.value}, URL(tab.base))
    return tab


async def silent(socket: aiohttp.ClientWebSocketResponse, within: float = QUIET) -> bool:
    """Whether nothing more comes on the socket for a while."""
    try:
        message = await socket.receive_json(timeout=within)
    except TimeoutError:
        return True
    raise AssertionError(f"not expected: {message}")


async def received(socket: aiohttp.ClientWebSocketResponse, within: float = AT_ONCE) -> Any:
    return await socket.receive_json(timeout=within)


async def page_open(app: CoupDePouce, chat_id: str) -> bool:
    """Whether any process holds a page of the chat, as a delivery asks it."""

    async def ask(session: AsyncSession) -> bool:
        return bool(await session.scalar(select(app.webchat.relay.page_open(chat_id))))

    return bool(await in_transaction(app, ask)) or chat_id in app.webchat._sockets


async def test_a_delivered_message_shows_once_on_each_page_of_its_process(
    start_bot: StartBot, council: Council
) -> None:
    app = await start_process(start_bot)
    first = Browser(app)
    await first.open_page()
    second = same_person(first, app)
    chat_id = chat_of(first)
    try:
        async with first.connect() as one, second.connect() as other:
            delivery = await app.webchat.deliver(chat_id, Reply("Réunion jeudi à 18 h"))
            for socket in (one, other):
                message = await received(socket)
                assert message["type"] == "message" and message["text"] == "Réunion jeudi à 18 h"
                assert str(message["id"]) == delivery.message_id
            assert not delivery.unannounced  # a page is open
            assert await silent(one) and await silent(other)
            # On SQLite nothing else listens; on PostgreSQL this process listens, and skips
            # the notice it sent itself.
            assert app.webchat.relay.listening == app.webchat.relay.enabled
        await eventually(lambda: _closed(app, chat_id))
        delivery = await app.webchat.deliver(chat_id, Reply("Et vendredi"))
        assert delivery.unannounced  # no page, no notification: it waits
        async with first.connect():
            assert [m["text"] for m in first.waiting()] == ["Réunion jeudi à 18 h", "Et vendredi"]
    finally:
        await first.close()
        await second.close()


async def _closed(app: CoupDePouce, chat_id: str) -> bool:
    return not await page_open(app, chat_id)


@requires_postgres
async def test_a_message_delivered_by_another_process_shows_at_once_and_once(
    start_bot: StartBot, council: Council
) -> None:
    web, dispatcher, browser, chat_id = await a_page_and_another_process(start_bot)
    try:
        async with browser.connect() as socket:
            assert dispatcher.webchat.relay.backend_pid is None  # it holds no page: no listening
            started = asyncio.get_running_loop().time()
            delivery = await dispatcher.webchat.deliver(chat_id, Reply("Réunion jeudi à 18 h"))
            message = await received(socket)
            assert asyncio.get_running_loop().time() - started < AT_ONCE
            assert message["type"] == "message" and message["author"] == "bot"
            assert message["text"] == "Réunion jeudi à 18 h" and message["waiting"] is True
            assert str(message["id"]) == delivery.message_id
            assert not delivery.unannounced  # the page is open in the other process
            assert await silent(socket)
            await socket.send_json({"type": "ack", "id": message["id"]})  # as the page does
            await eventually(lambda: _delivered(web, message["id"]))
        await eventually(lambda: _closed(dispatcher, chat_id))
        delivery = await dispatcher.webchat.deliver(chat_id, Reply("Et vendredi"))
        assert delivery.unannounced
        async with browser.connect():
            assert [m["text"] for m in browser.waiting()] == ["Et vendredi"]
    finally:
        await browser.close()


async def _delivered(app: CoupDePouce, message_id: int) -> bool:
    async def read(session: AsyncSession) -> bool:
        row = await session.get_one(WebMessage, message_id)
        return row.delivered_at is not None

    return bool(await in_transaction(app, read))


@requires_postgres
async def test_a_page_opening_during_a_delivery_finds_the_message_in_its_history(
    start_bot: StartBot, council: Council
) -> None:
    _web, dispatcher, browser, chat_id = await a_page_and_another_process(start_bot)

    async def history() -> list[dict[str, Any]]:
        async with browser.connect():
            return browser.history

    try:
        async with db.session_scope(dispatcher.sessions) as session:
            probe = select(dispatcher.webchat.relay.page_open(chat_id))
            assert await session.scalar(probe) is False  # no page: no notice will be sent
            await conversation.said(
                session, chat_id, conversation.BOT, {"text": "Jeudi"}, mailed=True
            )
            opening = asyncio.create_task(history())
            await asyncio.sleep(QUIET)
            assert not opening.done()  # the page waits for the delivery's commit…
        assert [m["text"] for m in await opening] == ["Jeudi"]  # …and reads it then
    finally:
        await browser.close()


@requires_postgres
async def test_a_report_rewritten_by_another_process_shows_as_an_edit(
    start_bot: StartBot, council: Council
) -> None:
    _web, dispatcher, browser, chat_id = await a_page_and_another_process(start_bot)
    try:
        async with browser.connect() as socket:
            delivery = await dispatcher.webchat.deliver(chat_id, Reply("Envoi : 0 sur 40"))
            assert delivery.message_id is not None
            first = await received(socket)
            await dispatcher.webchat.edit(chat_id, delivery.message_id, Reply("Envoi : 40 sur 40"))
            edit = await received(socket)
            assert edit["type"] == "edit" and edit["id"] == first["id"]
            assert edit["text"] == "Envoi : 40 sur 40"
            assert await silent(socket)
    finally:
        await browser.close()


@requires_postgres
async def test_a_broadcast_sent_by_another_processs_dispatcher_reaches_the_page(
    start_bot: StartBot, council: Council
) -> None:
    web, dispatcher = await start_process(start_bot), await start_process(start_bot)
    await web.dispatcher.stop()  # the web process serves pages only
    browser = Browser(web)
    try:
        await browser.open_page()
        async with browser.connect() as socket:
            await onboard_on_the_web(browser, socket)
            broadcast_id = await broadcast_to_members(dispatcher, council)
            message = await received(socket, within=10)
            assert message["type"] == "message" and message["waiting"] is True
            await socket.send_json({"type": "ack", "id": message["id"]})
            broadcast = await until_finished(dispatcher, broadcast_id)
            assert broadcast.finished_at is not None
            await eventually(lambda: _delivered(web, message["id"]))
            assert await silent(socket)
        assert dispatcher.dispatcher.sent == 1 and web.dispatcher.sent == 0
    finally:
        await browser.close()


@requires_postgres
async def test_a_process_without_the_chats_pages_shows_nothing(
    start_bot: StartBot, council: Council
) -> None:
    first, second = await start_process(start_bot), await start_process(start_bot)
    here, there = Browser(first), Browser(second)
    try:
        for browser in (here, there):
            await browser.open_page()
        async with here.connect() as mine, there.connect() as theirs:
            await first.webchat.deliver(chat_of(here), Reply("Pour vous"))
            await second.webchat.deliver(chat_of(here), Reply("Pour vous aussi"))
            assert (await received(mine))["text"] == "Pour vous"
            assert (await received(mine))["text"] == "Pour vous aussi"
            assert await silent(mine) and await silent(theirs)
    finally:
        await here.close()
        await there.close()


@requires_postgres
async def test_the_persons_tab_in_another_process_follows_the_conversation(
    start_bot: StartBot, council: Council
) -> None:
    first, second = await start_process(start_bot), await start_process(start_bot)
    browser = Browser(first, "fr-FR")
    await browser.open_page()
    tab = same_person(browser, second)
    try:
        async with browser.connect() as socket, tab.connect() as other:
            consent = await browser.say(socket, {"type": "text", "text": "/start quartier-nord"})
            seen = await received(other)
            assert seen["type"] == "outcome" and "yours" not in seen
            assert seen["mine"] == consent["mine"]  # what the person wrote, kept: its id, text
            # The question, its buttons and its id, read from what the other process kept.
            assert [
                {key: shown[key] for key in asked}
                for shown, asked in zip(seen["replies"], consent["replies"], strict=True)
            ] == consent["replies"]
            yes = consent["replies"][0]["choices"][0][0]
            welcome = await browser.say(
                socket,
                {"type": "choice", "data": yes["data"], "message": consent["replies"][0]["id"]},
            )
            seen = await received(other)
            assert seen["tapped"] == welcome["tapped"] == consent["replies"][0]["id"]
            assert seen["clear_buttons"] is True and seen["member"] is True
            assert [r["id"] for r in seen["replies"]] == [r["id"] for r in welcome["replies"]]
            assert [r["text"] for r in seen["replies"]] == [r["text"] for r in welcome["replies"]]
            assert await silent(other) and await silent(socket)
    finally:
        await browser.close()
        await tab.close()


@requires_postgres
async def test_the_listening_survives_its_connection_being_killed(
    start_bot: StartBot, council: Council, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    web, dispatcher = await start_process(start_bot), await start_process(start_bot)
    relay = web.webchat.relay
    relay.retry = 0.05
    browser = Browser(web)
    await browser.open_page()
    chat_id = chat_of(browser)
    database = database_url.rpartition("/")[2]
    caplog.set_level(logging.INFO, logger="bot.channels.relay")
    try:
        async with browser.connect() as socket:
            killed = relay.backend_pid
            assert killed is not None
            # Killed, and kept from coming back for a while: what is kept meanwhile is not
            # heard of, and the page gets it when the process listens again.
            await _allow_connections(database, False)
            try:
                await _execute(dispatcher, f"SELECT pg_terminate_backend({killed})")
                await eventually(lambda: _not_listening(web))
                delivery = await dispatcher.webchat.deliver(chat_id, Reply("Pendant la coupure"))
                assert delivery.unannounced  # its page counts as closed while it is deaf
                await asyncio.sleep(0.3)  # attempts fail, backing off
            finally:
                await _allow_connections(database, True)
            history = await received(socket, within=10)
            assert history["type"] == "history"
            [missed] = [m for m in history["messages"] if m["text"] == "Pendant la coupure"]
            assert missed["waiting"] is True and str(missed["id"]) == delivery.message_id
            assert relay.listening and relay.backend_pid not in (None, killed)
            assert relay.reconnections == 1

            delivery = await dispatcher.webchat.deliver(chat_id, Reply("Après la coupure"))
            message = await received(socket)
            assert message["type"] == "message" and message["text"] == "Après la coupure"
            assert not delivery.unannounced  # its presence is shown again
            assert await silent(socket)
    finally:
        await browser.close()
    logged = [r.getMessage() for r in caplog.records if r.name == "bot.channels.relay"]
    assert len([line for line in logged if "lost" in line]) == 1, logged  # once, not per try
    assert len([line for line in logged if "cannot listen" in line]) == 0, logged
    assert logged[-1] == "web chat relay: listening again"


async def _execute(app: CoupDePouce, statement: str) -> None:
    async with app.database.connect() as connection:
        await connection.execute(text(statement))


async def _allow_connections(database: str, allowed: bool) -> None:
    """New connections to the test's database refused, or taken again (the connections open
    stay): as the database's owner, from the server's default database."""
    assert POSTGRES_URL is not None
    connection = await asyncpg.connect(_pg_dsn(POSTGRES_URL))
    try:
        await connection.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {allowed}')
    finally:
        await connection.close()


async def _not_listening(app: CoupDePouce) -> bool:
    return not app.webchat.relay.listening

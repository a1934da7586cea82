"""Webhook mode: the secret is checked, a re-delivered update is processed once (and
answered again), and Telegram gets 200 for an update it sent once it is kept, even when a
flow failed on it."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import pytest

from bot.app import CoupDePouce
from flows.registry import FLOWS
from storage.models import Council, Person
from tests.conftest import StartBot
from tests.emulator import BotApiEmulator, FakeUser
from tests.helpers import count_rows
from tests.test_bad_input import BROKEN

SECRET = "s3cret-Token_1"
WEBHOOK = {"webhook_url": "https://bot.example.org/telegram/hook", "webhook_secret": SECRET}


async def post(app: CoupDePouce, update: dict[str, Any], secret: str | None = SECRET) -> int:
    headers = {} if secret is None else {"X-Telegram-Bot-Api-Secret-Token": secret}
    async with (
        aiohttp.ClientSession() as client,
        client.post(
            f"http://127.0.0.1:{app.port}/telegram/hook", json=update, headers=headers
        ) as response,
    ):
        return response.status


def written(user: FakeUser, text: str, emulator: BotApiEmulator) -> dict[str, Any]:
    """The update Telegram would post when the person writes `text`."""
    update_id = user.send(text)
    return emulator.take_update(update_id)


async def test_webhook_is_registered_with_its_secret(
    start_bot: StartBot, emulator: BotApiEmulator
) -> None:
    await start_bot(**WEBHOOK)
    assert emulator.webhook_url == "https://bot.example.org/telegram/hook"
    assert emulator.webhook_secret == SECRET
    assert emulator.calls_to("getUpdates") == []


@pytest.mark.parametrize(("secret", "status"), [(None, 401), ("wrong", 403), ("", 403)])
async def test_a_call_without_the_right_secret_is_refused_and_ignored(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council, secret: str | None, status: int
) -> None:
    app = await start_bot(**WEBHOOK)
    sam = emulator.resident(5001, language_code="en")
    assert await post(app, written(sam, "/start quartier-nord", emulator), secret=secret) == status
    assert emulator.calls_to("sendMessage") == []


async def test_a_redelivered_update_is_processed_once(
    start_bot: StartBot, emulator: BotApiEmulator, council: Council
) -> None:
    app = await start_bot(**WEBHOOK)
    sam = emulator.resident(5002, language_code="en")
    assert await post(app, written(sam, "/start quartier-nord", emulator)) == 200
    consent = await sam.next_message()
    tap = emulator.take_update(sam.tap("✅ Yes, I agree", consent))
    assert await post(app, tap) == 200
    welcome, what_you_can_do = await sam.next_message(), await sam.next_message()
    # Telegram sends it again when it saw no answer in time: the answer may not have gone
    # either (the process stopped after the commit), so it goes again; nothing is done again.
    assert await post(app, tap) == 200
    again = [await sam.next_message(), await sam.next_message()]
    assert [m.text for m in again] == [welcome.text, what_you_can_do.text]
    assert await count_rows(app, Person) == 1
    assert len(sam.inbox) == 5
    assert len(sam.answered_callbacks) == 2  # each delivery still gets its tap answered


async def test_a_failing_flow_still_answers_200_and_apologises(
    start_bot: StartBot, emulator: BotApiEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    app = await start_bot(flows=[*FLOWS, BROKEN], **WEBHOOK)
    sam = emulator.resident(5003, language_code="en")
    with caplog.at_level(logging.ERROR):
        assert await post(app, written(sam, "/boom", emulator)) == 200
    reply = await sam.next_message()
    assert reply.text == "Sorry, something went wrong on our side. Please try again in a moment."
    assert any("a flow failed" in record.getMessage() for record in caplog.records)


async def test_garbage_is_refused(start_bot: StartBot) -> None:
    app = await start_bot(**WEBHOOK)
    async with (
        aiohttp.ClientSession() as client,
        client.post(
            f"http://127.0.0.1:{app.port}/telegram/hook",
            data=b"not json",
            headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
        ) as response,
    ):
        assert response.status == 400


async def test_health(bot: CoupDePouce) -> None:
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"http://127.0.0.1:{bot.port}/healthz") as response,
    ):
        assert response.status == 200
        assert await response.json() == {"status": "ok"}

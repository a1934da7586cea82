"""Every real update payload collected from public projects is handled without an error."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from bot.app import CoupDePouce
from storage.models import Council
from tests.conftest import SHARED_TELEGRAM, StartBot
from tests.emulator import BotApiEmulator
from tests.test_webhook import WEBHOOK, post

UPDATES = sorted((SHARED_TELEGRAM / "updates").glob("*.json"))
pytestmark = pytest.mark.skipif(
    not UPDATES, reason="no shared Telegram payloads beside the project"
)


def load(path: Path) -> dict[str, Any]:
    update: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return update


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("path", UPDATES, ids=[p.stem for p in UPDATES])
async def test_polled_update_is_handled(
    bot: CoupDePouce,
    emulator: BotApiEmulator,
    council: Council,
    caplog: pytest.LogCaptureFixture,
    path: Path,
) -> None:
    with caplog.at_level(logging.WARNING):
        emulator.push_update(load(path))
        await emulator.wait_until_consumed()
        sam = emulator.resident(77, language_code="en")
        sam.send("/help")  # and the bot still answers
        await sam.next_message()
    assert errors(caplog) == []
    failed = [call for call in emulator.calls if not call.ok and call.method != "getUpdates"]
    assert failed == []


async def test_webhook_updates_are_handled(
    start_bot: StartBot,
    emulator: BotApiEmulator,
    council: Council,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = await start_bot(**WEBHOOK)
    with caplog.at_level(logging.WARNING):
        for path in UPDATES:
            assert await post(app, load(path)) == 200, path.name
    assert errors(caplog) == []

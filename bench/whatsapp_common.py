"""What the WhatsApp benchmarks share: the Cloud API credentials, WhatsApp residents in bulk,
and the real application speaking WhatsApp (and Telegram, when asked) to the emulators."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bench.common import TOKEN, add_people
from bot.app import CoupDePouce
from bot.settings import load_settings
from flows.registry import FLOWS

PHONE_NUMBER_ID = "100200300"
ACCOUNT_ID = "900800700"
WA_TOKEN = "EAAG-bench-token"
APP_SECRET = "bench-app-secret"
VERIFY_TOKEN = "bench-verify-phrase"
FIRST_NUMBER = 33_600_000_001  # wa_id i: str(FIRST_NUMBER + i), 11 digits as a French mobile


def numbers(count: int, first: int = FIRST_NUMBER) -> list[str]:
    """WhatsApp ids (phone numbers, digits only) of `count` people."""
    return [str(first + index) for index in range(count)]


async def add_whatsapp_residents(
    url: str,
    council_id: int,
    wa_ids: Sequence[str],
    wrote_at: Sequence[datetime | None],
    batch: int = 10_000,
) -> None:
    """Residents reached on WhatsApp (their preferred identity), who consented and joined the
    council, each last writing at `wrote_at[i]`; plain INSERTs, as common.add_residents."""
    await add_people(url, council_id, "whatsapp", wa_ids, wrote_at, batch)


def whatsapp_settings(api_url: str, rate: float) -> dict[str, Any]:
    """The settings of a bot that speaks WhatsApp through the emulator (tests/conftest.py)."""
    return {
        "whatsapp_token": WA_TOKEN,
        "whatsapp_phone_number_id": PHONE_NUMBER_ID,
        "whatsapp_app_secret": APP_SECRET,
        "whatsapp_verify_token": VERIFY_TOKEN,
        "whatsapp_api_url": api_url,
        "whatsapp_business_account_id": ACCOUNT_ID,
        "whatsapp_rate": rate,
    }


async def start_whatsapp_app(
    url: str,
    whatsapp_api_url: str,
    *,
    whatsapp_rate: float,
    telegram_api_url: str | None = None,
    **settings: Any,
) -> CoupDePouce:
    """The real application with its WhatsApp channel, and Telegram if an API URL is given,
    started like tests/conftest.py does."""
    values: dict[str, Any] = {
        "database_url": url,
        "http_host": "127.0.0.1",
        "http_port": 0,
        "dispatch_report_seconds": 1.0,
        **whatsapp_settings(whatsapp_api_url, whatsapp_rate),
    }
    if telegram_api_url is not None:
        values |= {"telegram_bot_token": TOKEN, "telegram_api_url": telegram_api_url}
    values |= settings
    app = CoupDePouce(load_settings(**values), flows=FLOWS)
    await app.start()
    return app

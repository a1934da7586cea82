"""What the WhatsApp benchmarks share: the Cloud API credentials, WhatsApp residents in bulk,
and the real application speaking WhatsApp (and Telegram, when asked) to the emulators."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.common import LOCALES, TOKEN
from bot.app import CoupDePouce
from bot.settings import load_settings
from flows.registry import FLOWS
from storage import db
from storage.models import Identity, Membership, Person, PersonStatus, utcnow

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
    engine = db.create_engine(url)
    try:
        for start in range(0, len(wa_ids), batch):
            await _add_batch(
                engine,
                council_id,
                wa_ids[start : start + batch],
                wrote_at[start : start + batch],
                start,
            )
        if engine.dialect.name == "postgresql":
            async with engine.connect() as connection:
                await connection.execute(text("ANALYZE"))
    finally:
        await engine.dispose()


async def _add_batch(
    engine: AsyncEngine,
    council_id: int,
    wa_ids: Sequence[str],
    wrote_at: Sequence[datetime | None],
    offset: int,
) -> None:
    now = utcnow()
    people = [
        {
            "first_name": f"Habitante {wa_id[-5:]}",
            "locale": LOCALES[(offset + index) % len(LOCALES)],
            "status": PersonStatus.ACTIVE,
            "consent_version": "bench",
            "consented_at": now,
            "created_at": now,
        }
        for index, wa_id in enumerate(wa_ids)
    ]
    async with engine.begin() as connection:
        result = await connection.execute(
            insert(Person).returning(Person.id, sort_by_parameter_order=True), people
        )
        ids = [row[0] for row in result]
        await connection.execute(
            insert(Identity),
            [
                {
                    "person_id": person_id,
                    "channel": "whatsapp",
                    "external_id": wa_id,
                    "preferred": True,
                    "last_inbound_at": last,
                    "created_at": now,
                }
                for person_id, wa_id, last in zip(ids, wa_ids, wrote_at, strict=True)
            ],
        )
        await connection.execute(
            insert(Membership),
            [
                {"person_id": person_id, "council_id": council_id, "joined_at": now}
                for person_id in ids
            ],
        )


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

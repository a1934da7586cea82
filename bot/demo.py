"""`coupdepouce demo`: a seeded demo council and the web chat, with no token and no internet."""

from __future__ import annotations

import logging

from bot.app import CoupDePouce
from bot.settings import Settings
from flows.councils import create as create_council
from storage.db import create_engine, session_factory, session_scope
from storage.queries import councils

log = logging.getLogger(__name__)

DEMO_SLUG = "demo"
DEMO_NAME = "Conseil citoyen de démonstration"


async def seed(settings: Settings) -> None:
    """Create the demo council unless it exists."""
    engine = create_engine(settings.database_url)
    try:
        async with session_scope(session_factory(engine)) as session:
            if await councils.by_slug(session, DEMO_SLUG) is None:
                await create_council(
                    session, DEMO_SLUG, DEMO_NAME, neighbourhoods=["Nord", "Centre", "Gare"]
                )
                log.info("seeded the demo council %r", DEMO_SLUG)
    finally:
        await engine.dispose()


async def run_demo(settings: Settings) -> None:
    """Seed, then serve the web chat until interrupted."""
    await seed(settings)
    app = CoupDePouce(settings, telegram=False)

    async def announce() -> None:
        url = f"http://{settings.http_host}:{app.port}/?start={DEMO_SLUG}"
        print(f"Coup de pouce demo: open {url} in your browser (Ctrl+C to stop)", flush=True)

    await app.serve_forever(on_started=announce)

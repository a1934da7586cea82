"""The web chat keeps the conversation: a reload, a second tab or a new visit shows it again,
with the buttons that still answer, and those of superseded questions spent."""

from __future__ import annotations

from aiohttp import web
from playwright.async_api import Browser, expect
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.demo import DEMO_SLUG
from flows.i18n import language_name
from storage.models import Ballot, Council, WebMessage
from storage.queries import webchat
from tests.browser import (
    browser_fixture,  # noqa: F401 (the `browser` fixture)
    console_errors,
    new_page,
    screenshot,
)
from tests.conftest import StartBot, in_transaction
from tests.helpers import FR
from tests.test_broadcast import FAST
from tests.test_browser_resident import demo_bot, said, tap, type_in

COUNCIL = "Conseil citoyen de démonstration"


async def test_a_reload_in_the_middle_of_a_consultation_keeps_it_going(
    start_bot: StartBot, browser: Browser
) -> None:
    bot = await demo_bot(start_bot)
    page = await new_page(browser, "fr-FR")
    await page.goto(f"http://127.0.0.1:{bot.port}/?start={DEMO_SLUG}")
    await expect(page.get_by_role("banner")).to_have_text(COUNCIL)
    await tap(page, FR._("✅ Yes, I agree"))
    await page.get_by_role("button", name="✏️ " + FR._("Answer")).last.click()
    await tap(page, "Dimanche")
    scale = page.get_by_role("log").get_by_role("button", name="4", exact=True).last
    await expect(scale).to_be_enabled()

    # The phone switched apps and the page reloads: the conversation is all there.
    await page.reload()
    assert "start=" not in page.url  # the poster's link is not followed twice
    log = page.get_by_role("log")
    welcome = FR._("Thank you! You are now a member of {council}.").format(council=COUNCIL)
    await expect(log.locator(".bubble.bot").filter(has_text=welcome)).to_have_count(1)
    # What one answers an anonymous consultation is not kept: the question in hand is.
    await expect(log.locator(".bubble.me").filter(has_text="Dimanche")).to_have_count(0)
    await expect(said(page, "Réunion publique")).to_be_visible()
    await expect(
        said(page, "Réunion publique").get_by_role("button", name="✅ " + FR._("I'm coming"))
    ).to_be_enabled()
    await screenshot(page, "webchat-reloaded")

    # The restored buttons answer: the consultation is finished after the reload.
    await tap(page, "4")
    await type_in(page, "Un coin lecture pour les enfants")
    await tap(page, "Gare")
    saved = FR._(
        "Thank you! Your answers are saved. You can change them until {date}: tap “Answer” again."
    )
    await expect(said(page, saved.split("{date}")[0])).to_be_visible()

    async def answered(session: AsyncSession) -> int:
        query = select(func.count()).select_from(Ballot).where(Ballot.answered == 0b111)
        return int(await session.scalar(query) or 0)

    assert await in_transaction(bot, answered) >= 1

    async def kept(session: AsyncSession) -> str:
        mine = select(WebMessage).where(WebMessage.author == webchat.ME)
        return " ".join(str(m.payload) for m in await session.scalars(mine))

    said_by_her = await in_transaction(bot, kept)
    assert "Dimanche" not in said_by_her and "coin lecture" not in said_by_her
    assert console_errors(page) == []


async def test_two_tabs_show_one_conversation_and_a_question_asked_again_is_spent(
    start_bot: StartBot, browser: Browser
) -> None:
    bot = await demo_bot(start_bot)
    first = await new_page(browser, "fr-FR")
    await first.goto(f"http://127.0.0.1:{bot.port}/?start={DEMO_SLUG}")
    await tap(first, FR._("✅ Yes, I agree"))

    # A second tab of the same browser shows the conversation so far.
    second = await first.context.new_page()
    await second.goto(f"http://127.0.0.1:{bot.port}/")
    welcome = FR._("Thank you! You are now a member of {council}.").format(council=COUNCIL)
    await expect(said(second, welcome)).to_be_visible()

    # What one tab says and is answered shows in the other at once.
    await type_in(first, "/language")
    question = FR._("Which language do you prefer?")
    await expect(said(second, question)).to_be_visible()
    await expect(
        second.get_by_role("log").locator(".bubble.me").filter(has_text="/language")
    ).to_have_count(1)

    # Asked again: the first copy's buttons are spent, in both tabs, and after a reload.
    await type_in(second, "/language")
    for page in (first, second):
        asked = page.get_by_role("log").locator(".bubble.bot").filter(has_text=question)
        await expect(asked).to_have_count(2)
        await expect(asked.first.get_by_role("button").first).to_be_disabled()
        await expect(asked.last.get_by_role("button").first).to_be_enabled()
    await first.reload()
    asked = first.get_by_role("log").locator(".bubble.bot").filter(has_text=question)
    await expect(asked.first.get_by_role("button").first).to_be_disabled()
    await screenshot(first, "webchat-spent-question")

    # The live copy answers from the other tab; both see the answer.
    await asked.last.get_by_role("button", name=language_name("en")).click()
    done = "Done: I will write to you in English."
    for page in (first, second):
        await expect(said(page, done)).to_be_visible()
    assert console_errors(first) == [] and console_errors(second) == []


SITE_PAGE = """<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>Site</title>
</head><body><p id="status">…</p><script>
const socket = new WebSocket("ws://127.0.0.1:BOT_PORT/chat/ws");
socket.onmessage = (event) => {
  document.getElementById("status").textContent = "opened: " + JSON.parse(event.data).type;
};
socket.onclose = () => {
  const status = document.getElementById("status");
  if (status.textContent === "…") { status.textContent = "refused"; }
};
</script></body></html>"""


class OtherSite:
    """Another site in the same browser (another port is another origin), whose page opens
    the chat's socket."""

    def __init__(self) -> None:
        self.bot_port = 0
        self.runner: web.AppRunner | None = None
        self.origin = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self.serve)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.origin = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def serve(self, request: web.Request) -> web.Response:
        page = SITE_PAGE.replace("BOT_PORT", str(self.bot_port))
        return web.Response(text=page, content_type="text/html")

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def test_another_site_cannot_open_the_chat_in_the_residents_name(
    start_bot: StartBot, council: Council, browser: Browser
) -> None:
    foreign, embedding = OtherSite(), OtherSite()
    await foreign.start()
    await embedding.start()
    try:
        bot = await start_bot(limits=FAST, webchat_origins=embedding.origin)
        assert bot.port is not None
        foreign.bot_port = embedding.bot_port = bot.port
        chat = await new_page(browser, "fr-FR")
        await chat.goto(f"http://127.0.0.1:{bot.port}/?start=quartier-nord")
        await tap(chat, FR._("✅ Yes, I agree"))

        # A second tab on another site: the browser sends the resident's cookie with the
        # socket (same host), the Origin says who asks, and the chat refuses it.
        elsewhere = await chat.context.new_page()
        await elsewhere.goto(foreign.origin)
        await expect(elsewhere.locator("#status")).to_have_text("refused")
        # The council's own site, which embeds the chat, may.
        council_site = await chat.context.new_page()
        await council_site.goto(embedding.origin)
        await expect(council_site.locator("#status")).to_have_text("opened: history")
        assert console_errors(chat) == []
    finally:
        await foreign.stop()
        await embedding.stop()

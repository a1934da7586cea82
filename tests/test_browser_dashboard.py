"""The coordinators' dashboard in a real browser: signing in with the one-time link from
the bot, the council's pages, and what is refused (an expired link, another council)."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.async_api import Browser, Page, expect
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import CoupDePouce
from bot.demo import seed_council
from storage.models import LoginLink, Role, utcnow
from storage.queries import councils, people
from tests.browser import (
    browser_fixture,  # noqa: F401 (the `browser` fixture)
    console_errors,
    new_page,
    screenshot,
)
from tests.conftest import in_transaction
from tests.emulator import BotApiEmulator, FakeUser
from tests.helpers import AR, EN, FR, onboard
from tests.test_dashboard import link_for

LAPTOP = (1280, 900)


async def demo_coordinator(
    app: CoupDePouce, emulator: BotApiEmulator, user_id: int, language: str = "fr"
) -> FakeUser:
    """The demo council, seeded, and a coordinator of it on Telegram."""

    async def seed(session: AsyncSession) -> None:
        council = await seed_council(session, utcnow())
        await people.grant_role(session, council, "telegram", str(user_id), Role.COORDINATOR)

    await in_transaction(app, seed)
    user = emulator.resident(user_id, first_name="Nadia", language_code=language)
    await onboard(user, {"fr": FR, "en": EN, "ar": AR}[language], slug="demo")
    return user


async def sign_in(page: Page, link: str, t: object = FR) -> None:
    await page.goto(link)
    await page.get_by_role("button", name=FR._("Sign in")).click()
    # One council: straight to its overview.
    await expect(page.get_by_role("navigation", name=FR._("Sections"))).to_be_visible()


async def test_a_coordinator_signs_in_and_reads_the_councils_pages(
    bot: CoupDePouce, emulator: BotApiEmulator, browser: Browser
) -> None:
    nadia = await demo_coordinator(bot, emulator, 71_001)
    link = await link_for(nadia)
    page = await new_page(browser, "fr-FR", viewport=LAPTOP)
    await page.goto(link)
    await screenshot(page, "dashboard-sign-in")
    await page.get_by_role("button", name=FR._("Sign in")).click()
    # A coordinator of one council lands on its overview: there is nothing to choose.
    await expect(page).to_have_url(re.compile(r"/dashboard/demo/$"))
    await expect(
        page.get_by_role("listitem").filter(has_text=FR._("In the directory"))
    ).to_contain_text("12")
    await screenshot(page, "dashboard-overview")

    sections = page.get_by_role("navigation", name=FR._("Sections"))
    await sections.get_by_role("link", name=FR._("Directory")).click()
    await expect(page.get_by_role("status")).to_contain_text("12")
    await page.get_by_label(FR._("Free time")).select_option(label=FR._("Weekends"))
    await page.get_by_label(FR._("Neighbourhood")).select_option(label="Gare")
    await page.get_by_role("button", name=FR._("Filter")).click()
    rows = page.get_by_role("row")
    await expect(rows).to_have_count(3)  # the header, Hamid and Léo
    await expect(page.get_by_role("cell", name="Hamid")).to_be_visible()
    await screenshot(page, "dashboard-directory")

    await sections.get_by_role("link", name=FR._("Meetings")).click()
    await expect(
        page.get_by_role("heading", name="Réunion publique : la fête de quartier")
    ).to_be_visible()
    await screenshot(page, "dashboard-meetings")

    await sections.get_by_role("link", name=FR._("Consultations")).click()
    chart = page.get_by_role("img", name=FR._("Chart of question {number}").format(number="1"))
    await expect(chart).to_be_visible()
    loaded = await chart.evaluate("img => img.decode().then(() => img.naturalWidth)")
    assert loaded == 1080  # the chart was drawn and served
    await screenshot(page, "dashboard-consultations")

    await sections.get_by_role("link", name=FR._("Broadcasts")).click()
    await expect(page.locator("progress").first).to_be_visible()
    await screenshot(page, "dashboard-broadcasts")

    async with page.expect_download() as download:
        await sections.get_by_role("link", name=FR._("Overview")).click()
        await page.get_by_role("link", name=FR._("Talent directory") + " (CSV)").click()
    saved = await download.value
    assert saved.suggested_filename == "demo-talents.csv"

    await page.get_by_role("button", name=FR._("Sign out")).click()
    await expect(page.get_by_role("heading", name=FR._("Sign in"))).to_be_visible()
    assert console_errors(page) == []


async def test_another_councils_page_is_refused(
    bot: CoupDePouce, emulator: BotApiEmulator, browser: Browser
) -> None:
    nadia = await demo_coordinator(bot, emulator, 71_002)

    async def other(session: AsyncSession) -> None:
        from flows.councils import create as create_council

        await create_council(session, "quartier-sud", "Conseil citoyen Quartier Sud")

    await in_transaction(bot, other)
    page = await new_page(browser, "fr-FR", viewport=LAPTOP)
    await page.goto(await link_for(nadia))
    await page.get_by_role("button", name=FR._("Sign in")).click()
    await expect(page.get_by_role("link", name="Conseil citoyen Quartier Sud")).to_have_count(0)
    response = await page.goto(f"http://127.0.0.1:{bot.port}/dashboard/quartier-sud/meetings")
    assert response is not None and response.status == 403
    await expect(page.get_by_role("heading", name=FR._("Not allowed"))).to_be_visible()
    await expect(
        page.get_by_text(FR._("This council's pages are not open to you."))
    ).to_be_visible()
    await screenshot(page, "dashboard-other-council-refused")
    assert await councils_exist(bot)


async def councils_exist(app: CoupDePouce) -> bool:
    async def run(session: AsyncSession) -> bool:
        return await councils.by_slug(session, "quartier-sud") is not None

    return bool(await in_transaction(app, run))


async def test_an_expired_link_is_refused(
    bot: CoupDePouce, emulator: BotApiEmulator, browser: Browser
) -> None:
    nadia = await demo_coordinator(bot, emulator, 71_003, language="ar")
    link = await link_for(nadia)

    async def expire(session: AsyncSession) -> None:
        await session.execute(update(LoginLink).values(expires_at=utcnow() - timedelta(minutes=1)))

    await in_transaction(bot, expire)
    page = await new_page(browser, "ar", viewport=LAPTOP)
    response = await page.goto(link)
    assert response is not None and response.status == 410
    await expect(page.locator("html")).to_have_attribute("dir", "rtl")
    await expect(page.get_by_role("heading", name=AR._("This link has expired"))).to_be_visible()
    await expect(page.get_by_role("button", name=AR._("Sign in"))).to_have_count(0)
    await screenshot(page, "dashboard-expired-link-ar")
    # Nor does the dashboard open without signing in.
    response = await page.goto(f"http://127.0.0.1:{bot.port}/dashboard/demo/")
    assert response is not None and response.status == 401


async def test_an_arabic_dashboard_reads_right_to_left_paragraph_by_paragraph(
    bot: CoupDePouce, emulator: BotApiEmulator, browser: Browser
) -> None:
    nadia = await demo_coordinator(bot, emulator, 71_004, language="ar")
    page = await new_page(browser, "ar", viewport=LAPTOP)
    await page.goto(await link_for(nadia))
    await page.get_by_role("button", name=AR._("Sign in")).click()
    await expect(page.get_by_role("navigation", name=AR._("Sections"))).to_be_visible()
    await expect(page.locator("html")).to_have_attribute("dir", "rtl")
    # The council's French name and figures keep their own direction inside Arabic pages.
    card = page.locator(".card").first
    await expect(card).to_have_css("unicode-bidi", "plaintext")
    await expect(card).to_have_css("direction", "rtl")
    await screenshot(page, "dashboard-overview-ar")
    assert console_errors(page) == []

"""A newcomer's whole path in the demo council, in a real browser on a phone-sized screen:
joining, the talent directory, the meeting invitation and the consultation."""

from __future__ import annotations

from playwright.async_api import Browser, Locator, Page, expect
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import CoupDePouce
from bot.demo import DEMO_SLUG, RSVPS, let_in_as_coordinator, seed_council
from storage.models import Ballot, MeetingInvite, Rsvp, TalentProfile, utcnow
from tests.browser import (
    browser_fixture,  # noqa: F401 (the `browser` fixture)
    console_errors,
    new_page,
    screenshot,
)
from tests.conftest import StartBot, in_transaction
from tests.helpers import FR
from tests.test_broadcast import FAST

MEETING = "Réunion publique : la fête de quartier"


def said(page: Page, text: str) -> Locator:
    """The bot's latest message containing `text`."""
    return page.get_by_role("log").locator(".bubble.bot").filter(has_text=text).last


async def tap(page: Page, button: str) -> None:
    """Click the latest button of that name in the conversation, and wait for the answer
    (which takes the tapped question's buttons away)."""
    found = page.get_by_role("log").get_by_role("button", name=button, exact=True).last
    handle = await found.element_handle()
    await handle.click()
    await handle.wait_for_element_state("hidden")


async def type_in(page: Page, text: str) -> None:
    field = page.get_by_role("textbox", name=FR._("Your message"))
    await field.fill(text)
    await field.press("Enter")


async def demo_bot(start_bot: StartBot) -> CoupDePouce:
    """The application with the demo council seeded (its meeting and consultation sent)."""
    bot = await start_bot(limits=FAST)

    async def seed(session: AsyncSession) -> None:
        await seed_council(session, utcnow())

    await in_transaction(bot, seed)
    return bot


async def test_a_newcomer_joins_offers_help_answers_the_meeting_and_the_consultation(
    start_bot: StartBot, browser: Browser
) -> None:
    bot = await demo_bot(start_bot)
    page = await new_page(browser, "fr-FR")
    await page.goto(f"http://127.0.0.1:{bot.port}/?start={DEMO_SLUG}")

    # Joining: one tap. The meeting and the consultation already sent reach them too.
    await tap(page, FR._("✅ Yes, I agree"))
    invitation = said(page, MEETING)
    await expect(invitation.get_by_role("link", name=".ics")).to_be_visible()
    await expect(said(page, "La fête de quartier").last).to_be_visible()
    await screenshot(page, "webchat-demo-joined")

    # The meeting: coming, alone, needing nothing.
    await invitation.get_by_role("button", name="✅ " + FR._("I'm coming")).click()
    await tap(page, FR._("Just me"))
    await tap(page, FR._("Nothing else"))
    await expect(said(page, FR._("All set. See you on:"))).to_be_visible()

    # The consultation: one question at a time, in the same message.
    answer = "✏️ " + FR._("Answer")
    await page.get_by_role("button", name=answer).last.click()
    await tap(page, "Dimanche")
    await tap(page, "4")
    await type_in(page, "Un coin lecture pour les enfants")
    await tap(page, "Gare")
    saved = FR._(
        "Thank you! Your answers are saved. You can change them until {date}: tap “Answer” again."
    )
    await expect(said(page, saved.split("{date}")[0])).to_be_visible()
    await screenshot(page, "webchat-demo-consultation")

    # The talent directory: a skill, free time, neighbourhood, how to be reached.
    await type_in(page, "/talents")
    await tap(page, FR._("Home and repairs"))
    await tap(page, FR._("Cooking"))
    await tap(page, "◀ " + FR._("Back"))
    await tap(page, "✅ " + FR._("Done"))
    await tap(page, FR._("Skip"))
    await tap(page, FR._("Evenings"))
    await tap(page, "✅ " + FR._("Done"))
    await tap(page, "✅ Gare")  # told to the consultation: offered to confirm
    await tap(page, FR._("Only through the bot"))
    welcome = FR._("Welcome to the talent directory of {council}!").format(
        council="Conseil citoyen de démonstration"
    )
    await expect(said(page, welcome)).to_be_visible()
    await screenshot(page, "webchat-demo-directory")
    assert console_errors(page) == []

    async def recorded(session: AsyncSession) -> tuple[int, int, int]:
        coming = select(func.count()).where(MeetingInvite.rsvp == Rsvp.COMING)
        ballots = select(func.count()).select_from(Ballot).where(Ballot.answered != 0)
        profiles = select(func.count()).select_from(TalentProfile)
        return (
            int(await session.scalar(coming) or 0),
            int(await session.scalar(ballots) or 0),
            int(await session.scalar(profiles) or 0),
        )

    seeded = sum(1 for answer, _guests, _needs in RSVPS if answer is Rsvp.COMING)
    assert await in_transaction(bot, recorded) == (seeded + 1, 9, 13)


async def test_the_coordinator_types_a_choice_list_on_three_lines(
    start_bot: StartBot, browser: Browser
) -> None:
    """The text box takes several lines (Shift+Enter), so "one per line" can be answered."""
    bot = await demo_bot(start_bot)
    let_in_as_coordinator(bot)
    page = await new_page(browser, "fr-FR")
    await page.goto(f"http://127.0.0.1:{bot.port}/chat/as/coordinator")
    await type_in(page, "/consult")
    await expect(said(page, "?")).to_be_visible()
    await type_in(page, "Le jardin partagé")
    await tap(page, FR._("One choice"))
    await type_in(page, "Quel jour pour la fête ?")
    field = page.get_by_role("textbox", name=FR._("Your message"))
    one_line = (await field.bounding_box() or {"height": 0})["height"]
    await field.type("Samedi")
    await field.press("Shift+Enter")
    await field.type("Dimanche")
    await field.press("Shift+Enter")
    await field.type("Lundi de Pâques")
    three_lines = (await field.bounding_box() or {"height": 0})["height"]
    assert three_lines - one_line > 30  # the box grew by two lines
    await expect(field).to_have_value("Samedi\nDimanche\nLundi de Pâques")
    await field.press("Enter")
    await expect(field).to_have_value("")
    mine = page.get_by_role("log").locator(".bubble.me").last
    await expect(mine).to_have_text("Samedi\nDimanche\nLundi de Pâques")
    # The three choices were taken: the next question comes.
    enough = "✅ " + FR._("No more questions")
    await expect(page.get_by_role("button", name=enough, exact=True)).to_be_visible()
    await screenshot(page, "webchat-three-lines")
    assert console_errors(page) == []

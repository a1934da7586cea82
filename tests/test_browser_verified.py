"""In a real browser: a resident who joined in the web chat, with no code, answers a
consultation; they are told their answers count once verified, and the results leave them
aside and say so."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from playwright.async_api import Browser, expect
from sqlalchemy.ext.asyncio import AsyncSession

from flows.broadcasts.service import ReportTo
from flows.consultations import results as consultation_results
from flows.consultations import service as consultations
from flows.verification.flow import HOW_TO_COUNT
from storage.models import Consultation, Council, QuestionKind, utcnow
from tests.browser import (
    browser_fixture,  # noqa: F401 (the `browser` fixture)
    console_errors,
    new_page,
    screenshot,
)
from tests.conftest import StartBot, in_transaction
from tests.helpers import FR
from tests.test_broadcast import FAST
from tests.test_browser_resident import said, tap, type_in
from tests.test_browser_webchat import poster_link

TITLE = "Le square Pasteur"


async def test_an_unverified_web_answer_is_recorded_but_not_counted(
    start_bot: StartBot, council: Council, browser: Browser
) -> None:
    bot = await start_bot(limits=FAST)

    async def ask(session: AsyncSession) -> int:
        stored = await session.get_one(Council, council.id)
        now = utcnow()
        consultation = await consultations.create(
            session,
            stored,
            consultations.NewConsultation(
                title=TITLE,
                questions=[
                    consultations.NewQuestion(
                        QuestionKind.SINGLE, "Que faire du square ?", ["Un jardin", "Des bancs"]
                    ),
                    consultations.NewQuestion(QuestionKind.TEXT, "Une idée ?"),
                ],
                opens_at=now,
                closes_at=now + timedelta(days=7),
            ),
            None,
            ReportTo("telegram", "80001", "fr"),
        )
        return consultation.id

    consultation_id = await in_transaction(bot, ask)
    page = await new_page(browser, "fr-FR")
    await page.goto(poster_link(bot))
    await tap(page, FR._("✅ Yes, I agree"))
    await expect(said(page, TITLE)).to_be_visible()  # asked on joining, like every member
    await page.get_by_role("button", name="✏️ " + FR._("Answer")).last.click()
    await tap(page, "Un jardin")
    await type_in(page, "Un composteur")
    await tap(page, "Les Tilleuls")
    told = said(
        page,
        FR._(
            "Your answers are recorded, but they will count once you are a verified member "
            "(so that each person counts once)."
        ),
    )
    await expect(told).to_be_visible()
    # How to get verified: the page shows commands isolated from the text around them.
    how = FR._(HOW_TO_COUNT)
    await expect(told).to_contain_text(how.split("(/verify")[0])
    await expect(told).to_contain_text("/verify")
    await expect(told).to_contain_text("/link")
    await screenshot(page, "webchat-unverified-answer")
    assert console_errors(page) == []

    async def close(session: AsyncSession) -> tuple[dict[str, Any], str]:
        consultation = await session.get_one(Consultation, consultation_id)
        figures = await consultations.close_consultation(session, consultation, utcnow())
        return figures, consultation_results.summary(FR, consultation, figures, final=True)

    figures, summary = await in_transaction(bot, close)
    assert (figures["respondents"], figures["unverified_aside"]) == (0, 1)
    assert (
        FR.ngettext(
            "{count} unverified answer left aside.", "{count} unverified answers left aside.", 1
        ).format(count=1)
        in summary
    )
    assert "Un composteur" not in summary
    [first, _idea] = figures["questions"]
    assert first["all"]["counts"] == [0, 0]

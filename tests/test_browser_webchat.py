"""The web chat page in a real browser: a resident joins with the mouse and the keyboard,
and an Arabic page reads right to left."""

from __future__ import annotations

import json
import re

from playwright.async_api import Browser, Locator, Page, expect

from bot.app import CoupDePouce
from flows.i18n import language_name
from storage.models import Council
from tests.browser import (
    browser_fixture,  # noqa: F401 (the `browser` fixture)
    console_errors,
    new_page,
    screenshot,
)
from tests.helpers import AR, EN, FR
from tests.test_webchat import make_web_organiser

COUNCIL_NAME = "Conseil citoyen Quartier Nord"


def poster_link(app: CoupDePouce, slug: str = "quartier-nord") -> str:
    """The chat page as a council's poster links to it: it starts by joining the council."""
    return f"http://127.0.0.1:{app.port}/?start={slug}"


def bot_bubble(page: Page, text: str) -> Locator:
    """The bot's latest message containing `text`."""
    return page.get_by_role("log").locator(".bubble.bot").filter(has_text=text).last


async def content_edges(log: Locator) -> tuple[float, float]:
    """Where the log's content starts and ends horizontally (inside its padding)."""
    left, right = await log.evaluate(
        """log => {
            const box = log.getBoundingClientRect(), style = getComputedStyle(log);
            return [box.left + parseFloat(style.paddingLeft),
                    box.right - parseFloat(style.paddingRight)];
        }"""
    )
    return float(left), float(right)


async def test_a_resident_joins_and_downloads_their_data_in_the_browser(
    bot: CoupDePouce, council: Council, browser: Browser
) -> None:
    page = await new_page(browser, "fr-FR")
    await page.goto(poster_link(bot))
    await expect(page.locator("html")).to_have_attribute("lang", "fr")
    log = page.get_by_role("log", name=FR._("Conversation"))
    await expect(log).to_have_attribute("aria-live", "polite")

    yes, no, language = FR._("✅ Yes, I agree"), FR._("No, thanks"), "🌐 " + FR._("Language")
    consent = bot_bubble(page, FR._("Do you agree?"))
    await expect(consent).to_contain_text(COUNCIL_NAME)
    buttons = consent.get_by_role("button")
    await expect(buttons).to_have_count(3)
    for button, name in zip(await buttons.all(), (yes, no, language), strict=True):
        await expect(button).to_have_accessible_name(name)
    # A question takes the focus, so a keyboard user can answer it straight away.
    await expect(consent.get_by_role("button", name=yes)).to_be_focused()
    await screenshot(page, "webchat-fr-consent")

    # With the keyboard only: Tab to the language button, Enter, then Enter on "Français".
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    await expect(consent.get_by_role("button", name=language)).to_be_focused()
    await page.keyboard.press("Enter")
    languages = bot_bubble(page, FR._("Which language do you prefer?"))
    french = languages.get_by_role("button", name=language_name("fr"))
    await french.focus()
    await expect(french).to_be_focused()
    await page.keyboard.press("Enter")
    chosen = FR._("Done: I will write to you in {language}.").format(language=language_name("fr"))
    await expect(bot_bubble(page, chosen)).to_be_visible()

    # The question is asked again: agree with a click.
    consent = bot_bubble(page, FR._("Do you agree?"))
    await consent.get_by_role("button", name=yes).click()
    welcome = FR._("Thank you! You are now a member of {council}.").format(council=COUNCIL_NAME)
    await expect(bot_bubble(page, welcome)).to_be_visible()
    await expect(log.get_by_role("button")).to_have_count(0)  # answered questions lose them
    await screenshot(page, "webchat-fr-onboarding")

    message = page.get_by_role("textbox", name=FR._("Your message"))
    await message.fill("/mydata")
    await message.press("Enter")
    await expect(message).to_have_value("")
    link = bot_bubble(page, FR._("Here is everything we keep about you.")).get_by_role(
        "link", name=re.compile(r"mydata\.json")
    )
    await expect(link).to_have_attribute("download", "mydata.json")
    await screenshot(page, "webchat-fr-mydata")
    async with page.expect_download() as started:
        await link.click()
    download = await started.value
    assert download.suggested_filename == "mydata.json"
    document = json.loads((await download.path()).read_text(encoding="utf-8"))
    assert [joined["name"] for joined in document["councils"]] == [COUNCIL_NAME]
    assert [account["channel"] for account in document["accounts"]] == ["web"]

    assert console_errors(page) == []


async def test_an_arabic_page_reads_right_to_left(
    bot: CoupDePouce, council: Council, browser: Browser
) -> None:
    page = await new_page(browser, "ar")
    await page.goto(poster_link(bot))
    html = page.locator("html")
    await expect(html).to_have_attribute("lang", "ar")
    await expect(html).to_have_attribute("dir", "rtl")

    consent = bot_bubble(page, AR._("Do you agree?"))
    await expect(consent).to_contain_text(COUNCIL_NAME)
    await expect(consent).to_have_css("direction", "rtl")
    await expect(consent.get_by_role("button", name=AR._("✅ Yes, I agree"))).to_be_focused()
    await screenshot(page, "webchat-ar")

    # Commands keep their left-to-right shape inside Arabic text: "/mydata", not "mydata/".
    slash, m, a = await consent.evaluate(
        """bubble => {
            const node = Array.from(bubble.childNodes)
                .find(n => n.nodeType === Node.TEXT_NODE && n.data.includes("/mydata"));
            const start = node.data.indexOf("/mydata"), range = document.createRange();
            const x = k => { range.setStart(node, k); range.setEnd(node, k + 1);
                             return range.getBoundingClientRect().x; };
            return [x(start), x(start + 1), x(start + 6)];
        }"""
    )
    assert slash < m < a

    # The bot's messages sit on the right, where Arabic lines start; a bubble on the
    # left would start at the log's left padding.
    left, right = await content_edges(page.get_by_role("log"))
    box = await consent.bounding_box()
    assert box is not None
    assert abs(box["x"] + box["width"] - right) <= 1, (box, right)
    assert box["x"] > left + 1, (box, left)

    # The resident's own messages are mirrored too: on the left.
    await consent.get_by_role("button", name=AR._("✅ Yes, I agree")).click()
    mine = page.get_by_role("log").locator(".bubble.me").filter(has_text=AR._("✅ Yes, I agree"))
    await expect(mine).to_have_css("direction", "rtl")
    box = await mine.bounding_box()
    assert box is not None
    assert abs(box["x"] - left) <= 1, (box, left)
    assert box["x"] + box["width"] < right - 1, (box, right)
    welcome = AR._("Thank you! You are now a member of {council}.").format(council=COUNCIL_NAME)
    await expect(bot_bubble(page, welcome)).to_have_css("direction", "rtl")
    # Each paragraph in its own direction: a French line inside an Arabic bubble keeps its
    # punctuation at its own end.
    await expect(bot_bubble(page, welcome)).to_have_css("unicode-bidi", "plaintext")
    await screenshot(page, "webchat-ar-joined")

    # Arrows point the way Arabic reads: back is to the right.
    message = page.get_by_role("textbox", name=AR._("Your message"))
    await message.fill("/talents")
    await message.press("Enter")
    picker = page.get_by_role("log").locator(".bubble.bot").last
    await picker.get_by_role("button").first.click()
    back = page.get_by_role("log").get_by_role("button", name=AR.back)
    await expect(back).to_be_visible()
    assert AR.back.startswith("▶ ")
    await screenshot(page, "webchat-ar-back")

    assert console_errors(page) == []


async def test_a_text_over_the_limit_goes_back_to_the_box(
    bot: CoupDePouce, council: Council, browser: Browser
) -> None:
    page = await new_page(browser, "fr-FR")
    await page.goto(poster_link(bot))
    consent = bot_bubble(page, FR._("Do you agree?"))
    await consent.get_by_role("button", name=FR._("✅ Yes, I agree")).click()
    welcome = FR._("Thank you! You are now a member of {council}.").format(council=COUNCIL_NAME)
    await expect(bot_bubble(page, welcome)).to_be_visible()
    message = page.get_by_role("textbox", name=FR._("Your message"))
    await message.fill("/verify")
    await message.press("Enter")
    asked = FR._("Type the code printed on your card: 8 letters and digits, like ABCD-EFGH.")
    await expect(bot_bubble(page, asked)).to_be_visible()
    too_long = "ABCD-EFGH-" * 10  # 100 characters, for 40
    await message.fill(too_long)
    await message.press("Enter")
    await expect(bot_bubble(page, "100\u202fcaractères, pour 40 au plus")).to_be_visible()
    await expect(message).to_have_value(too_long)  # back in the box, to shorten
    log = page.get_by_role("log")
    await expect(log.locator(".bubble.me").filter(has_text="ABCD-EFGH-ABCD")).to_have_count(0)
    await expect(log.locator(".bubble.bot").filter(has_text=asked)).to_have_count(2)
    assert console_errors(page) == []


async def test_a_place_is_shared_with_the_browsers_position(
    bot: CoupDePouce, council: Council, browser: Browser
) -> None:
    page = await new_page(browser, "en")
    await page.context.grant_permissions(["geolocation"])
    await page.context.set_geolocation({"latitude": 48.85, "longitude": 2.35})
    await page.goto(poster_link(bot))
    consent = bot_bubble(page, EN._("Do you agree?"))
    await consent.get_by_role("button", name=EN._("✅ Yes, I agree")).click()
    await expect(bot_bubble(page, EN._("Here is what you can do:"))).to_be_visible()

    await make_web_organiser(bot, council)
    message = page.get_by_role("textbox", name=EN._("Your message"))
    for line in (
        "/meeting",
        "Conseil citoyen de décembre",
        "Budget participatif.",
        "3 rue des Lilas",
    ):
        await message.fill(line)
        await message.press("Enter")
        await expect(message).to_have_value("")
    where = bot_bubble(page, "To show it on a map")
    await expect(where).not_to_contain_text("📎")  # Telegram's menu has no place here
    await where.get_by_role("button", name="📍 Share my position").click()
    await expect(bot_bubble(page, "Which day?")).to_be_visible()
    await screenshot(page, "webchat-share-position")
    assert console_errors(page) == []

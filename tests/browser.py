"""Tests in a real headless Chromium, driven by Playwright.

Debian's Chromium is used as it is installed (no browser download); a machine without
it skips these tests. A test module gets the `browser` fixture by importing it:

    from tests.browser import browser_fixture  # noqa: F401 (the `browser` fixture)
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit
from weakref import WeakKeyDictionary

import pytest
from playwright.async_api import Browser, ConsoleMessage, Error, Page, async_playwright, expect

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",  # tests run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"

# Auto-waiting assertions give up after this long instead of Playwright's 5 s.
expect.set_options(timeout=TIMEOUT_MS)

_console_errors: WeakKeyDictionary[Page, list[str]] = WeakKeyDictionary()


def chromium_path() -> str | None:
    """Where Chromium is installed; None if it is not."""
    if Path(CHROMIUM).is_file():
        return CHROMIUM
    return shutil.which("chromium")


@pytest.fixture(name="browser")
async def browser_fixture() -> AsyncIterator[Browser]:
    """A headless Chromium for one test; its pages and contexts are closed after it."""
    executable = chromium_path()
    if executable is None:
        pytest.skip("Chromium is not installed")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=LAUNCH_ARGS, timeout=30_000
        )
        try:
            yield launched
        finally:
            for context in launched.contexts:
                await context.close()
            await launched.close()


async def new_page(browser: Browser, locale: str, viewport: tuple[int, int] = (390, 844)) -> Page:
    """A page on a phone-sized screen, in a browser set to `locale` (so is Accept-Language).

    The page's console errors and uncaught exceptions are kept for `console_errors`.
    """
    width, height = viewport
    context = await browser.new_context(
        locale=locale, viewport={"width": width, "height": height}, accept_downloads=True
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    errors: list[str] = []
    _console_errors[page] = errors

    def on_console(message: ConsoleMessage) -> None:
        location = message.location
        if message.type == "error" and not _unasked_favicon(location["url"]):
            errors.append(f"{message.text} ({location['url']}:{location['line']})")

    def on_page_error(error: Error) -> None:
        errors.append(f"uncaught: {error.message}")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    return page


def _unasked_favicon(url: str) -> bool:
    """Chromium asks every site for /favicon.ico by itself, so a 404 there is the browser's
    doing: a page that names no icon logs it without having asked for anything."""
    return urlsplit(url).path == "/favicon.ico"


def console_errors(page: Page) -> list[str]:
    """What the page logged as console errors, and its uncaught exceptions, so far."""
    return list(_console_errors.get(page, []))


async def screenshot(page: Page, name: str) -> Path:
    """Save a full-page PNG as artifacts/screenshots/NAME.png; return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=path, full_page=True)
    return path

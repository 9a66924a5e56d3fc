"""Browser steps shared by the UI tests."""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import Error as PlaywrightError

from tests.test_ui_browser import screenshots_on_failure


@contextlib.contextmanager
def opened(browser: Browser, viewport: dict[str, int], folder: Path, url: str | None = None) -> Iterator[Page]:
    """A page of its own at `viewport` (on `url` when given); screenshots of each tab into `folder` when the block
    fails."""
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(30_000)
    expect.set_options(timeout=20_000)  # a page load on a busy 2-core machine can take more than expect's 5 s
    try:
        with screenshots_on_failure(page, folder):
            if url is not None:
                page.goto(url)
            yield page
    finally:
        expect.set_options(timeout=5_000)
        context.close()


def open_tab(page: Page, name: str, within_s: float = 30.0) -> None:
    """Open a tab as a person would: in the tab bar, or its overflow menu on a narrow window.

    Gradio measures the bar after each render and moves tabs in and out of the menu, so a
    tab seen a moment ago may be gone; each try looks again (a CI run lost a phone test so).
    """
    tab = page.get_by_role("tab", name=name, exact=True)
    deadline = time.monotonic() + within_s
    while True:
        try:
            shown = tab.filter(visible=True)
            if shown.count():
                shown.first.click(timeout=2_000)
            else:
                page.get_by_role("button", name="More tabs").filter(visible=True).click(timeout=2_000)
                page.locator(".overflow-dropdown button").filter(visible=True).get_by_text(
                    name, exact=True).click(timeout=2_000)
            expect(tab.filter(visible=True).first).to_have_attribute("aria-selected", "true", timeout=2_000)
            return
        except (PlaywrightError, AssertionError):
            if time.monotonic() > deadline:
                raise

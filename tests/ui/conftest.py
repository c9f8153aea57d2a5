"""The browser tests' fixtures: the stack of ``make demo-ui`` (started once per session), Chromium, a fresh page.

Skipped unless ``FT_UI_TESTS=1`` (``make ui-test`` sets it), so ``make test`` stays fast and needs no browser.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from scripts.ui_stack import UiStack, ui_stack
from tests.ui.browser import CHROMIUM, CHROMIUM_ARGS, UI_TIMEOUT_MS

UI_TESTS_VAR = "FT_UI_TESTS"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get(UI_TESTS_VAR) == "1":
        return
    skip = pytest.mark.skip(reason=f"browser tests: set {UI_TESTS_VAR}=1 (make ui-test)")
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiStack]:
    """The ``make demo-ui`` stack in a throwaway AIRFLOW_HOME: ``stack.base_url``, ``stack.emulator``,
    ``stack.logins["admin"]`` / ``["viewer"]``, ``stack.jobs`` (what was put on each connection)."""
    with ui_stack(tmp_path_factory.mktemp("ui-stack") / "home", quiet=True) as started:
        yield started


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless; never a browser Playwright would download."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: make ui-test installs Debian's chromium package")
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True)
    yield launched
    launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser context per test: no cookie (no login) carried from one test to the next."""
    fresh = browser.new_context(viewport={"width": 1400, "height": 900})
    fresh.set_default_timeout(UI_TIMEOUT_MS)
    yield fresh
    fresh.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()

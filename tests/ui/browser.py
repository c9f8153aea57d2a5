"""Helpers of the browser tests: Debian's Chromium driven by Playwright, Airflow's login form, screenshots.

Playwright never downloads a browser of its own here: it launches ``/usr/bin/chromium`` (``make ui-test`` installs
Debian's package when it is missing), headless, with a fresh profile.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from playwright.sync_api import Page, expect

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: Set to 1 to write screenshots to docs/screenshots/ (tests write none otherwise, so git status stays clean).
SCREENSHOTS_VAR = "FT_UI_SCREENSHOTS"
SCREENSHOTS = ROOT / "docs" / "screenshots"
#: How long the UI may take to show what a test waits for (a first page load compiles nothing, but CI is slow).
UI_TIMEOUT_MS = 20_000


def login(page: Page, base_url: str, username: str, password: str) -> None:
    """Sign in through Airflow's own login form (the simple auth manager's), from the home page's redirect."""
    page.goto(f"{base_url}/")
    expect(page).to_have_url(re.compile(r"/auth/login"), timeout=UI_TIMEOUT_MS)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def screenshot(page: Page, name: str) -> Path | None:
    """Save the page as ``docs/screenshots/<name>.png`` when ``FT_UI_SCREENSHOTS=1``; returns the file, or None."""
    if os.environ.get(SCREENSHOTS_VAR) != "1":
        return None
    page.wait_for_load_state("networkidle")  # the page's own requests answered: no loading placeholders left
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path

"""Airflow's own login, as the Fine-tuning page's users meet it: the simple auth manager's form, real passwords."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from scripts.ui_stack import UiStack
from tests.ui.browser import UI_TIMEOUT_MS, login

pytestmark = pytest.mark.timeout(600)


def test_admin_logs_in_and_sees_airflows_home(stack: UiStack, page: Page) -> None:
    admin = stack.logins["admin"]
    login(page, stack.base_url, admin.username, admin.password)

    expect(page).to_have_title(re.compile(r"^Home - Airflow$"), timeout=UI_TIMEOUT_MS)
    expect(page.get_by_text("Welcome")).to_be_visible()
    assert "_token" in {cookie["name"] for cookie in page.context.cookies()}


def test_a_wrong_password_is_refused(stack: UiStack, page: Page) -> None:
    viewer = stack.logins["viewer"]
    login(page, stack.base_url, viewer.username, viewer.password + "-wrong")

    expect(page.get_by_text("Invalid credentials")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/auth/login"))
    assert "_token" not in {cookie["name"] for cookie in page.context.cookies()}

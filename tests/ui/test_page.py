"""The Fine-tuning page in a real browser: Airflow 3.3.2's api-server (``airflow api-server``) with the plugin, the
seeded emulator of ``make demo-ui``, Debian's Chromium driven by Playwright, Airflow's own login.

With ``FT_UI_SCREENSHOTS=1`` the tests save the screenshots the docs show (docs/screenshots/).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import requests
from playwright.sync_api import FrameLocator, Page, expect

from scripts.ui_stack import API_KEY, UiStack
from tests.ui.browser import UI_TIMEOUT_MS, login, screenshot

pytestmark = pytest.mark.timeout(600)


def signed_in(page: Page, stack: UiStack, who: str) -> Page:
    account = stack.logins[who]
    login(page, stack.base_url, account.username, account.password)
    expect(page).to_have_title(re.compile(r"^Home - Airflow$"), timeout=UI_TIMEOUT_MS)
    return page


def fine_tuning_frame(page: Page, stack: UiStack) -> FrameLocator:
    """Airflow's Browse → Fine-tuning: the page inside Airflow's frame."""
    page.goto(stack.page_url)
    frame = page.frame_locator("iframe")
    expect(frame.locator("[data-testid=jobs]")).to_be_visible(timeout=UI_TIMEOUT_MS)
    return frame


def jobs_of(stack: UiStack, kind: str) -> list[Any]:
    return [job for job in stack.jobs if job.kind == kind]


def test_the_page_is_in_airflow_s_navigation_and_lists_every_connection(stack: UiStack, page: Page) -> None:
    signed_in(page, stack, "admin")
    page.goto(f"{stack.base_url}/")
    page.get_by_role("button", name=re.compile("Browse")).click()
    page.get_by_role("menuitem", name="Fine-tuning").click()
    frame = page.frame_locator("iframe")

    rows = frame.locator("[data-testid=connection-row]")
    expect(rows).to_have_count(4, timeout=UI_TIMEOUT_MS)
    for account in ("dashscope_default", "openai_default", "azure_openai_default", "together_default"):
        expect(frame.locator(f"[data-testid=connection-row][data-conn={account}]")).to_be_visible()
    expect(frame.locator("[data-testid=connection-error]")).to_have_count(0)


def test_jobs_show_the_dag_that_created_them_orphans_and_cost(stack: UiStack, page: Page) -> None:
    signed_in(page, stack, "admin")
    frame = fine_tuning_frame(page, stack)

    for orphan in jobs_of(stack, "orphan"):
        row = frame.locator(f"[data-testid=job-row][data-job='{orphan.job_id}']")
        expect(row.locator("[data-testid=orphan-flag]")).to_be_visible()
    for stranger in jobs_of(stack, "other-deployment") + jobs_of(stack, "training"):
        row = frame.locator(f"[data-testid=job-row][data-job='{stranger.job_id}']")
        expect(row).to_be_visible()
        expect(row.locator("[data-testid=orphan-flag]")).to_have_count(0)
    (lifecycle,) = [job for job in jobs_of(stack, "lifecycle") if job.vendor == "openai"]
    row = frame.locator(f"[data-testid=job-row][data-job='{lifecycle.job_id}']")
    dag_link = row.locator("[data-testid=dag-link]")
    expect(dag_link).to_have_text("ft_train_and_publish")
    assert dag_link.get_attribute("href") == "/dags/ft_train_and_publish"
    assert row.locator("[data-testid=task-link]").get_attribute("target") == "_top"
    expect(row.locator("[data-testid=job-cost]")).to_have_text(re.compile(r"^\d+\.\d\d USD$"))
    expect(frame.locator("[data-conn=openai_default] [data-testid=connection-cost]")).to_have_text(re.compile("USD"))
    screenshot(page, "jobs-page")

    dag_link.click()
    expect(page).to_have_url(re.compile(r"/dags/ft_train_and_publish$"), timeout=UI_TIMEOUT_MS)


def vendor_loss_points(stack: UiStack, vendor: str, job_id: str) -> dict[int, float]:
    """The training loss the emulator reports for the job, read from its own API as a vendor client would."""
    base = stack.emulator.url(vendor)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    answer = requests.get(
        f"{base}/fine_tuning/jobs/{job_id}/events", headers=headers, params={"limit": 100}, timeout=10
    )
    answer.raise_for_status()
    points = {}
    for event in answer.json()["data"]:
        data = event.get("data") or {}
        if event.get("type") == "metrics" and "train_loss" in data:
            points[int(data["step"])] = float(data["train_loss"])
    return points


def drawn_points(scope: Page | FrameLocator) -> dict[int, float]:
    chart = scope.locator("[data-testid=loss-chart]")
    expect(chart).to_be_visible(timeout=UI_TIMEOUT_MS)
    return {
        int(point.get_attribute("data-step") or -1): float(point.get_attribute("data-loss") or "nan")
        for point in chart.locator("[data-series=train] circle").all()
    }


def test_a_job_s_page_draws_the_emulator_s_loss_points_as_it_trains(stack: UiStack, page: Page) -> None:
    training = next(job for job in jobs_of(stack, "other-deployment") if job.vendor == "openai")
    signed_in(page, stack, "admin")
    stack.emulator.advance(5 * 60)  # a few of its steps (it reports one every 1.6 minutes)
    # Airflow's route for the page's own paths: the job's page inside Airflow's frame.
    page.goto(f"{stack.page_url}/fine-tuning/ui/jobs/{training.conn_id}/{training.job_id}")
    frame = page.frame_locator("iframe")
    first = drawn_points(frame)
    expected = vendor_loss_points(stack, "openai", training.job_id)

    assert len(expected) >= 2, "the emulator's job has reported loss by now"
    assert first.keys() == expected.keys()
    for step, loss in expected.items():
        assert first[step] == pytest.approx(loss, rel=1e-5)
    screenshot(page, "job-page")

    stack.emulator.advance(5 * 60)
    page.reload()
    later = drawn_points(page.frame_locator("iframe"))
    assert len(later) > len(first), "the page shows the steps reported since"
    assert later[max(later)] < first[max(first)], "and the loss went down"


def test_the_task_instance_tab_shows_the_task_s_job(stack: UiStack, page: Page) -> None:
    (lifecycle,) = [job for job in jobs_of(stack, "lifecycle") if job.vendor == "openai"]
    signed_in(page, stack, "viewer")
    runs = page.request.get(f"{stack.base_url}/api/v2/dags/ft_train_and_publish/dagRuns").json()["dag_runs"]
    run_id = runs[0]["dag_run_id"]
    page.goto(f"{stack.base_url}/dags/ft_train_and_publish/runs/{run_id}/tasks/train_openai")
    page.locator("a[href$='/plugin/fine-tuning-job']").click()
    frame = page.frame_locator("iframe")
    expect(frame.get_by_role("heading", name=f"Job {lifecycle.job_id}")).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(frame.locator("[data-testid=events] tbody tr").first).to_be_visible()
    screenshot(page, "task-instance-tab")


@pytest.fixture
def viewer_page(stack: UiStack, page: Page) -> Page:
    return signed_in(page, stack, "viewer")


def test_a_viewer_sees_no_cancel_button_and_the_api_refuses_them(stack: UiStack, viewer_page: Page) -> None:
    orphan = jobs_of(stack, "orphan")[0]
    before = cancels_of(stack, orphan.job_id)
    frame = fine_tuning_frame(viewer_page, stack)
    expect(frame.locator("[data-testid=job-row]").first).to_be_visible()
    expect(frame.locator("[data-testid=cancel-button]")).to_have_count(0)

    refused = viewer_page.request.post(
        f"{stack.base_url}/fine-tuning/api/jobs/{orphan.conn_id}/{orphan.job_id}/cancel",
        data=json.dumps({}),
        headers={"Content-Type": "application/json"},
    )
    assert refused.status == 403
    assert cancels_of(stack, orphan.job_id) == before


def cancels_of(stack: UiStack, job_id: str) -> int:
    return sum(
        1
        for request in stack.emulator.requests
        if request.method == "POST" and request.path.endswith(f"{job_id}/cancel")
    )


def test_an_admin_cancels_an_orphan_once_and_the_audit_log_has_it(stack: UiStack, page: Page) -> None:
    orphan = next(job for job in jobs_of(stack, "orphan") if job.vendor == "together")
    signed_in(page, stack, "admin")
    frame = fine_tuning_frame(page, stack)
    frame.locator(f"[data-testid=job-row][data-job='{orphan.job_id}'] [data-testid=cancel-button]").click()
    expect(frame.locator("[data-testid=confirm-text]")).to_have_text(re.compile(f"Cancel job {orphan.job_id}"))
    assert cancels_of(stack, orphan.job_id) == 0, "nothing is sent before the user says yes"
    frame.locator("[data-testid=confirm-yes]").click()

    expect(frame.locator("[data-testid=action-result]")).to_have_text(
        re.compile("is now CANCELL"), timeout=UI_TIMEOUT_MS
    )
    assert cancels_of(stack, orphan.job_id) == 1
    audit = page.request.get(f"{stack.base_url}/api/v2/eventLogs", params={"event": "fine_tuning_cancel_job"})
    assert audit.ok, audit.text()
    entries = [entry for entry in audit.json()["event_logs"] if orphan.job_id in (entry.get("extra") or "")]
    assert [entry["owner"] for entry in entries] == ["admin"]

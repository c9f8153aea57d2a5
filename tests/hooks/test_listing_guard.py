"""``Pages`` ends a listing a broken server would make endless, and passes an honest one through."""

from __future__ import annotations

import pytest

from airflow_provider_ft.core.operations import Pages
from airflow_provider_ft.exceptions import FineTuningApiError
from airflow_provider_ft.jobs import FineTuningJob, JobStatus
from airflow_provider_ft.vendors.wire import JobPage


def _page(ids: list[str], cursor: str | None) -> JobPage:
    jobs = [
        FineTuningJob(id=job_id, vendor="openai", status=JobStatus.RUNNING, vendor_status="running") for job_id in ids
    ]
    return JobPage(jobs, cursor)


def new_jobs(trail: Pages, ids: list[str], cursor: str | None) -> list[FineTuningJob]:
    page = _page(ids, cursor)
    return trail.take(page.jobs, lambda job: job.id, page.next_cursor)


def test_an_honest_listing_yields_each_job_once_even_when_pages_shift() -> None:
    trail = Pages("OpenAI jobs", max_pages=10)
    seen = [job.id for job in new_jobs(trail, ["a", "b"], "2")]
    seen += [job.id for job in new_jobs(trail, ["b", "c"], "3")]  # a new job pushed "b" onto page 2
    seen += [job.id for job in new_jobs(trail, ["d"], None)]
    assert seen == ["a", "b", "c", "d"]


def test_a_cursor_seen_before_ends_the_listing() -> None:
    trail = Pages("OpenAI jobs", max_pages=10)
    new_jobs(trail, ["a"], "x")
    new_jobs(trail, ["b"], "y")
    with pytest.raises(FineTuningApiError, match="cursor 'x' a second time"):
        new_jobs(trail, ["c"], "x")


def test_a_page_of_old_jobs_that_promises_more_ends_the_listing() -> None:
    trail = Pages("DashScope jobs", max_pages=10)
    new_jobs(trail, ["a", "b"], "2")
    with pytest.raises(FineTuningApiError, match="no job not seen before"):
        new_jobs(trail, ["a", "b"], "3")


def test_fresh_pages_forever_end_at_max_pages() -> None:
    trail = Pages("OpenAI jobs", max_pages=5)
    for number in range(1, 5):
        new_jobs(trail, [f"job-{number}"], f"cursor-{number}")
    with pytest.raises(FineTuningApiError, match="max_pages=5") as raised:
        new_jobs(trail, ["job-5"], "cursor-5")
    assert trail.pages == 5
    assert "after 5 pages" in str(raised.value)


def test_an_empty_last_page_ends_quietly() -> None:
    trail = Pages("OpenAI jobs", max_pages=2)
    assert new_jobs(trail, [], None) == []

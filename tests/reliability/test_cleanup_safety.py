"""Cleanup safety properties not covered by ``tests/operators/test_cleanup_properties.py`` (which proves that a
cleanup acts on exactly the jobs its filters select):

- a dry run sends no mutating request, whatever the jobs, the age threshold and the concurrency;
- jobs whose calls fail for good (HTTP 500 on their paths) do not stop the others: every other selected job is
  processed, and every selected job is reported once, as acted on or as failed.

Jobs are seeded only in states that do not change by themselves (running without end, paused, finished), so the
session's emulator can be used as it runs. The expected selection is computed here from what was seeded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_ft.exceptions import FineTuningError
from airflow_provider_ft.operators.fine_tuning import CLEANUP_SUMMARY_XCOM_KEY, CleanupFineTuningJobsOperator
from airflow_provider_ft_emulator import Fault, FineTuningEmulator
from tests.conftest import CONN_TYPES, FAST_RETRIES, ConnectionFactory
from tests.operators.conftest import Run, mutating, status_of
from tests.reliability.conftest import ExampleCounter

# Vendor words that never change on their own, and the normalized status each one means.
STABLE_WORDS = {
    "dashscope": {
        "RUNNING": "RUNNING",
        "SUSPENDED": "PAUSED",
        "SUCCEEDED": "SUCCEEDED",
        "FAILED": "FAILED",
        "CANCELED": "CANCELLED",
    },
    "openai": {
        "running": "RUNNING",
        "paused": "PAUSED",
        "succeeded": "SUCCEEDED",
        "failed": "FAILED",
        "cancelled": "CANCELLED",
    },
    "azure": {
        "running": "RUNNING",
        "succeeded": "SUCCEEDED",
        "failed": "FAILED",
        "cancelled": "CANCELLED",
    },
}
DEFAULT_STATUSES = {"cancel": {"QUEUED", "RUNNING", "PAUSED"}, "delete": {"SUCCEEDED", "FAILED", "CANCELLED"}}
AFTER: dict[str, dict[str, str | None]] = {
    "cancel": {"dashscope": "CANCELED", "openai": "cancelled", "azure": "cancelled", "together": "cancelled"},
    "delete": {"dashscope": None, "openai": None, "azure": None, "together": None},
}
ACTION_PATHS = {
    ("dashscope", "cancel"): ("POST", "/fine-tunes/{}/cancel"),
    ("dashscope", "delete"): ("DELETE", "/fine-tunes/{}"),
    ("openai", "cancel"): ("POST", "/fine_tuning/jobs/{}/cancel"),
    ("together", "cancel"): ("POST", "/fine-tunes/{}/cancel"),
    ("together", "delete"): ("DELETE", "/fine-tunes/{}"),
}
AGES_HOURS = [1, 5, 30, 200]
THRESHOLDS_HOURS = [2, 10, 100]
# Derandomized, without an example database: the report compares example counts run to run, and nothing is written.
PROPERTY = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def flavours(row: str) -> list[Any]:
    """Each vendor with each action it has, as report cases of the property ``row``."""
    return [
        pytest.param(
            vendor,
            action,
            id=f"{vendor}-{action}",
            marks=pytest.mark.reliability(area="cleanup safety", row=row, column=action, vendor=vendor),
        )
        for vendor, action in (("dashscope", "cancel"), ("dashscope", "delete"), ("openai", "cancel"))
    ]


@dataclass(frozen=True)
class Seed:
    word: str
    age_hours: int


def job_sets(vendor: str) -> st.SearchStrategy[list[Seed]]:
    seed = st.builds(Seed, word=st.sampled_from(sorted(STABLE_WORDS[vendor])), age_hours=st.sampled_from(AGES_HOURS))
    return st.lists(seed, min_size=1, max_size=8)


def seed_all(emulator: FineTuningEmulator, vendor: str, jobs: list[Seed]) -> dict[str, Seed]:
    return {
        emulator.seed_job(vendor, status=job.word, age=timedelta(hours=job.age_hours), runs_for=None): job
        for job in jobs
    }


def selected(vendor: str, action: str, seeded: dict[str, Seed], older_than_hours: int) -> set[str]:
    return {
        job_id
        for job_id, job in seeded.items()
        if STABLE_WORDS[vendor][job.word] in DEFAULT_STATUSES[action] and job.age_hours > older_than_hours
    }


def cleanup(conn_id: str, action: str, older_than_hours: int, **options: Any) -> CleanupFineTuningJobsOperator:
    return CleanupFineTuningJobsOperator(
        task_id="cleanup", conn_id=conn_id, action=action, older_than=timedelta(hours=older_than_hours), **options
    )


# The session's emulator is shared by the examples of a test: each example starts with ``reset()``.


@pytest.mark.parametrize(("vendor", "action"), flavours("dry run sends no mutating request"))
@PROPERTY
@given(data=st.data(), older_than_hours=st.sampled_from(THRESHOLDS_HOURS), concurrency=st.integers(1, 4))
def test_dry_run_never_sends_a_mutating_request(
    emulator_server: FineTuningEmulator,
    make_connection: ConnectionFactory,
    examples: ExampleCounter,
    vendor: str,
    action: str,
    data: st.DataObject,
    older_than_hours: int,
    concurrency: int,
) -> None:
    fresh = emulator_server
    fresh.reset()
    conn_id = make_connection("ft_dry", CONN_TYPES[vendor], host=fresh.url(vendor), **FAST_RETRIES)
    seeded = seed_all(fresh, vendor, data.draw(job_sets(vendor), label="jobs"))
    expected = selected(vendor, action, seeded, older_than_hours)

    summary = Run().execute(cleanup(conn_id, action, older_than_hours, dry_run=True, concurrency=concurrency))

    assert mutating(fresh.requests) == []
    assert set(summary["skipped_ids"]) == expected
    assert (summary["acted"], summary["failed"]) == (0, 0)
    assert {job_id: status_of(fresh, vendor, job_id) for job_id in seeded} == {
        job_id: job.word for job_id, job in seeded.items()
    }
    examples()


@pytest.mark.parametrize(("vendor", "action"), flavours("failing jobs never stop the others; all are reported"))
@PROPERTY
@given(data=st.data(), older_than_hours=st.sampled_from(THRESHOLDS_HOURS), concurrency=st.integers(1, 4))
def test_failing_jobs_leave_the_others_processed_and_all_reported(
    emulator_server: FineTuningEmulator,
    make_connection: ConnectionFactory,
    examples: ExampleCounter,
    vendor: str,
    action: str,
    data: st.DataObject,
    older_than_hours: int,
    concurrency: int,
) -> None:
    fresh = emulator_server
    fresh.reset()
    conn_id = make_connection("ft_failing", CONN_TYPES[vendor], host=fresh.url(vendor), **FAST_RETRIES)
    seeded = seed_all(fresh, vendor, data.draw(job_sets(vendor), label="jobs"))
    broken = data.draw(st.sets(st.sampled_from(sorted(seeded))), label="broken")
    method, path = ACTION_PATHS[(vendor, action)]
    for job_id in broken:
        fresh.inject(
            Fault(kind="status", status=500, method=method, path=re.escape(path.format(job_id)) + "$", times=1_000)
        )
    expected = selected(vendor, action, seeded, older_than_hours)
    failing = expected & broken

    run, operator = Run(), cleanup(conn_id, action, older_than_hours, concurrency=concurrency)
    if failing:
        with pytest.raises(FineTuningError, match=f"Could not {action} {len(failing)} of {len(expected)} matched"):
            run.execute(operator)
    else:
        run.execute(operator)
    summary = run.ti.xcoms[CLEANUP_SUMMARY_XCOM_KEY]

    assert set(summary["failures"]) == failing
    assert all("HTTP 500" in message for message in summary["failures"].values())
    assert set(summary["acted_ids"]) == expected - failing, "every job that could be processed was"
    assert summary["skipped"] == 0
    assert summary["matched"] == len(expected) == summary["acted"] + summary["failed"]
    for job_id, job in seeded.items():
        done = job_id in expected - failing
        assert status_of(fresh, vendor, job_id) == (AFTER[action][vendor] if done else job.word)
    examples()

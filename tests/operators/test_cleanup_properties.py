"""Property: the cleanup acts on exactly the jobs its filters select, never on any other job.

Random job sets and random filters run against an emulator whose clock is frozen (no job changes state by
itself during an example). The expected set is computed here from what was seeded, with this module's own
reading of the filters; it does not call the operator's selection function.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from airflow_provider_ft.exceptions import FineTuningError
from airflow_provider_ft.operators.fine_tuning import CLEANUP_SUMMARY_XCOM_KEY, CleanupFineTuningJobsOperator
from airflow_provider_ft_emulator import FineTuningEmulator
from tests.conftest import API_KEY, FAST_RETRIES, ConnectionFactory, Vendor
from tests.operators.conftest import CANCELLED, Run, acted_ids, mutating, status_of

# Each vendor's status words and the normalized status this test expects them to mean.
WORDS: dict[str, dict[str, str]] = {
    "dashscope": {
        "PENDING": "QUEUED",
        "QUEUING": "QUEUED",
        "RUNNING": "RUNNING",
        "SUSPENDED": "PAUSED",
        "SUCCEEDED": "SUCCEEDED",
        "FAILED": "FAILED",
        "CANCELED": "CANCELLED",
    },
    "openai": {
        "validating_files": "QUEUED",
        "queued": "QUEUED",
        "running": "RUNNING",
        "paused": "PAUSED",
        "succeeded": "SUCCEEDED",
        "failed": "FAILED",
        "cancelled": "CANCELLED",
    },
    "azure": {
        "pending": "QUEUED",
        "running": "RUNNING",
        "succeeded": "SUCCEEDED",
        "failed": "FAILED",
        "cancelled": "CANCELLED",
    },
    # user_error is left out: the emulator's lifecycle knows one failed word per vendor (error).
    "together": {
        "pending": "QUEUED",
        "queued": "QUEUED",
        "running": "RUNNING",
        "compressing": "RUNNING",
        "uploading": "RUNNING",
        "completed": "SUCCEEDED",
        "error": "FAILED",
        "cancelled": "CANCELLED",
    },
}
UNFINISHED = ["QUEUED", "RUNNING", "PAUSED"]
FINISHED = ["SUCCEEDED", "FAILED", "CANCELLED"]
ACTIONS = {
    "dashscope": ["cancel", "delete"],
    "openai": ["cancel"],
    "azure": ["cancel", "delete"],
    "together": ["cancel", "delete"],
}
AGES_HOURS = [0.5, 3, 30, 200]
# Filters are drawn with "no filter" and loose thresholds more often, so that most examples select some jobs.
THRESHOLDS_HOURS = [1, 1, 10, 100]
NAMES = [None, "nightly-a", "nightly-b", "exp-1", "Nightly-c"]
PATTERNS = [None, None, None, "nightly-*", "*-1", "exp-?", "*", "[Nn]ightly-*"]
MODELS = ["m-small", "m-large"]
TEAMS = [None, "a", "b"]


@dataclass(frozen=True)
class Seed:
    word: str
    age_hours: float
    name: str | None
    model: str
    team: str | None


@dataclass(frozen=True)
class Filters:
    action: str
    statuses: list[str] | None
    older_than_hours: float
    name_pattern: str | None
    model: str | None
    metadata: dict[str, str] | None
    max_jobs: int
    dry_run: bool


def seeds(vendor: str) -> st.SearchStrategy[list[Seed]]:
    seed = st.builds(
        Seed,
        word=st.sampled_from(sorted(WORDS[vendor])),
        age_hours=st.sampled_from(AGES_HOURS),
        name=st.sampled_from(NAMES),
        model=st.sampled_from(MODELS),
        team=st.sampled_from(TEAMS),
    )
    return st.lists(seed, min_size=1, max_size=15)


@st.composite
def filters(draw: st.DrawFn, vendor: str) -> Filters:
    action = draw(st.sampled_from(ACTIONS[vendor]))
    choices = UNFINISHED if action == "cancel" else FINISHED
    statuses = draw(st.none() | st.lists(st.sampled_from(choices), min_size=2, max_size=3, unique=True))
    return Filters(
        action=action,
        statuses=statuses,
        older_than_hours=draw(st.sampled_from(THRESHOLDS_HOURS)),
        name_pattern=draw(st.sampled_from(PATTERNS)),
        model=draw(st.sampled_from([None, None, *MODELS])),
        metadata=draw(st.sampled_from([None, None, {"team": "a"}])),
        max_jobs=draw(st.sampled_from([3, 1000])),
        dry_run=draw(st.booleans()),
    )


def visible_name(vendor: str, job_id: str, seed: Seed) -> str | None:
    """The job's name as the vendor shows it: DashScope names unnamed jobs after their id."""
    if seed.name is not None:
        return seed.name
    return job_id if vendor == "dashscope" else None


def visible_metadata(vendor: str, seed: Seed) -> dict[str, str]:
    """DashScope and Together AI jobs have no metadata; OpenAI's carry the team and (as the emulator does) the name."""
    if vendor in ("dashscope", "together"):
        return {}
    metadata = {"team": seed.team} if seed.team else {}
    if seed.name:
        metadata["name"] = seed.name
    return metadata


def expected_targets(vendor: str, seeded: dict[str, Seed], wanted: Filters) -> set[str]:
    statuses = set(wanted.statuses or (UNFINISHED if wanted.action == "cancel" else FINISHED))
    targets = set()
    for job_id, seed in seeded.items():
        name = visible_name(vendor, job_id, seed)
        metadata = visible_metadata(vendor, seed)
        if (
            WORDS[vendor][seed.word] in statuses
            and seed.age_hours > wanted.older_than_hours
            and (wanted.name_pattern is None or (name is not None and fnmatch.fnmatchcase(name, wanted.name_pattern)))
            and (wanted.model is None or seed.model == wanted.model)
            and all(metadata.get(key) == value for key, value in (wanted.metadata or {}).items())
        ):
            targets.add(job_id)
    return targets


@pytest.fixture(scope="module")
def frozen_emulator() -> Iterator[FineTuningEmulator]:
    """An emulator whose clock stands still: seeded jobs keep their status until the operator acts."""
    with FineTuningEmulator(api_key=API_KEY, time_scale=0.0) as server:
        yield server


def run_cleanup(conn_id: str, wanted: Filters, refuses: bool) -> dict[str, Any]:
    operator = CleanupFineTuningJobsOperator(
        task_id="cleanup",
        conn_id=conn_id,
        action=wanted.action,
        older_than=timedelta(hours=wanted.older_than_hours),
        statuses=wanted.statuses,
        name_pattern=wanted.name_pattern,
        model=wanted.model,
        metadata=wanted.metadata,
        max_jobs=wanted.max_jobs,
        dry_run=wanted.dry_run,
        concurrency=4,
    )
    run = Run()
    if refuses:
        with pytest.raises(FineTuningError, match="max_jobs"):
            run.execute(operator)
    else:
        run.execute(operator)
    summary: dict[str, Any] = run.ti.xcoms[CLEANUP_SUMMARY_XCOM_KEY]
    return summary


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_cleanup_touches_exactly_the_selected_jobs(
    data: st.DataObject, frozen_emulator: FineTuningEmulator, vendor: Vendor, make_connection: ConnectionFactory
) -> None:
    emulator = frozen_emulator
    emulator.reset()
    conn_id = make_connection("frozen", vendor.conn_type, host=emulator.url(vendor.name), **FAST_RETRIES)
    jobs = data.draw(seeds(vendor.name), label="jobs")
    wanted = data.draw(filters(vendor.name), label="filters")
    seeded = {
        emulator.seed_job(
            vendor.name,
            status=seed.word,
            age=timedelta(hours=seed.age_hours),
            name=seed.name,
            model=seed.model,
            metadata={"team": seed.team} if seed.team else None,
            runs_for=None,
        ): seed
        for seed in jobs
    }
    targets = expected_targets(vendor.name, seeded, wanted)
    event("jobs selected", len(targets))
    event("mode", "refuse" if len(targets) > wanted.max_jobs else "dry run" if wanted.dry_run else "act")

    refused = len(targets) > wanted.max_jobs
    summary = run_cleanup(conn_id, wanted, refuses=refused)

    if refused:
        # The listing stops at the first match past the cap: only max_jobs + 1 of the targets were seen.
        assert summary["seen"] >= summary["matched"] == wanted.max_jobs + 1
        assert set(summary["skipped_ids"]) <= targets
    else:
        assert summary["seen"] >= summary["matched"] == len(targets)
    if refused or wanted.dry_run:
        assert mutating(emulator.requests) == []
        assert refused or set(summary["skipped_ids"]) == targets
        untouched = set(seeded)
    else:
        assert acted_ids(emulator.requests) == targets
        assert set(summary["acted_ids"]) == targets
        assert summary["failed"] == summary["skipped"] == 0
        untouched = set(seeded) - targets
    for job_id in untouched:
        assert status_of(emulator, vendor.name, job_id) == seeded[job_id].word
    for job_id in set(seeded) - untouched:
        after = status_of(emulator, vendor.name, job_id)
        assert after == (CANCELLED[vendor.name] if wanted.action == "cancel" else None)

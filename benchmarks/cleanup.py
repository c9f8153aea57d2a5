"""Benchmark 3: cleanup throughput of ``CleanupFineTuningJobsOperator`` against a sequential loop.

Vendor: OpenAI (its cancel answers with the job, so a cancel is one call). Before each scenario the emulator (own
process) is emptied and seeded with N running jobs created two days ago, and every call gets 20 ms of injected
latency (``Fault(kind="latency", delay=0.02)``). Scenarios, each timed end to end (listing every job, selecting
the stale ones, cancelling them):

- sequential baseline: ``hook.list_jobs()``, ``select_stale_jobs`` with the same criteria, then ``hook.cancel_job``
  for one job after the other;
- the operator (``action="cancel"``, ``older_than=1 day``) at its default ``concurrency`` and at 8, its
  ``execute`` called directly with a minimal context (``{"ti": <object with xcom_push>}``);
- the operator at concurrency 8 again, with HTTP 429 (``Retry-After: 1``) on every 10th call as well
  (``Fault(kind="status", status=429, every=10, delay=0.02)``, injected before the latency fault so that the 9
  other calls of 10 still get their 20 ms).

After each scenario the emulator's job list is checked: every seeded job must be cancelled. Connections are set
through ``AIRFLOW_CONN_*`` variables in a throwaway ``AIRFLOW_HOME``.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from benchmarks._common import allow_bytecode_cache, prepare_airflow_home, ratio
from benchmarks._emulator import EmulatorProcess
from benchmarks._report import Section, Table, Target, bench_main

if TYPE_CHECKING:
    from airflow.sdk import Context

VENDOR = "openai"
CONN_ID = "ft_bench_cleanup"
LATENCY = 0.02
OLDER_THAN = timedelta(days=1)
TARGET_SPEEDUP = 6.0
MANY = 10**9


@dataclass
class Outcome:
    """One scenario's result."""

    name: str
    seconds: float
    acted: int
    failed: int
    skipped: int
    cancelled_on_server: int
    requests: int
    rate_limited: int
    connections: int


class RecordingTI:
    """The part of a task instance the operator's ``execute`` uses."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def sequential(conn_id: str) -> dict[str, int]:
    """The baseline: list, select like the operator, then cancel one job after the other with one hook."""
    from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
    from airflow_provider_ft.operators._cleanup import DEFAULT_STATUSES, CleanupCriteria, select_stale_jobs

    hook = FineTuningHook(conn_id)
    criteria = CleanupCriteria(statuses=DEFAULT_STATUSES["cancel"], older_than=OLDER_THAN)
    stale = select_stale_jobs(hook.list_jobs(), criteria, datetime.now(UTC)).matched
    failed = 0
    for job in stale:
        try:
            hook.cancel_job(job.id)
        except Exception:
            failed += 1
    hook.close()
    return {"acted": len(stale) - failed, "failed": failed, "skipped": 0}


def operator(conn_id: str, concurrency: int | None, jobs: int) -> dict[str, int]:
    from airflow_provider_ft.operators.cleanup import CleanupFineTuningJobsOperator

    options: dict[str, Any] = {} if concurrency is None else {"concurrency": concurrency}
    task = CleanupFineTuningJobsOperator(
        task_id=f"cleanup_{concurrency}", conn_id=conn_id, older_than=OLDER_THAN, max_jobs=jobs, **options
    )
    ti = RecordingTI()
    try:
        summary = task.execute(cast("Context", {"ti": ti}))
    except Exception as error:  # it fails the task when a job failed, after pushing the summary
        print(f"operator raised: {error}")
        summary = ti.xcom.get("cleanup_summary") or {"acted": 0, "failed": jobs, "skipped": 0}
    return {key: int(summary[key]) for key in ("acted", "failed", "skipped")}


def default_concurrency() -> int:
    from airflow_provider_ft.operators.cleanup import CleanupFineTuningJobsOperator

    return int(inspect.signature(CleanupFineTuningJobsOperator.__init__).parameters["concurrency"].default)


def scenario(
    emulator: EmulatorProcess, name: str, jobs: int, action: Callable[[], dict[str, int]], rate_limit: bool
) -> Outcome:
    emulator.reset()
    emulator.seed_jobs(VENDOR, jobs, status="running", age=2 * 86400, runs_for=None)
    if rate_limit:
        emulator.inject("status", status=429, headers={"Retry-After": "1"}, every=10, times=MANY, delay=LATENCY)
    emulator.inject("latency", delay=LATENCY, times=MANY)
    opened = emulator.connections_opened()
    started = time.perf_counter()
    counts = action()
    seconds = time.perf_counter() - started
    statuses = emulator.status_counts()
    cancelled = sum(1 for job in emulator.jobs(VENDOR) if job["status"] == "cancelled")
    print(f"{name}: {seconds:.2f} s, {counts}, cancelled on server {cancelled}, statuses {statuses}")
    return Outcome(
        name,
        seconds,
        counts["acted"],
        counts["failed"],
        counts["skipped"],
        cancelled,
        sum(statuses.values()),
        statuses.get("429", 0),
        emulator.connections_opened() - opened,
    )


def outcomes_table(outcomes: list[Outcome], jobs: int) -> Table:
    baseline = outcomes[0].seconds
    table = Table(
        f"{jobs} stale OpenAI jobs, 20 ms latency per call",
        [
            "Scenario",
            "Seconds",
            "Jobs/s",
            "Speed-up vs sequential",
            "Acted",
            "Failed",
            "Skipped",
            "Cancelled on server",
            "Requests",
            "429s",
            "TCP connections",
        ],
    )
    for found in outcomes:
        table.add(
            found.name,
            f"{found.seconds:.2f}",
            f"{jobs / found.seconds:.0f}",
            ratio(baseline / found.seconds),
            found.acted,
            found.failed,
            found.skipped,
            found.cancelled_on_server,
            found.requests,
            found.rate_limited,
            found.connections,
        )
    return table


def run(smoke: bool) -> Section:
    allow_bytecode_cache()
    prepare_airflow_home()
    jobs = 100 if smoke else 2000
    section = Section("cleanup", "3. Cleanup throughput: the operator vs a sequential loop", __doc__ or "")
    default = default_concurrency()
    with EmulatorProcess() as emulator:
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = emulator.connection_uri(VENDOR)
        plans: list[tuple[str, Callable[[], dict[str, int]], bool]] = [
            ("sequential hook.cancel_job loop", lambda: sequential(CONN_ID), False),
            (f"operator, default concurrency ({default})", lambda: operator(CONN_ID, None, jobs), False),
            ("operator, concurrency 8", lambda: operator(CONN_ID, 8, jobs), False),
            ("operator, concurrency 8, 429 on 10% of calls", lambda: operator(CONN_ID, 8, jobs), True),
        ]
        outcomes = [scenario(emulator, name, jobs, action, limited) for name, action, limited in plans]
    section.tables.append(outcomes_table(outcomes, jobs))
    add_targets(section, outcomes, jobs)
    if smoke:
        section.notes.append(f"Smoke mode: {jobs} jobs instead of 2,000.")
    return section


def add_targets(section: Section, outcomes: list[Outcome], jobs: int) -> None:
    sequential_run, default_run, eight, limited = outcomes
    speedup = sequential_run.seconds / eight.seconds
    section.targets.append(
        Target(
            "Concurrency 8 vs sequential",
            f"{ratio(speedup)} ({sequential_run.seconds:.1f} s -> {eight.seconds:.1f} s)",
            f">= {TARGET_SPEEDUP:.0f}x",
            speedup >= TARGET_SPEEDUP,
            "" if speedup >= TARGET_SPEEDUP else "listing is sequential (pages) and client CPU on 2 cores",
        )
    )
    for found in (default_run, eight, limited):
        clean = found.failed == 0 and found.cancelled_on_server == jobs
        section.targets.append(
            Target(
                f"Zero failed jobs: {found.name}",
                f"failed {found.failed}, cancelled on server {found.cancelled_on_server}/{jobs}",
                "0 failed, all cancelled",
                clean,
            )
        )
    extra = limited.seconds - eight.seconds
    section.notes.append(
        f"429 injection cost {extra:.1f} s extra at concurrency 8 ({limited.rate_limited} responses were 429 with "
        f"Retry-After 1 s: {limited.rate_limited} s of waiting spread over 8 threads is "
        f"{limited.rate_limited / 8:.1f} s)."
    )


if __name__ == "__main__":
    raise SystemExit(bench_main(run))

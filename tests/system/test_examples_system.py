"""Scenario 1: the example DAGs, the lifecycle DAG and a cleanup of 500 jobs run to success on Celery workers.

The example DAGs are the files of ``example_dags/`` as shipped but for three edits the tests make to their copies:
the cleanup runs when triggered instead of daily (a daily schedule would start a run as soon as it is parsed), and
``ft_train_and_publish`` (the lifecycle DAG: create, deferrable wait, teardown) polls every second on connections
to a fast emulator instead of every 30 s. Skipped unless ``FT_SYSTEM_TESTS=1``; the cluster is the session's.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.operators.conftest import acted_id, mutating, status_of
from tests.system.harness import wait_for

if TYPE_CHECKING:
    from airflow_provider_ft_emulator import FineTuningEmulator
    from tests.system.harness import AirflowCluster

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(os.environ.get("FT_SYSTEM_TESTS") != "1", reason="system test: set FT_SYSTEM_TESTS=1 to run"),
    pytest.mark.timeout(600),
]

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
DAYS = timedelta(days=1)
HOURS = timedelta(hours=1)
BUDGET_SECONDS = 300.0
CLEANUP_JOBS = 500
#: The create route of each vendor (relative to its mount, as the emulator records it).
CREATE_PATHS = {"dashscope": "/fine-tunes", "openai": "/fine_tuning/jobs"}
CLEANUP_DAG_ID = "ft_system_cleanup"
#: The edits of each example's copy: (what the file says, what the copy says).
EDITS = {
    "ft_cleanup_stale_jobs": [('schedule="@daily"', "schedule=None")],
    "ft_train_and_publish": [
        ("POLL_INTERVAL = 30.0", "POLL_INTERVAL = 1.0"),
        ('"conn_id": "dashscope_default"', '"conn_id": "ft_fast_dashscope"'),
        ('"conn_id": "openai_default"', '"conn_id": "ft_fast_openai"'),
    ],
}

CLEANUP_DAG = """
from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_ft.operators.cleanup import CleanupFineTuningJobsOperator

with DAG("{dag_id}", schedule=None, start_date=datetime(2025, 1, 1), catchup=False) as dag:
    CleanupFineTuningJobsOperator(
        task_id="cleanup",
        conn_id="{{{{ dag_run.conf['conn_id'] }}}}",
        action="cancel",
        older_than=timedelta(hours=6),
        statuses=["RUNNING"],
        max_jobs=1000,
        concurrency=8,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )
"""


def example_source(dag_id: str) -> str:
    source = (EXAMPLES / f"{dag_id}.py").read_text()
    for shipped, edited in EDITS.get(dag_id, []):
        assert shipped in source, f"{dag_id}: the example no longer says {shipped!r}"
        source = source.replace(shipped, edited)
    return source


def acts_per_job(emulator: FineTuningEmulator, vendor: str) -> Counter[str]:
    """How many cancel and delete requests (any request that could change a job) each job of ``vendor`` got."""
    return Counter(acted_id(request) for request in mutating(emulator.requests) if request.vendor == vendor)


def seed_cleanup(emulator: FineTuningEmulator, vendor: str, running: str, succeeded: str) -> dict[str, list[str]]:
    """``CLEANUP_JOBS`` stale running jobs to cancel, and jobs the filters leave alone (young, or finished)."""
    return {
        "stale": emulator.seed_jobs(vendor, CLEANUP_JOBS, status=running, age=2 * DAYS, runs_for=None),
        "young": emulator.seed_jobs(vendor, 20, status=running, age=1 * HOURS, runs_for=None),
        "finished": emulator.seed_jobs(vendor, 20, status=succeeded, age=3 * DAYS),
    }


@pytest.mark.scenario(
    "1a. Example DAGs",
    "ft_cleanup_stale_jobs, ft_pipeline_teardown and ft_wait_for_job, run at once on the Celery workers",
)
def test_the_example_dags_succeed_on_celery(
    cluster: AirflowCluster, emulator: FineTuningEmulator, scenario_notes: list[str]
) -> None:
    deadline = time.monotonic() + BUDGET_SECONDS
    ds, oa = "dashscope", "openai"
    for dag_id in ("ft_cleanup_stale_jobs", "ft_pipeline_teardown", "ft_wait_for_job"):
        cluster.add_dag(dag_id, example_source(dag_id), deadline)
    stale = {
        ds: [emulator.seed_job(ds, status="RUNNING", age=2 * DAYS, runs_for=None)],
        oa: [emulator.seed_job(oa, status="running", age=2 * DAYS, runs_for=None)],
    }
    old_finished = [emulator.seed_job(ds, status="SUCCEEDED", age=30 * DAYS)]
    left_alone = {
        emulator.seed_job(ds, status="RUNNING", age=1 * HOURS, runs_for=None): (ds, "RUNNING"),
        emulator.seed_job(oa, status="succeeded", age=30 * DAYS): (oa, "succeeded"),
    }
    pipeline = {ds: emulator.seed_job(ds, status="RUNNING", runs_for=None)}
    pipeline[oa] = emulator.seed_job(oa, status="running", runs_for=None)
    finished_job = emulator.seed_job(ds, status="SUCCEEDED")

    runs = {
        "ft_cleanup_stale_jobs": cluster.trigger("ft_cleanup_stale_jobs"),
        "ft_pipeline_teardown": cluster.trigger(
            "ft_pipeline_teardown", {"dashscope_job_id": pipeline[ds], "openai_job_id": pipeline[oa]}
        ),
        "ft_wait_for_job": cluster.trigger("ft_wait_for_job", {"job_id": finished_job}),
    }
    states = {dag_id: cluster.wait_for_run(dag_id, run_id, deadline) for dag_id, run_id in runs.items()}
    assert states == dict.fromkeys(runs, "success"), {d: cluster.task_states(d, r) for d, r in runs.items()}

    assert {status_of(emulator, ds, job) for job in stale[ds]} == {"CANCELED"}
    assert {status_of(emulator, oa, job) for job in stale[oa]} == {"cancelled"}
    assert all(emulator.job(ds, job) is None for job in old_finished)
    assert {job: (vendor, status_of(emulator, vendor, job)) for job, (vendor, _) in left_alone.items()} == left_alone
    summaries = cluster.xcom_results("ft_cleanup_stale_jobs", runs["ft_cleanup_stale_jobs"])
    assert summaries["cancel_stale_dashscope_jobs"]["acted_ids"] == stale[ds]
    assert summaries["cancel_stale_openai_jobs"]["acted_ids"] == stale[oa]
    assert summaries["delete_old_finished_dashscope_jobs"]["acted_ids"] == old_finished

    assert emulator.job(ds, pipeline[ds]) is None, "the pipeline's teardown deletes its DashScope job"
    assert status_of(emulator, oa, pipeline[oa]) == "cancelled"
    waited = cluster.task_states("ft_wait_for_job", runs["ft_wait_for_job"])
    assert waited["wait_for_job"] == waited["publish_model"] == "success"
    assert waited["report_failure"] == "skipped"
    hosts = {ti["hostname"] for dag_id, run in runs.items() for ti in cluster.task_instances(dag_id, run).values()}
    assert hosts <= {"worker-a", "worker-b", "", None}, hosts
    scenario_notes.append(f"3 runs succeeded; tasks ran on {', '.join(sorted(h for h in hosts if h))}")


@pytest.mark.scenario(
    "1b. Lifecycle DAG",
    "ft_train_and_publish: upload, create, deferrable wait in a triggerer, evaluate, teardown, on both vendors",
)
def test_the_lifecycle_dag_succeeds_on_celery(
    cluster: AirflowCluster, fast_emulator: FineTuningEmulator, scenario_notes: list[str]
) -> None:
    deadline = time.monotonic() + BUDGET_SECONDS
    fast_emulator.reset()
    dag_id = "ft_train_and_publish"
    cluster.add_dag(dag_id, example_source(dag_id), deadline)
    run_id = cluster.trigger(dag_id)
    seen: dict[str, set[str | None]] = {}

    def ended() -> bool:
        for task_id, state in cluster.task_states(dag_id, run_id).items():
            seen.setdefault(task_id, set()).add(state)
        return cluster.run_state(dag_id, run_id) in ("success", "failed")

    wait_for("the lifecycle run to end", ended, deadline, cluster.all_logs, interval=0.3)
    assert cluster.run_state(dag_id, run_id) == "success", cluster.task_states(dag_id, run_id)
    results = cluster.xcom_results(dag_id, run_id)
    models = cluster.xcoms(dag_id, run_id, "fine_tuned_model")
    for vendor in ("dashscope", "openai"):
        assert "deferred" in seen[f"train_{vendor}"], f"train_{vendor} never deferred: {seen[f'train_{vendor}']}"
        assert results[f"train_{vendor}"]["status"] == "SUCCEEDED"
        assert models[f"train_{vendor}"] == results[f"train_{vendor}"]["fine_tuned_model"]
        assert results[f"evaluate_{vendor}"] == models[f"train_{vendor}"]
        creates = [r for r in fast_emulator.requests if r.method == "POST" and r.path == CREATE_PATHS[vendor]]
        assert len([r for r in creates if r.vendor == vendor]) == 1, "one create per vendor"
    assert fast_emulator.jobs("dashscope") == [], "the teardown deletes the DashScope job"
    assert [job["status"] for job in fast_emulator.jobs("openai")] == ["succeeded"]
    scenario_notes.append("both jobs created once, waited for in a triggerer, succeeded; DashScope's deleted")


@pytest.mark.scenario(
    "1c. Cleanup of 500 jobs",
    f"{CLEANUP_JOBS} stale OpenAI jobs among 40 the filters leave alone, cancelled by one task on a Celery worker",
)
def test_a_cleanup_of_500_jobs_succeeds_on_celery(
    cluster: AirflowCluster, emulator: FineTuningEmulator, scenario_notes: list[str]
) -> None:
    deadline = time.monotonic() + BUDGET_SECONDS
    jobs = seed_cleanup(emulator, "openai", "running", "succeeded")
    cluster.add_dag(CLEANUP_DAG_ID, CLEANUP_DAG.format(dag_id=CLEANUP_DAG_ID), deadline)
    started = time.monotonic()
    run_id = cluster.trigger(CLEANUP_DAG_ID, {"conn_id": "ft_live_openai"})
    assert cluster.wait_for_run(CLEANUP_DAG_ID, run_id, deadline) == "success", cluster.task_states(
        CLEANUP_DAG_ID, run_id
    )
    took = time.monotonic() - started

    acted = acts_per_job(emulator, "openai")
    assert set(acted) == set(jobs["stale"]), "only the stale jobs are touched"
    assert set(acted.values()) == {1}, "one cancel per job"
    assert {status_of(emulator, "openai", job) for job in jobs["stale"]} == {"cancelled"}
    assert {status_of(emulator, "openai", job) for job in jobs["young"]} == {"running"}
    assert {status_of(emulator, "openai", job) for job in jobs["finished"]} == {"succeeded"}
    summary = cluster.xcom_results(CLEANUP_DAG_ID, run_id)["cleanup"]
    assert (summary["matched"], summary["acted"], summary["failed"]) == (CLEANUP_JOBS, CLEANUP_JOBS, 0)
    assert set(summary["acted_ids"]) == set(jobs["stale"])
    scenario_notes.append(f"{CLEANUP_JOBS}/{CLEANUP_JOBS} cancelled once each, 40 left alone; run took {took:.1f} s")

"""System tests: ``cancel_on_kill`` under a real scheduler and a real triggerer (Airflow 3.3).

Deferrable sensors with ``cancel_on_kill=True`` wait for jobs of the in-process emulator (one DashScope, one
OpenAI). Two things must hold, and only real processes can show them:

- **Kill while deferred**: a user marks the deferred tasks failed through the REST API; the triggerer cancels their
  triggers and calls ``on_kill``, which cancels the jobs at the vendor.
- **Triggerer restart while deferred**: the triggerer is stopped (SIGTERM) and a new one started; the new one takes
  the triggers over and the jobs are *not* cancelled (no ``on_kill``); the sensors then succeed when the jobs do.

These are the proof for ``FineTuningJobTrigger(cancel_on_kill=True)`` whichever task defers to it. Skipped unless
``FT_SYSTEM_TESTS=1``; the cluster is the session's (``conftest.py``).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import pytest

from tests.system.harness import wait_for

if TYPE_CHECKING:
    from airflow_provider_ft.emulator import FineTuningEmulator
    from tests.system.harness import AirflowCluster

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(os.environ.get("FT_SYSTEM_TESTS") != "1", reason="system test: set FT_SYSTEM_TESTS=1 to run"),
    pytest.mark.timeout(240),
]

TRIGGER_CLASSPATH = "airflow_provider_ft.triggers.fine_tuning.FineTuningJobTrigger"
VENDORS = ("dashscope", "openai")
TASKS = {vendor: f"wait_{vendor}" for vendor in VENDORS}
RUNNING = {"dashscope": "RUNNING", "openai": "running"}
CANCELLED = {"dashscope": "CANCELED", "openai": "cancelled"}
#: A job that runs an hour unless the test moves the emulator's clock on.
JOB_SECONDS = 3600.0
#: From the kill to the cancel at the vendor: the triggerer notices within a heartbeat or two, the cancel is quick.
CANCEL_BOUND_SECONDS = 30.0
BUDGET_SECONDS = 120.0

DAG_SOURCE = """
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_ft.sensors.fine_tuning import FineTuningJobSensor

with DAG("{dag_id}", schedule=None, start_date=datetime(2025, 1, 1), catchup=False) as dag:
    for vendor in ("dashscope", "openai"):
        FineTuningJobSensor(
            task_id=f"wait_{{vendor}}",
            job_id="{{{{ dag_run.conf['" + vendor + "'] }}}}",
            conn_id=f"ft_live_{{vendor}}",
            deferrable=True,
            cancel_on_kill=True,
            poke_interval=1,
            timeout=200,
        )
"""


def seed_jobs(emulator: FineTuningEmulator) -> dict[str, str]:
    return {vendor: emulator.seed_job(vendor, status=RUNNING[vendor], runs_for=JOB_SECONDS) for vendor in VENDORS}


def statuses(emulator: FineTuningEmulator, jobs: dict[str, str]) -> dict[str, str]:
    found = {vendor: emulator.job(vendor, job_id) for vendor, job_id in jobs.items()}
    return {vendor: str(job["status"]) if job else "<gone>" for vendor, job in found.items()}


def cancel_requests(emulator: FineTuningEmulator, jobs: dict[str, str]) -> list[str]:
    paths = [f"/{job_id}/cancel" for job_id in jobs.values()]
    return [r.path for r in emulator.requests if r.method == "POST" and any(r.path.endswith(p) for p in paths)]


def deferred_in_a_triggerer(cluster: AirflowCluster, dag_id: str, run_id: str) -> set[int] | None:
    """The triggerer jobs holding the run's triggers, once every sensor is deferred on a taken trigger."""
    states = cluster.task_states(dag_id, run_id)
    triggers = cluster.triggers(dag_id, run_id)
    if any(states.get(task) != "deferred" for task in TASKS.values()) or set(triggers) != set(TASKS.values()):
        return None
    if any(classpath != TRIGGER_CLASSPATH or holder is None for classpath, holder in triggers.values()):
        return None
    return {holder for _, holder in triggers.values() if holder is not None}


def start_waiting(
    cluster: AirflowCluster, emulator: FineTuningEmulator, dag_id: str, deadline: float
) -> tuple[dict[str, str], str, set[int]]:
    """Seed the jobs, run the DAG and wait until both sensors are deferred in a triggerer: (jobs, run id, holders)."""
    cluster.add_dag(dag_id, DAG_SOURCE.format(dag_id=dag_id), deadline)
    jobs = seed_jobs(emulator)
    run_id = cluster.trigger(dag_id, jobs)
    holders = wait_for(
        "both sensors to be deferred in the triggerer",
        lambda: deferred_in_a_triggerer(cluster, dag_id, run_id),
        deadline,
        cluster.all_logs,
        interval=0.2,
    )
    return jobs, run_id, holders


def test_killing_the_deferred_task_cancels_the_job(
    cluster: AirflowCluster, emulator_server: FineTuningEmulator
) -> None:
    dag_id = "ft_system_kill_deferred"
    deadline = time.monotonic() + BUDGET_SECONDS
    jobs, run_id, _ = start_waiting(cluster, emulator_server, dag_id, deadline)
    assert statuses(emulator_server, jobs) == RUNNING

    killed_at = time.monotonic()
    for task_id in TASKS.values():
        cluster.set_task_state(dag_id, run_id, task_id, "failed")
    wait_for(
        "the jobs to be cancelled at the vendor",
        lambda: statuses(emulator_server, jobs) == CANCELLED,
        killed_at + CANCEL_BOUND_SECONDS,
        cluster.all_logs,
        interval=0.2,
    )
    took = time.monotonic() - killed_at
    print(f"kill while deferred: jobs cancelled {took:.1f} s after the tasks were marked failed")
    assert len(cancel_requests(emulator_server, jobs)) == len(VENDORS), "one cancel per job"
    assert cluster.task_states(dag_id, run_id) == dict.fromkeys(TASKS.values(), "failed")
    for vendor, task_id in TASKS.items():
        logged = cluster.task_logs(dag_id, task_id)
        assert "Trigger cancelled by user action, invoking on_kill" in logged
        assert f"Cancelled fine-tuning job {jobs[vendor]} (the task was killed)" in logged


def test_a_triggerer_restart_does_not_cancel_the_job(
    cluster: AirflowCluster, emulator_server: FineTuningEmulator
) -> None:
    dag_id = "ft_system_triggerer_restart"
    deadline = time.monotonic() + BUDGET_SECONDS
    jobs, run_id, holders = start_waiting(cluster, emulator_server, dag_id, deadline)

    stopped_at = time.monotonic()
    cluster.stop_component("triggerer")
    print(f"triggerer restart: the old triggerer stopped in {time.monotonic() - stopped_at:.1f} s")
    assert cluster.task_states(dag_id, run_id) == dict.fromkeys(TASKS.values(), "deferred")

    def taken_over() -> set[int] | None:
        held = deferred_in_a_triggerer(cluster, dag_id, run_id)
        return held if held and not held & holders else None

    cluster.start_component("triggerer")
    taken = wait_for("a new triggerer to take the triggers over", taken_over, deadline, cluster.all_logs, 0.2)
    assert taken <= cluster.running_triggerers()
    print(f"triggerer restart: the triggers were taken over {time.monotonic() - stopped_at:.1f} s after the stop")
    polled_at = len(emulator_server.requests)

    def polled_again() -> bool:
        reads = [r for r in emulator_server.requests[polled_at:] if r.method == "GET"]
        return all(sum(r.path.endswith("/" + job_id) for r in reads) >= 2 for job_id in jobs.values())

    wait_for("the new triggerer to poll the jobs", polled_again, deadline, cluster.all_logs, 0.2)
    assert statuses(emulator_server, jobs) == RUNNING, "a triggerer restart cancelled the jobs"
    assert cancel_requests(emulator_server, jobs) == []
    for task_id in TASKS.values():
        assert "invoking on_kill" not in cluster.task_logs(dag_id, task_id), f"{task_id}: on_kill was called"

    emulator_server.advance(JOB_SECONDS)  # the jobs finish: the sensors resume and succeed
    wait_for(
        "the DAG run to succeed",
        lambda: cluster.run_state(dag_id, run_id) in ("success", "failed"),
        deadline,
        cluster.all_logs,
        interval=0.2,
    )
    assert cluster.run_state(dag_id, run_id) == "success", cluster.task_states(dag_id, run_id)
    results = cluster.xcom_results(dag_id, run_id)
    assert {results[TASKS[vendor]]["id"]: results[TASKS[vendor]]["status"] for vendor in VENDORS} == dict.fromkeys(
        jobs.values(), "SUCCEEDED"
    )
    assert cancel_requests(emulator_server, jobs) == []
    for task_id in TASKS.values():
        assert "invoking on_kill" not in cluster.task_logs(dag_id, task_id), f"{task_id}: on_kill was called"

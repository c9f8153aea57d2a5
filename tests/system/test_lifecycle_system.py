"""Scenarios 2 and 3: ``cancel_on_kill`` under real schedulers, triggerers and Celery workers (Airflow 3.3).

Each DAG run has two kinds of deferred task per vendor (DashScope and OpenAI), all against the in-process
emulator: a ``FineTuningJobSensor(cancel_on_kill=True)`` waiting for a seeded job, and a deferrable
``CreateFineTuningJobOperator`` (its default ``cancel_on_kill=True``) that uploads a local JSONL file, creates its
job and defers until the job ends. Two things must hold, and only real processes can show them:

- **Kill while deferred**: a user marks the deferred tasks failed through the REST API; the triggerer cancels their
  triggers and calls ``on_kill``, which cancels every job (seeded and created) at the vendor, once each.
- **Triggerer failover while deferred**: the triggerer holding the triggers is killed (``kill -9``); the other one
  takes the triggers over once the dead one's heartbeat is stale, and no job is cancelled (no ``on_kill``); the
  tasks then succeed when the jobs do, and no create task created a second job.

These are the proof for ``FineTuningJobTrigger(cancel_on_kill=True)`` whichever task defers to it. Skipped unless
``FT_SYSTEM_TESTS=1``; the cluster is the session's (``conftest.py``).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from airflow_provider_ft_emulator.factory import DEFAULT_RUN_SECONDS
from airflow_provider_ft_emulator.store import QUEUE_SECONDS
from airflow_provider_ft_emulator.vocabulary import WORDS
from tests.system.harness import wait_for

if TYPE_CHECKING:
    from airflow_provider_ft_emulator import FineTuningEmulator
    from tests.system.harness import AirflowCluster

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(os.environ.get("FT_SYSTEM_TESTS") != "1", reason="system test: set FT_SYSTEM_TESTS=1 to run"),
    pytest.mark.timeout(600),
]

TRIGGER_CLASSPATH = "airflow_provider_ft.triggers.fine_tuning.FineTuningJobTrigger"
VENDORS = ("dashscope", "openai")
TASKS = {vendor: f"wait_{vendor}" for vendor in VENDORS}
#: The create tasks, by vendor.
CREATE_TASKS = {vendor: f"train_{vendor}" for vendor in VENDORS}
#: Every task of the DAG: its vendor by task id.
VENDOR_OF = {task_id: vendor for tasks in (TASKS, CREATE_TASKS) for vendor, task_id in tasks.items()}
RUNNING = {"dashscope": "RUNNING", "openai": "running"}
CANCELLED = {"dashscope": "CANCELED", "openai": "cancelled"}
#: A seeded job runs an hour unless the test moves the emulator's clock on.
JOB_SECONDS = 3600.0
#: From the kill to the cancel at the vendor: the triggerer notices within a heartbeat or two, the cancel is quick.
CANCEL_BOUND_SECONDS = 30.0
BUDGET_SECONDS = 120.0
#: A job created through the API of the in-process emulator (its clock at real speed) queues, then runs for about
#: ten minutes: it outlives a test's budget, and advancing the clock by ``JOB_SECONDS`` finishes it.
assert BUDGET_SECONDS < QUEUE_SECONDS + DEFAULT_RUN_SECONDS <= JOB_SECONDS
MODELS = {"dashscope": "qwen-turbo", "openai": "gpt-4o-mini-2024-07-18"}
#: The create route of each vendor (relative to its mount, as the emulator records it).
CREATE_PATHS = {"dashscope": "/fine-tunes", "openai": "/fine_tuning/jobs"}
RECORD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}

DAG_SOURCE = """
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_ft.operators.create import CreateFineTuningJobOperator
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
    for vendor, model in {models!r}.items():
        CreateFineTuningJobOperator(
            task_id=f"train_{{vendor}}",
            model=model,
            training_file={training_file!r},
            conn_id=f"ft_live_{{vendor}}",
            deferrable=True,
            poll_interval=1,
            timeout=200,
        )
"""


@pytest.fixture(scope="module")
def training_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small valid chat JSONL file for both vendors, where the cluster's workers read it."""
    path = tmp_path_factory.mktemp("training") / "train.jsonl"
    path.write_text("".join(json.dumps(RECORD) + "\n" for _ in range(3)))
    return path


def seed_jobs(emulator: FineTuningEmulator) -> dict[str, str]:
    return {vendor: emulator.seed_job(vendor, status=RUNNING[vendor], runs_for=JOB_SECONDS) for vendor in VENDORS}


def statuses(emulator: FineTuningEmulator, jobs: dict[str, str]) -> dict[str, str]:
    """The status of each job at the vendor, by the key it has in ``jobs`` (a vendor, or a task id)."""
    found = {key: emulator.job(VENDOR_OF.get(key, key), job_id) for key, job_id in jobs.items()}
    return {key: str(job["status"]) if job else "<gone>" for key, job in found.items()}


def cancel_requests(emulator: FineTuningEmulator, jobs: dict[str, str]) -> list[str]:
    paths = [f"/{job_id}/cancel" for job_id in jobs.values()]
    return [r.path for r in emulator.requests if r.method == "POST" and any(r.path.endswith(p) for p in paths)]


def create_requests(emulator: FineTuningEmulator, since: int) -> Counter[str]:
    """How many jobs were created through each vendor's API after the first ``since`` requests."""
    return Counter(
        r.vendor
        for r in emulator.requests[since:]
        if r.method == "POST" and r.vendor is not None and r.path == CREATE_PATHS[r.vendor]
    )


def created_jobs(cluster: AirflowCluster, dag_id: str, run_id: str) -> dict[str, str]:
    """The job each create task started, by task id (its ``job_id`` XCom, pushed as soon as the job exists)."""
    pushed = cluster.xcoms(dag_id, run_id, "job_id")
    return {task_id: str(pushed[task_id]) for task_id in CREATE_TASKS.values()}


def deferred_in_a_triggerer(cluster: AirflowCluster, dag_id: str, run_id: str) -> set[int] | None:
    """The triggerer jobs holding the run's triggers, once every task is deferred on a taken trigger."""
    states = cluster.task_states(dag_id, run_id)
    triggers = cluster.triggers(dag_id, run_id)
    if any(states.get(task) != "deferred" for task in VENDOR_OF) or set(triggers) != set(VENDOR_OF):
        return None
    if any(classpath != TRIGGER_CLASSPATH or holder is None for classpath, holder in triggers.values()):
        return None
    return {holder for _, holder in triggers.values() if holder is not None}


def start_waiting(
    cluster: AirflowCluster, emulator: FineTuningEmulator, dag_id: str, training_file: Path, deadline: float
) -> tuple[dict[str, str], str, set[int], dict[str, str], int]:
    """Seed the jobs, run the DAG and wait until both sensors and both create tasks are deferred in a triggerer:
    (seeded jobs by vendor, run id, holders, created jobs by task id, the request count before the run)."""
    cluster.add_dag(dag_id, DAG_SOURCE.format(dag_id=dag_id, models=MODELS, training_file=str(training_file)), deadline)
    jobs = seed_jobs(emulator)
    before = len(emulator.requests)
    run_id = cluster.trigger(dag_id, jobs)
    holders = wait_for(
        "both sensors and both create tasks to be deferred in the triggerer",
        lambda: deferred_in_a_triggerer(cluster, dag_id, run_id),
        deadline,
        cluster.all_logs,
        interval=0.2,
    )
    created = created_jobs(cluster, dag_id, run_id)
    assert create_requests(emulator, before) == Counter(VENDORS), "one create per create task"
    return jobs, run_id, holders, created, before


def not_ended(emulator: FineTuningEmulator, created: dict[str, str]) -> bool:
    """Whether every created job is still queued or running."""
    found = statuses(emulator, created)
    return all(found[task_id] not in WORDS[VENDOR_OF[task_id]].terminal for task_id in created)


def mark_failed_until_cancelled(
    cluster: AirflowCluster, emulator: FineTuningEmulator, dag_id: str, run_id: str, jobs: dict[str, str]
) -> float:
    """Mark every task of the run failed through the REST API, as a user does, and wait until each job of ``jobs``
    (by task id) is cancelled at the vendor: the seconds that took."""
    killed_at = time.monotonic()
    for task_id in VENDOR_OF:
        cluster.set_task_state(dag_id, run_id, task_id, "failed")
    wait_for(
        "the jobs to be cancelled at the vendor",
        lambda: statuses(emulator, jobs) == {task: CANCELLED[VENDOR_OF[task]] for task in jobs},
        killed_at + CANCEL_BOUND_SECONDS,
        cluster.all_logs,
        interval=0.2,
    )
    return time.monotonic() - killed_at


@pytest.mark.scenario(
    "3. User kill while deferred",
    "2 deferrable create tasks and 2 deferrable sensors marked failed through the REST API",
)
def test_killing_the_deferred_task_cancels_the_job(
    cluster: AirflowCluster, emulator_server: FineTuningEmulator, training_file: Path, scenario_notes: list[str]
) -> None:
    dag_id = "ft_system_kill_deferred"
    deadline = time.monotonic() + BUDGET_SECONDS
    jobs, run_id, _, created, before = start_waiting(cluster, emulator_server, dag_id, training_file, deadline)
    assert statuses(emulator_server, jobs) == RUNNING
    assert not_ended(emulator_server, created), statuses(emulator_server, created)
    every_job = {TASKS[vendor]: job_id for vendor, job_id in jobs.items()} | created

    took = mark_failed_until_cancelled(cluster, emulator_server, dag_id, run_id, every_job)
    scenario_notes.append(f"{len(every_job)} jobs cancelled once each, {took:.1f} s after the tasks were marked failed")
    assert len(cancel_requests(emulator_server, jobs)) == len(VENDORS), "one cancel per job"
    cancels = Counter(cancel_requests(emulator_server, every_job))
    assert sorted(cancels.values()) == [1] * len(every_job), f"one cancel per job: {cancels}"
    assert create_requests(emulator_server, before) == Counter(VENDORS), "one create per create task"
    assert cluster.task_states(dag_id, run_id) == dict.fromkeys(VENDOR_OF, "failed")
    for task_id, job_id in every_job.items():
        logged = cluster.task_logs(dag_id, task_id)
        assert "Trigger cancelled by user action, invoking on_kill" in logged, task_id
        assert f"Cancelled fine-tuning job {job_id} (the task was killed)" in logged, task_id


@pytest.mark.scenario(
    "2. Triggerer failover",
    "kill -9 the triggerer holding 2 deferrable create tasks' and 2 deferrable sensors' triggers",
)
def test_a_killed_triggerer_hands_its_triggers_over(
    cluster: AirflowCluster, emulator_server: FineTuningEmulator, training_file: Path, scenario_notes: list[str]
) -> None:
    dag_id = "ft_system_triggerer_failover"
    deadline = time.monotonic() + BUDGET_SECONDS
    jobs, run_id, holders, created, before = start_waiting(cluster, emulator_server, dag_id, training_file, deadline)
    every_job = {TASKS[vendor]: job_id for vendor, job_id in jobs.items()} | created
    components = cluster.alive_triggerers()
    victim_job = min(holders)
    victim = components[victim_job]

    killed_at = time.monotonic()
    cluster.kill_component(victim)
    assert cluster.task_states(dag_id, run_id) == dict.fromkeys(VENDOR_OF, "deferred")

    def taken_over() -> set[int] | None:
        held = deferred_in_a_triggerer(cluster, dag_id, run_id)
        return held if held and victim_job not in held else None

    taken = wait_for("the other triggerer to take the triggers over", taken_over, deadline, cluster.all_logs, 0.2)
    handed_over = time.monotonic() - killed_at
    assert taken <= set(cluster.alive_triggerers())
    assert {components[job] for job in taken} <= set(components.values()) - {victim}
    cluster.start_component(victim)  # the crashed one's replacement, for the scenarios after this one
    polled_at = len(emulator_server.requests)

    def polled_again() -> bool:
        reads = [r for r in emulator_server.requests[polled_at:] if r.method == "GET"]
        return all(sum(r.path.endswith("/" + job_id) for r in reads) >= 2 for job_id in every_job.values())

    wait_for("the other triggerer to poll the jobs", polled_again, deadline, cluster.all_logs, 0.2)
    assert statuses(emulator_server, jobs) == RUNNING, "the failover cancelled the jobs"
    assert not_ended(emulator_server, created), f"the failover ended {statuses(emulator_server, created)}"
    assert cancel_requests(emulator_server, every_job) == []
    for task_id in VENDOR_OF:
        assert "invoking on_kill" not in cluster.task_logs(dag_id, task_id), f"{task_id}: on_kill was called"

    emulator_server.advance(JOB_SECONDS)  # every job finishes: the sensors and the create tasks resume and succeed
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
    assert {task_id: (results[task_id]["id"], results[task_id]["status"]) for task_id in created} == {
        task_id: (job_id, "SUCCEEDED") for task_id, job_id in created.items()
    }
    models = cluster.xcoms(dag_id, run_id, "fine_tuned_model")
    for task_id in created:
        assert models.get(task_id), f"{task_id}: no fine_tuned_model XCom"
        assert models[task_id] == results[task_id]["fine_tuned_model"]
    assert create_requests(emulator_server, before) == Counter(VENDORS), "the failover created a second job"
    assert cancel_requests(emulator_server, every_job) == []
    for task_id in VENDOR_OF:
        assert "invoking on_kill" not in cluster.task_logs(dag_id, task_id), f"{task_id}: on_kill was called"
    scenario_notes.append(
        f"{victim} killed; {len(every_job)} triggers taken over {handed_over:.1f} s later; no cancel, no second job; "
        "all 4 tasks succeeded"
    )

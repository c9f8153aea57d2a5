"""Scenarios 4 and 5: a Celery worker killed (``kill -9`` of its whole process group) in the middle of a task.

The scheduler finds the task's heartbeat stale (``HEARTBEAT_TIMEOUT_SECONDS``), fails the try and queues the
retry, which runs on whichever worker is up; the killed worker is started again at once, as a supervisor would.

- **Mid-cleanup**: a cleanup of 500 stale jobs (each cancel slowed to 0.1 s by the emulator, so that the kill lands
  in the middle); the retry lists again and cancels the rest. Every stale job ends cancelled, once; no job the
  filters leave alone is touched; the retry's summary names exactly the jobs it cancelled.
- **Mid-create**: two non-deferrable create tasks, killed together: the DashScope one after its job was created
  (while it waits for it in the worker), the OpenAI one while its create request is still at the vendor (the
  emulator holds it for some seconds, then creates the job: the worker never sees the answer). Each retry
  re-attaches to the job its first try created; exactly one job exists per task.

Skipped unless ``FT_SYSTEM_TESTS=1``; the cluster is the session's.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_ft_emulator.faults import Fault
from tests.operators.conftest import status_of
from tests.system.harness import HEARTBEAT_TIMEOUT_SECONDS, WORKERS, wait_for
from tests.system.test_examples_system import (
    CLEANUP_DAG,
    CLEANUP_DAG_ID,
    CLEANUP_JOBS,
    CREATE_PATHS,
    acts_per_job,
    seed_cleanup,
)

if TYPE_CHECKING:
    from airflow_provider_ft_emulator import FineTuningEmulator
    from tests.system.harness import AirflowCluster

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(os.environ.get("FT_SYSTEM_TESTS") != "1", reason="system test: set FT_SYSTEM_TESTS=1 to run"),
    pytest.mark.timeout(600),
]

BUDGET_SECONDS = 240.0
#: Real seconds the emulator holds each cancel of the crash cleanup: 500 jobs at 8 at a time take about 7 s.
CANCEL_LATENCY = 0.1
#: Cancels seen at the vendor before the worker is killed.
KILL_AFTER_CANCELS = 100
#: Real seconds the emulator holds the OpenAI create request before it creates the job.
CREATE_HOLD_SECONDS = 12.0
JOB_SECONDS = 3600.0
MODELS = {"dashscope": "qwen-turbo", "openai": "gpt-4o-mini-2024-07-18"}
RECORD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}

CREATE_DAG_ID = "ft_system_create_crash"
CREATE_DAG = """
from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_ft.operators.create import CreateFineTuningJobOperator

with DAG("{dag_id}", schedule=None, start_date=datetime(2025, 1, 1), catchup=False) as dag:
    for vendor, model in {models!r}.items():
        CreateFineTuningJobOperator(
            task_id=f"train_{{vendor}}",
            model=model,
            training_file={training_file!r},
            conn_id=f"ft_live_{{vendor}}",
            deferrable=False,
            poll_interval=1,
            timeout=400,
            retries=1,
            retry_delay=timedelta(seconds=1),
        )
"""


def job_ids(emulator: FineTuningEmulator, vendor: str) -> list[str]:
    """The ids of the vendor's jobs at the emulator (DashScope calls the field ``job_id``, OpenAI ``id``)."""
    return [str(job["job_id" if vendor == "dashscope" else "id"]) for job in emulator.jobs(vendor)]


def task_instance(cluster: AirflowCluster, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    return cluster.task_instances(dag_id, run_id)[task_id]


def kill_workers(cluster: AirflowCluster, hosts: set[str]) -> float:
    """``kill -9`` each worker in ``hosts`` and start a new one in its place; when the kill was."""
    assert hosts, "no worker to kill"
    assert hosts <= set(WORKERS), hosts
    killed_at = time.monotonic()
    for host in sorted(hosts):
        cluster.kill_component(host)
    for host in sorted(hosts):
        cluster.start_component(host)
    return killed_at


def on_try(cluster: AirflowCluster, dag_id: str, run_id: str, tasks: list[str], number: int, states: set[str]) -> bool:
    found = cluster.task_instances(dag_id, run_id)
    return all(found[task]["try_number"] == number and found[task]["state"] in states for task in tasks)


@pytest.mark.scenario(
    "4. Worker crash mid-cleanup",
    f"kill -9 the Celery worker after {KILL_AFTER_CANCELS} of {CLEANUP_JOBS} cancels; the task's retry runs on",
)
def test_a_cleanup_killed_with_its_worker_is_finished_by_its_retry(
    cluster: AirflowCluster, emulator: FineTuningEmulator, scenario_notes: list[str]
) -> None:
    deadline = time.monotonic() + BUDGET_SECONDS
    jobs = seed_cleanup(emulator, "dashscope", "RUNNING", "SUCCEEDED")
    other_vendor = emulator.seed_job("openai", status="running", age=2 * 86400, runs_for=None)
    emulator.inject(
        Fault(kind="latency", vendor="dashscope", method="POST", path=r"/cancel$", times=10**6, delay=CANCEL_LATENCY)
    )
    cluster.add_dag(CLEANUP_DAG_ID, CLEANUP_DAG.format(dag_id=CLEANUP_DAG_ID), deadline)
    run_id = cluster.trigger(CLEANUP_DAG_ID, {"conn_id": "ft_live_dashscope"})

    wait_for(
        f"{KILL_AFTER_CANCELS} cancels at the vendor",
        lambda: sum(acts_per_job(emulator, "dashscope").values()) >= KILL_AFTER_CANCELS,
        deadline,
        cluster.all_logs,
        interval=0.05,
    )
    first = task_instance(cluster, CLEANUP_DAG_ID, run_id, "cleanup")
    assert (first["state"], first["try_number"]) == ("running", 1), first
    killed_at = kill_workers(cluster, {first["hostname"]})
    cancelled_before_kill = sum(acts_per_job(emulator, "dashscope").values())
    assert cancelled_before_kill < CLEANUP_JOBS, "the cleanup ended before the kill: nothing was interrupted"

    assert cluster.wait_for_run(CLEANUP_DAG_ID, run_id, deadline) == "success", cluster.task_states(
        CLEANUP_DAG_ID, run_id
    )
    took = time.monotonic() - killed_at
    retry = task_instance(cluster, CLEANUP_DAG_ID, run_id, "cleanup")
    assert retry["try_number"] == 2, retry

    acted = acts_per_job(emulator, "dashscope")
    assert set(acted) == set(jobs["stale"]), "only the stale jobs are touched"
    assert set(acted.values()) == {1}, f"one cancel per job: {Counter(acted.values())}"
    assert {status_of(emulator, "dashscope", job) for job in jobs["stale"]} == {"CANCELED"}
    assert {status_of(emulator, "dashscope", job) for job in jobs["young"]} == {"RUNNING"}
    assert {status_of(emulator, "dashscope", job) for job in jobs["finished"]} == {"SUCCEEDED"}
    assert status_of(emulator, "openai", other_vendor) == "running"
    summary = cluster.xcom_results(CLEANUP_DAG_ID, run_id)["cleanup"]
    by_retry = set(summary["acted_ids"])
    assert by_retry < set(jobs["stale"])
    assert (summary["matched"], summary["acted"], summary["failed"]) == (len(by_retry), len(by_retry), 0)
    assert len(by_retry) <= CLEANUP_JOBS - cancelled_before_kill, "the retry re-cancelled a job the first try had"
    by_first = CLEANUP_JOBS - len(by_retry)
    scenario_notes.append(
        f"{first['hostname']} killed with {cancelled_before_kill} cancels done; the first try's count {by_first} with "
        f"those in flight; its retry (try 2, on {retry['hostname']}, {took:.0f} s after the kill, heartbeat timeout "
        f"{HEARTBEAT_TIMEOUT_SECONDS} s) cancelled the other {len(by_retry)}; {CLEANUP_JOBS}/{CLEANUP_JOBS} cancelled "
        "once each, 41 jobs outside the filters untouched"
    )


@pytest.fixture(scope="module")
def training_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("crash-training") / "train.jsonl"
    path.write_text("".join(json.dumps(RECORD) + "\n" for _ in range(3)))
    return path


@pytest.mark.scenario(
    "5. Worker crash mid-create",
    "kill -9 the workers of 2 create tasks: DashScope's after its create, OpenAI's with its create request in flight",
)
def test_a_create_killed_with_its_worker_reattaches_on_retry(
    cluster: AirflowCluster, emulator: FineTuningEmulator, training_file: Path, scenario_notes: list[str]
) -> None:
    deadline = time.monotonic() + BUDGET_SECONDS
    tasks = {vendor: f"train_{vendor}" for vendor in MODELS}
    source = CREATE_DAG.format(dag_id=CREATE_DAG_ID, models=MODELS, training_file=str(training_file))
    cluster.add_dag(CREATE_DAG_ID, source, deadline)
    create = Fault(
        kind="latency", vendor="openai", method="POST", path="^/fine_tuning/jobs$", delay=CREATE_HOLD_SECONDS
    )
    emulator.inject(create)
    run_id = cluster.trigger(CREATE_DAG_ID)

    def creates(vendor: str) -> list[Any]:
        return [
            r for r in emulator.requests if r.vendor == vendor and r.method == "POST" and r.path == CREATE_PATHS[vendor]
        ]

    def at_the_kill_point() -> bool:
        dashscope_waits = len(emulator.jobs("dashscope")) == 1 and bool(cluster.xcoms(CREATE_DAG_ID, run_id, "job_id"))
        openai_in_flight = [r.status for r in creates("openai")] == [0]
        return dashscope_waits and openai_in_flight

    wait_for(
        "DashScope's job to exist and OpenAI's create to be in flight",
        at_the_kill_point,
        deadline,
        cluster.all_logs,
        0.1,
    )
    first = cluster.task_instances(CREATE_DAG_ID, run_id)
    assert {first[task]["state"] for task in tasks.values()} == {"running"}, first
    [dashscope_job] = job_ids(emulator, "dashscope")
    assert emulator.jobs("openai") == [], "the OpenAI job must not exist yet when its worker dies"
    killed_at = kill_workers(cluster, {first[task]["hostname"] for task in tasks.values()})
    wait_for(
        "the OpenAI job to be created by the request its worker no longer waits for",
        lambda: len(emulator.jobs("openai")) == 1,
        deadline,
        cluster.all_logs,
    )
    [openai_job] = job_ids(emulator, "openai")
    wait_for(
        "both retries to run",
        lambda: on_try(cluster, CREATE_DAG_ID, run_id, list(tasks.values()), 2, {"running"}),
        deadline,
        cluster.all_logs,
    )
    reattached = time.monotonic() - killed_at
    emulator.advance(JOB_SECONDS)  # both jobs finish: the retries see them end and succeed
    assert cluster.wait_for_run(CREATE_DAG_ID, run_id, deadline) == "success", cluster.task_states(
        CREATE_DAG_ID, run_id
    )

    assert {vendor: len(creates(vendor)) for vendor in MODELS} == dict.fromkeys(MODELS, 1), "a retry created again"
    assert {vendor: job_ids(emulator, vendor) for vendor in MODELS} == {
        "dashscope": [dashscope_job],
        "openai": [openai_job],
    }
    results = cluster.xcom_results(CREATE_DAG_ID, run_id)
    assert {vendor: results[task]["id"] for vendor, task in tasks.items()} == {
        "dashscope": dashscope_job,
        "openai": openai_job,
    }
    assert {results[task]["status"] for task in tasks.values()} == {"SUCCEEDED"}
    hosts = sorted({first[task]["hostname"] for task in tasks.values()})
    scenario_notes.append(
        f"{' and '.join(hosts)} killed; both retries running {reattached:.0f} s later and re-attached: 1 create "
        "request and 1 job per vendor; both succeeded"
    )

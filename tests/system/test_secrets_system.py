"""Scenario 6: a canary API key, a vendor that echoes it back, and a search for it everywhere the deployment writes.

Two connections (DashScope and OpenAI) are created through the REST API with a canary key, so they live in the
metadata database (encrypted with the cluster's Fernet key, as in production). They point at an emulator that only
accepts the canary, with ``echo_key`` faults armed per task: the server plants the key it was sent in every string
it controls, in headers, in error bodies and as ``\\uXXXX`` escapes. Per vendor, a poke sensor meets each variant on
a Celery worker, a deferrable sensor meets three of them in a triggerer (its check before deferring gets a clean
answer, its trigger's polls the echoes), a cancel gets an echoing 401 and a dry-run cleanup echoing pages.

Afterwards the canary is looked for in every task log file, every component's log (the workers', the triggerers',
the scheduler's, the API server's...), a ``pg_dump`` of the metadata database and the answers of the REST API
about the run (task instances, their logs, XComs, the event log, connections, jobs). There must be no hit, and
every armed fault must have been served (otherwise the search proves nothing).

Skipped unless ``FT_SYSTEM_TESTS=1``; the cluster is the session's.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from airflow_provider_ft_emulator import FineTuningEmulator
from airflow_provider_ft_emulator.faults import VARIANTS, Fault

if TYPE_CHECKING:
    from tests.system.harness import AirflowCluster

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(os.environ.get("FT_SYSTEM_TESTS") != "1", reason="system test: set FT_SYSTEM_TESTS=1 to run"),
    pytest.mark.timeout(600),
]

DAG_ID = "ft_system_canary"
BUDGET_SECONDS = 240.0
CONN_TYPES = {"dashscope": "dashscope", "openai": "openaifinetuning"}
RUNNING = {"dashscope": "RUNNING", "openai": "running"}
#: Mount-relative paths of one job, of the listing and of a cancel, by vendor.
JOB_PATHS = {"dashscope": "/fine-tunes/{job_id}", "openai": "/fine_tuning/jobs/{job_id}"}
LIST_PATHS = {"dashscope": "/fine-tunes", "openai": "/fine_tuning/jobs"}
#: The echoes met by the triggerer (a deferrable sensor each) as well as by a worker (a poke sensor each).
DEFERRED_VARIANTS = ("answer", "escaped", "error")

DAG_SOURCE = """
from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_ft.operators.cleanup import CleanupFineTuningJobsOperator
from airflow_provider_ft.operators.fine_tuning import CancelFineTuningJobOperator
from airflow_provider_ft.sensors.fine_tuning import FineTuningJobSensor

with DAG("{dag_id}", schedule=None, start_date=datetime(2025, 1, 1), catchup=False) as dag:
    for task_id, vendor, kind, job_id in {tasks!r}:
        conn_id = f"ft_canary_{{vendor}}"
        if kind in ("poke", "deferred"):
            FineTuningJobSensor(
                task_id=task_id, job_id=job_id, conn_id=conn_id, deferrable=kind == "deferred", mode="poke",
                poke_interval=1, timeout=20,
            )
        elif kind == "cleanup":
            CleanupFineTuningJobsOperator(
                task_id=task_id, conn_id=conn_id, older_than=timedelta(hours=1), dry_run=True
            )
        else:
            CancelFineTuningJobOperator(task_id=task_id, job_id=job_id, conn_id=conn_id)
"""


@pytest.fixture(scope="module")
def canary() -> str:
    return f"sk-canary-{secrets.token_hex(16)}"


@pytest.fixture(scope="module")
def canary_emulator(canary: str) -> Iterator[FineTuningEmulator]:
    """An emulator that accepts only the canary key."""
    with FineTuningEmulator(api_key=canary) as server:
        yield server


def arm(emulator: FineTuningEmulator) -> tuple[list[tuple[str, str, str, str]], dict[str, str]]:
    """Seed a job per task and arm its echo on every request to it: the DAG's tasks (task id, vendor, kind, job id)
    and the mount-relative path each echo is armed on, by task id."""
    tasks, armed = [], {}
    for vendor in CONN_TYPES:
        planned = [(f"poke_{vendor}_{variant}", "poke", variant) for variant in VARIANTS["echo_key"]]
        planned += [(f"deferred_{vendor}_{variant}", "deferred", variant) for variant in DEFERRED_VARIANTS]
        planned += [(f"cancel_{vendor}", "cancel", "error"), (f"cleanup_{vendor}", "cleanup", "page")]
        for task_id, kind, variant in planned:
            job_id = emulator.seed_job(vendor, status=RUNNING[vendor], runs_for=None)
            path = LIST_PATHS[vendor] if kind == "cleanup" else JOB_PATHS[vendor].format(job_id=job_id)
            path += "/cancel" if kind == "cancel" else ""
            method = "POST" if kind == "cancel" else "GET"
            every = 2 if kind == "deferred" else 1  # the check before deferring gets a clean answer
            emulator.inject(Fault("echo_key", vendor, method, f"^{path}$", 10**6, variant=variant, every=every))
            tasks.append((task_id, vendor, kind, job_id))
            armed[task_id] = path
    return tasks, armed


def create_connections(cluster: AirflowCluster, emulator: FineTuningEmulator, key: str) -> None:
    extra = json.dumps({"timeout": 5, "max_retries": 1, "backoff_base": 0.1})
    for vendor, conn_type in CONN_TYPES.items():
        body = {"connection_id": f"ft_canary_{vendor}", "conn_type": conn_type, "host": emulator.url(vendor)}
        cluster.api("POST", "/connections", json={**body, "password": key, "extra": extra})


def rest_answers(cluster: AirflowCluster, run_id: str) -> dict[str, str]:
    """What the REST API says about the run and the connections, by the request that got it."""
    run = f"/dags/{DAG_ID}/dagRuns/{run_id}"
    paths = [run, f"{run}/taskInstances", f"{run}/taskInstances/~/xcomEntries?limit=100", "/connections?limit=100"]
    paths += [f"/connections/ft_canary_{vendor}" for vendor in CONN_TYPES]
    paths += ["/jobs?limit=100", "/importErrors", "/eventLogs?limit=100&order_by=-id"]
    for task_id, ti in cluster.task_instances(DAG_ID, run_id).items():
        paths += [f"{run}/taskInstances/{task_id}/logs/{n}?full_content=true" for n in range(1, ti["try_number"] + 1)]
    for entry in cluster.api("GET", f"{run}/taskInstances/~/xcomEntries", params={"limit": 100})["xcom_entries"]:
        paths.append(f"{run}/taskInstances/{entry['task_id']}/xcomEntries/{entry['key']}?deserialize=true")
    answers = {}
    for path in paths:
        answer = cluster.request("GET", path, headers={"Accept": "application/json"})
        assert answer.is_success, f"GET {path}: HTTP {answer.status_code}"
        answers[path] = answer.text
    return answers


def database_dump() -> str:
    """``pg_dump`` of the metadata database, as text."""
    url = urlsplit(os.environ["FT_SYSTEM_DB_URL"])
    pg_dump = Path(os.environ["FT_SYSTEM_PG_BIN"]) / "pg_dump"
    args = [str(pg_dump), "-h", str(url.hostname), "-p", str(url.port), "-U", str(url.username), url.path.lstrip("/")]
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=120).stdout


def files_under(*roots: Path) -> dict[str, str]:
    return {str(p): p.read_text(errors="replace") for root in roots for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.scenario(
    "6. Secrets in real logs",
    "a canary key on REST-created connections, a vendor echoing it in every variant; poke and deferrable sensors, "
    "cancels, dry-run cleanups",
)
def test_the_key_is_nowhere_the_deployment_writes(
    cluster: AirflowCluster, canary_emulator: FineTuningEmulator, canary: str, scenario_notes: list[str]
) -> None:
    deadline = time.monotonic() + BUDGET_SECONDS
    create_connections(cluster, canary_emulator, canary)
    tasks, armed = arm(canary_emulator)
    cluster.add_dag(DAG_ID, DAG_SOURCE.format(dag_id=DAG_ID, tasks=tasks), deadline)
    run_id = cluster.trigger(DAG_ID)
    cluster.wait_for_run(DAG_ID, run_id, deadline)

    served = {r.path for r in canary_emulator.requests if r.fault == "echo_key" and r.authorized}
    assert set(armed.values()) <= served, f"echoes never served: {set(armed.values()) - served}"
    echoes = sum(1 for r in canary_emulator.requests if r.fault == "echo_key")
    states = cluster.task_states(DAG_ID, run_id)
    assert set(states) == set(armed)
    assert set(states.values()) <= {"success", "failed"}, states
    task_logs = files_under(cluster.home / "logs")
    deferred = {task for task, _, kind, _ in tasks if kind == "deferred"}
    trigger_logs = [name for name in task_logs if ".trigger." in name]
    in_triggerer = {task for task in deferred if any(f"task_id={task}/" in name for name in trigger_logs)}
    assert in_triggerer == deferred, f"no trigger log for {deferred - in_triggerer}: never deferred?"

    places = {
        "task log files": task_logs,
        "component logs": {str(p): p.read_text(errors="replace") for p in cluster.component_logs},
        "database dump": {"pg_dump": database_dump()},
        "REST API answers": rest_answers(cluster, run_id),
    }
    hits = {f"{place}: {name}" for place, texts in places.items() for name, text in texts.items() if canary in text}
    assert not hits, f"the canary key was found in {sorted(hits)}"
    assert all(places.values()), {place: len(texts) for place, texts in places.items()}
    assert "ft_canary_dashscope" in places["database dump"]["pg_dump"], "the dump has no connection: wrong database?"
    sizes = ", ".join(
        f"{len(texts)} {place} ({sum(map(len, texts.values())) // 1024} KiB)" for place, texts in places.items()
    )
    outcome = ", ".join(
        f"{sum(1 for s in states.values() if s == state)} {state}" for state in sorted(set(states.values()))
    )
    scenario_notes.append(f"{echoes} echoed answers to {len(armed)} tasks ({outcome} on the echo); 0 hits in {sizes}")

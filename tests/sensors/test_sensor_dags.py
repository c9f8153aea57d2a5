"""FineTuningJobSensor run by real Airflow (``dag.test()``) in poke, reschedule and deferrable mode, on both vendors.

Each test writes a small DAG with one sensor task per scenario, runs it against the emulator and checks task states,
the exception each failed task raised (recorded by an ``on_failure_callback``) and the XCom each successful one pushed.
``dag.test()`` runs deferred triggers in line, so the deferrable runs go through ``FineTuningJobTrigger``.

Jobs that must be seen running first are turned terminal by a watcher thread right after the sensor's first answered
look at them (``JobFlipper``): no dependence on wall-clock timing or on the order ``dag.test()`` runs tasks in.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_ft.links import FineTuningJobLink
from airflow_provider_ft.triggers.fine_tuning import FineTuningJobTrigger
from tests.airflow_versions import CALLBACKS_SEE_THE_EXCEPTION, extra_link, reschedules_of, xcoms_of

if TYPE_CHECKING:
    from airflow_provider_ft_emulator import FineTuningEmulator
    from tests.conftest import Vendor

pytestmark = pytest.mark.dag

EXAMPLE_DAG = Path(__file__).resolve().parents[2] / "example_dags" / "ft_wait_for_job.py"
WORDS = {
    "dashscope": {"running": "RUNNING", "succeeded": "SUCCEEDED", "failed": "FAILED", "cancelled": "CANCELED"},
    "openai": {"running": "running", "succeeded": "succeeded", "failed": "failed", "cancelled": "cancelled"},
    "azure": {"running": "running", "succeeded": "succeeded", "failed": "failed", "cancelled": "cancelled"},
    "together": {"running": "running", "succeeded": "completed", "failed": "error", "cancelled": "cancelled"},
}
VENDOR_ERROR = "Training loss diverged at step 120"

DAG_TEMPLATE = """
import json
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_ft.sensors.fine_tuning import FineTuningJobSensor

FAILURES = {failures!r}


def record_failure(context):
    error = context.get("exception")  # missing in Airflow 3.0's dag.test(): see CALLBACKS_SEE_THE_EXCEPTION
    with open(FAILURES, "a") as out:
        out.write(json.dumps({{"task": context["ti"].task_id, "type": type(error).__name__, "message": str(error)}}))
        out.write("\\n")


with DAG(
    {dag_id!r},
    schedule=None,
    start_date=datetime(2025, 1, 1),
    default_args={{"retries": 0, "on_failure_callback": record_failure}},
) as dag:
    for task_id, options in {tasks!r}.items():
        FineTuningJobSensor(task_id=task_id, conn_id={conn_id!r}, **{common!r}, **options)
"""


def write_dag(path: Path, dag_id: str, conn_id: str, tasks: dict[str, dict[str, Any]], **common: Any) -> Path:
    dag_file = path / f"{dag_id}.py"
    failures = path / f"{dag_id}.failures.jsonl"
    dag_file.write_text(
        DAG_TEMPLATE.format(failures=str(failures), dag_id=dag_id, conn_id=conn_id, tasks=tasks, common=common)
    )
    return dag_file


def failures_of(dag_file: Path) -> dict[str, dict[str, str]]:
    failures = dag_file.with_suffix(".failures.jsonl")
    if not failures.exists():
        return {}
    records = [json.loads(line) for line in failures.read_text().splitlines() if line]
    return {record["task"]: record for record in records}


def assert_failure_reasons(failures: dict[str, dict[str, str]], connection: str) -> None:
    """Each failed sensor failed with the exception its scenario calls for."""
    assert failures["fails"]["type"] == "FineTuningJobFailed"
    assert VENDOR_ERROR in failures["fails"]["message"]
    assert failures["cancelled"]["type"] == "FineTuningJobFailed"
    assert "cancelled" in failures["cancelled"]["message"]
    assert failures["missing"]["type"] == "JobNotFoundError"
    assert "ft-no-such-job-404" in failures["missing"]["message"]
    assert connection in failures["missing"]["message"]
    for task_id in ("unknown_status", "times_out"):
        assert failures[task_id]["type"] == "AirflowSensorTimeout", failures[task_id]
        assert "timed out" in failures[task_id]["message"]


def gets_of(emulator: FineTuningEmulator, job_id: str) -> int:
    return sum(1 for request in emulator.requests if request.method == "GET" and request.path.endswith("/" + job_id))


@contextmanager
def flip_after_first_look(
    emulator: FineTuningEmulator, vendor: str, plans: dict[str, dict[str, Any]]
) -> Iterator[None]:
    """Re-seed each job of ``plans`` (job id -> ``seed_job`` options) once a request for it has been answered."""
    pending = dict(plans)
    stop = threading.Event()

    def watch() -> None:
        while pending and not stop.is_set():
            answered = {
                request.path.rsplit("/", 1)[-1]
                for request in emulator.requests
                if request.method == "GET" and request.status != 0
            }
            for job_id in [job_id for job_id in pending if job_id in answered]:
                emulator.seed_job(vendor, job_id=job_id, **pending.pop(job_id))
            stop.wait(0.005)

    watcher = threading.Thread(target=watch, name="job-flipper", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(5)


@pytest.fixture
def deferred_jobs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Ids of the jobs a FineTuningJobTrigger ran for (a spy: the trigger itself runs unchanged)."""
    seen: list[str] = []
    real_run = FineTuningJobTrigger.run

    def spy(self: FineTuningJobTrigger) -> Any:
        seen.append(self.job_id)
        return real_run(self)

    monkeypatch.setattr(FineTuningJobTrigger, "run", spy)
    return seen


MODES: dict[str, dict[str, Any]] = {
    "poke": {"mode": "poke", "deferrable": False},
    "reschedule": {"mode": "reschedule", "deferrable": False},
    "deferrable": {"deferrable": True},
}


@pytest.mark.off_contract("one outcome is a status word no document has, served on purpose")
@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_outcome_in_every_mode(
    mode: str,
    emulator: FineTuningEmulator,
    vendor: Vendor,
    connection: str,
    run_dag: Callable[..., Any],
    deferred_jobs: list[str],
    tmp_path: Path,
    vendor_consoles: str,
) -> None:
    words = WORDS[vendor.name]

    def running() -> str:
        return emulator.seed_job(vendor.name, status=words["running"], runs_for=None)

    jobs = {
        "succeeds": running(),
        "fails": running(),
        "fails_tolerated": running(),
        "cancelled": running(),
        "unknown_status": emulator.seed_job(vendor.name, status="UNDER_REVIEW", runs_for=None),
        "missing": "ft-no-such-job-404",
        "times_out": running(),
        "already_done": emulator.seed_job(vendor.name, status=words["succeeded"]),
    }
    failed = {"status": words["failed"], "error": VENDOR_ERROR}
    plans = {
        jobs["succeeds"]: {"status": words["succeeded"]},
        jobs["fails"]: failed,
        jobs["fails_tolerated"]: failed,
        jobs["cancelled"]: {"status": words["cancelled"]},
    }
    tasks: dict[str, dict[str, Any]] = {task_id: {"job_id": job_id, "timeout": 60} for task_id, job_id in jobs.items()}
    tasks["fails_tolerated"]["fail_on_failure"] = False
    tasks["unknown_status"]["timeout"] = 1
    tasks["times_out"]["timeout"] = 1
    dag_id = f"ft_sensor_{mode}_{vendor.name}"
    dag_file = write_dag(tmp_path, dag_id, connection, tasks, poke_interval=0.2, **MODES[mode])

    with flip_after_first_look(emulator, vendor.name, plans):
        dag_run = run_dag(dag_file, dag_id)

    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    assert states == {
        "succeeds": "success",
        "fails": "failed",
        "fails_tolerated": "success",
        "cancelled": "failed",
        "unknown_status": "failed",
        "missing": "failed",
        "times_out": "failed",
        "already_done": "success",
    }
    failures = failures_of(dag_file)
    assert set(failures) == {"fails", "cancelled", "unknown_status", "missing", "times_out"}
    if CALLBACKS_SEE_THE_EXCEPTION:  # which exception failed each task is checked on the other lanes
        assert_failure_reasons(failures, connection)

    xcoms = xcoms_of(dag_run)
    succeeded = xcoms[("succeeds", "return_value")]
    assert succeeded["id"] == jobs["succeeds"]
    assert succeeded["status"] == "SUCCEEDED"
    assert succeeded["vendor"] == vendor.name
    tolerated = xcoms[("fails_tolerated", "return_value")]
    assert tolerated["status"] == "FAILED"
    assert VENDOR_ERROR in tolerated["error"]
    assert xcoms[("already_done", "return_value")]["status"] == "SUCCEEDED"
    assert extra_link(dag_run, "succeeds", FineTuningJobLink()) == f"{vendor_consoles}/{vendor.name}/{jobs['succeeds']}"

    # The sensor kept looking while the job was running or in a state it does not know.
    assert gets_of(emulator, jobs["succeeds"]) >= 2
    assert gets_of(emulator, jobs["unknown_status"]) >= 2
    assert gets_of(emulator, jobs["already_done"]) == 1
    assert (reschedules_of(dag_run, "succeeds") > 0) == (mode == "reschedule")
    if mode == "deferrable":
        assert set(deferred_jobs) == {jobs[task] for task in ("succeeds", "fails", "fails_tolerated", "cancelled")} | {
            jobs["unknown_status"],
            jobs["times_out"],
        }, "every job not terminal at the first look is waited for in the trigger, the others are not"
    else:
        assert deferred_jobs == []


@pytest.mark.parametrize(("outcome", "branch"), [("succeeded", "publish_model"), ("failed", "report_failure")])
def test_example_dag_waits_in_the_trigger_and_branches(
    outcome: str,
    branch: str,
    emulator: FineTuningEmulator,
    vendor: Vendor,
    connection: str,
    run_dag: Callable[..., Any],
    deferred_jobs: list[str],
) -> None:
    words = WORDS[vendor.name]
    job_id = emulator.seed_job(vendor.name, status=words["running"], runs_for=None)
    final = {"status": words[outcome], "error": VENDOR_ERROR if outcome == "failed" else None}
    with flip_after_first_look(emulator, vendor.name, {job_id: final}):
        dag_run = run_dag(EXAMPLE_DAG, "ft_wait_for_job", run_conf={"job_id": job_id, "conn_id": connection})

    assert deferred_jobs == [job_id], "the sensor must have deferred to the trigger"
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    other = "report_failure" if branch == "publish_model" else "publish_model"
    assert states == {"wait_for_job": "success", "route": "success", branch: "success", other: "skipped"}
    assert str(dag_run.state) == "success"
    xcoms = xcoms_of(dag_run)
    job = xcoms[("wait_for_job", "return_value")]
    assert job["id"] == job_id
    if outcome == "failed":
        assert job["status"] == "FAILED"
        assert VENDOR_ERROR in xcoms[(branch, "return_value")]
    else:
        assert job["status"] == "SUCCEEDED"
        assert job["fine_tuned_model"]
        assert xcoms[(branch, "return_value")] == job["fine_tuned_model"]

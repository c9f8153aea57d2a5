"""The create operator's ``on_kill`` confirms the kill before it cancels (``airflow_provider_ft.kill``).

A Celery worker frozen past the heartbeat timeout and then resumed is told by the API server that its try no
longer runs (HTTP 410 on Airflow 3.3.2: the task instance has a new try), and its supervisor SIGTERMs the task,
whose ``on_kill`` runs while the retry waits on the same job. Under real Airflow processes that is
``tests/system/test_freeze_system.py``; here each state Airflow can answer is given to ``on_kill``, and the real
reading (the Task SDK's supervisor on Airflow 3, the metadata database on 2.11) and the ``execution_timeout`` path
run under ``dag.test()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_ft._compat import AirflowTaskTimeout
from tests.airflow_versions import DAG_TEST_MARKS_RUNNING, xcom
from tests.operators.conftest import CANCELLED, TaskInstance, status_of
from tests.operators.test_create import MODELS, context, operator, training_file

if TYPE_CHECKING:
    from airflow_provider_ft.operators.create import CreateFineTuningJobOperator
    from airflow_provider_ft_emulator import FineTuningEmulator
    from tests.conftest import ConnectionFactory, TaskStateAnswer, Vendor

__all__ = ["training_file"]  # the fixture, shared with test_create.py

DAGS = Path(__file__).resolve().parent / "dags"


@dataclass
class Started:
    """A create task that has started its job (and not waited for it), as a try's ``on_kill`` finds it."""

    task: CreateFineTuningJobOperator
    job_id: str
    emulator: FineTuningEmulator
    vendor: Vendor

    @property
    def cancelled(self) -> bool:
        return status_of(self.emulator, self.vendor.name, self.job_id) in (CANCELLED[self.vendor.name], "CANCELING")


@pytest.fixture
def started(emulator: FineTuningEmulator, vendor: Vendor, connection: str, training_file: Path) -> Started:
    task = operator(vendor, training_file, wait_for_completion=False)
    ti = TaskInstance()
    task.execute(context(ti))
    return Started(task, str(ti.xcoms["job_id"]), emulator, vendor)


@pytest.mark.parametrize(
    ("state", "cancel"),
    [
        *((state, False) for state in ("up_for_retry", "queued", "running", "deferred", None)),
        *((state, True) for state in ("failed", "success", "skipped")),
    ],
)
def test_a_kill_cancels_the_job_only_once_the_task_instance_has_ended(
    state: str | None, cancel: bool, started: Started, task_state: TaskStateAnswer, capfd: pytest.CaptureFixture[str]
) -> None:
    # While another try holds the task instance (a frozen worker resumed after its retry re-attached), it keeps the job.
    task_state.state = state
    started.task.on_kill()
    assert started.cancelled is cancel
    assert [(ti.dag_id, ti.task_id, ti.run_id, ti.map_index) for ti in task_state.asked] == [
        ("ft_test_create", "train", "manual__2026-12-02", -1)
    ]
    out, err = capfd.readouterr()
    kept = f"Not cancelling fine-tuning job {started.job_id}: the task instance is {state or 'cleared'}"
    assert (kept in out + err) is not cancel


def test_a_kill_that_cannot_be_confirmed_leaves_the_job_and_warns(
    started: Started, task_state: TaskStateAnswer, capfd: pytest.CaptureFixture[str]
) -> None:
    task_state.error = TimeoutError("the API server did not answer")
    started.task.on_kill()
    assert not started.cancelled
    out, err = capfd.readouterr()
    expected = f"Not cancelling fine-tuning job {started.job_id}: could not confirm that the task was killed"
    assert expected in out + err


@pytest.mark.parametrize(("state", "cancelled"), [("running", True), ("up_for_retry", False)])
def test_the_tasks_own_execution_timeout_cancels_the_job_of_its_running_try(
    state: str, cancelled: bool, started: Started, task_state: TaskStateAnswer
) -> None:
    task_state.state = state
    try:  # as Airflow's task runner calls on_kill when execution_timeout passes (2.11 and 3)
        raise AirflowTaskTimeout("Timeout, PID: 1")
    except AirflowTaskTimeout:
        started.task.on_kill()
    assert started.cancelled is cancelled


# -- under Airflow: dag.test() ---------------------------------------------------------------------------------


@pytest.mark.dag
def test_a_task_reads_task_instance_states_from_airflow(run_dag: Callable[..., Any]) -> None:
    dag_run = run_dag(DAGS / "ft_kill_state.py", "ft_test_kill_state")
    assert str(dag_run.state) == "success"
    found = xcom(dag_run, "probe", "return_value")
    assert (found["self"], found["ended"]) == ("running" if DAG_TEST_MARKS_RUNNING else "scheduled", "success")
    assert found["missing"].startswith("unread: Airflow has no task instance ft_test_kill_state.no_such_task")


@pytest.mark.dag
@pytest.mark.skipif(not DAG_TEST_MARKS_RUNNING, reason="dag.test() of Airflow 2.11 leaves the task scheduled")
def test_execution_timeout_cancels_the_job_through_airflows_own_on_kill(
    emulator: FineTuningEmulator,
    make_connection: ConnectionFactory,
    training_file: Path,
    run_dag: Callable[..., Any],
) -> None:
    conn_id = make_connection("ft_kill_timeout", "openaifinetuning", host=emulator.url("openai"))
    params = {"conn_id": conn_id, "model": MODELS["openai"], "training_file": str(training_file)}
    dag_run = run_dag(DAGS / "ft_kill_timeout.py", "ft_test_kill_timeout", run_conf=params)
    assert str(dag_run.state) == "failed"
    (job,) = emulator.jobs("openai")
    assert job["status"] == CANCELLED["openai"]

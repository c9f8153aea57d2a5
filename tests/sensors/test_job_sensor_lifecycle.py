"""FineTuningJobSensor's guards against an orphaned job (``cancel_on_kill``, ``cancel_on_timeout``, the cost guards
``max_trained_tokens`` and ``max_runtime``) against the emulator, on both vendors."""

from __future__ import annotations

import math
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_ft._compat import AirflowSensorTimeout, AirflowSkipException, TaskDeferred
from airflow_provider_ft.exceptions import FineTuningBudgetExceeded, FineTuningConfigError, FineTuningJobFailed
from airflow_provider_ft.sensors.fine_tuning import FineTuningJobSensor
from airflow_provider_ft.triggers.fine_tuning import FineTuningJobTrigger
from airflow_provider_ft_emulator import Fault
from tests.conftest import FAST_RETRIES, PASSED_GUARDS, ConnectionFactory, PassedGuard
from tests.operators.conftest import TaskInstance
from tests.sensors.test_job_sensor import make_context, sensor

if TYPE_CHECKING:
    from airflow_provider_ft_emulator import FineTuningEmulator
    from tests.conftest import TaskStateAnswer, Vendor

RUNNING = {"dashscope": "RUNNING", "openai": "running", "azure": "running", "together": "running"}
SUCCEEDED = {"dashscope": "SUCCEEDED", "openai": "succeeded", "azure": "succeeded", "together": "completed"}
CANCELLED_WORD = {"dashscope": "CANCELED", "openai": "cancelled", "azure": "cancelled", "together": "cancelled"}


def vendor_status(emulator: FineTuningEmulator, vendor: Vendor, job_id: str) -> str:
    job = emulator.job(vendor.name, job_id)
    assert job is not None
    return str(job["status"])


def cancels_of(emulator: FineTuningEmulator, job_id: str) -> int:
    return sum(1 for r in emulator.requests if r.method == "POST" and r.path.endswith(f"/{job_id}/cancel"))


def seed_started_ago(emulator: FineTuningEmulator, vendor: Vendor, seconds: float, **kwargs: Any) -> str:
    """A job created ``seconds`` before the real now (the session's emulator clock runs ahead of it)."""
    ahead = max(emulator.now() - time.time(), 0.0)
    return emulator.seed_job(vendor.name, age=ahead + seconds, **kwargs)


# -- arguments ------------------------------------------------------------------------------------------------


def test_lifecycle_arguments_are_off_by_default() -> None:
    waiting = FineTuningJobSensor(task_id="wait", job_id="ft-1")
    assert (waiting.cancel_on_kill, waiting.cancel_on_timeout) == (False, False)
    assert (waiting.max_trained_tokens, waiting.max_runtime) == (None, None)


def test_max_runtime_takes_a_timedelta() -> None:
    assert FineTuningJobSensor(task_id="wait", job_id="ft-1", max_runtime=timedelta(hours=2)).max_runtime == 7200.0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_runtime": math.nan}, "max_runtime"),
        ({"max_runtime": -1}, "max_runtime"),
        ({"max_runtime": True}, "max_runtime"),
        ({"max_trained_tokens": 0}, "max_trained_tokens"),
        ({"max_trained_tokens": False}, "max_trained_tokens"),
        ({"max_trained_tokens": math.nan}, "max_trained_tokens"),
        ({"max_cost": 0}, "max_cost"),
        ({"max_cost": math.inf}, "max_cost"),
        ({"cancel_on_kill": "yes"}, "cancel_on_kill"),
        ({"cancel_on_timeout": 0}, "cancel_on_timeout"),
    ],
)
def test_unusable_lifecycle_arguments_fail_at_parse_time(
    kwargs: dict[str, Any], name: str, emulator: FineTuningEmulator
) -> None:
    with pytest.raises(FineTuningConfigError, match=name):
        FineTuningJobSensor(task_id="wait", job_id="ft-1", **kwargs)
    assert emulator.requests == []


# -- on_kill (poke mode) ------------------------------------------------------------------------------------------


def kill_while_poking(waiting: FineTuningJobSensor, emulator: FineTuningEmulator, job_id: str) -> list[BaseException]:
    """Run ``execute`` in poke mode and call ``on_kill`` from another thread once it has checked, as Airflow's task
    runner does on a kill (its signal handler, while ``execute`` runs). ``execute`` stays in the main thread:
    Airflow 2.11's executor safeguard refuses an ``execute`` called from another one. What it raised."""
    raised: list[BaseException] = []

    def kill_once_checked() -> None:
        deadline = time.monotonic() + 10
        while not any(r.path.endswith("/" + job_id) for r in emulator.requests) and time.monotonic() < deadline:
            time.sleep(0.01)
        waiting.on_kill()

    killer = threading.Thread(target=kill_once_checked, daemon=True)
    killer.start()
    try:
        waiting.execute(make_context())
    except BaseException as error:  # the test asserts on it
        raised.append(error)
    killer.join(timeout=10)
    assert not killer.is_alive()
    return raised


def test_poke_mode_on_kill_cancels_the_job_with_cancel_on_kill(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, task_state: TaskStateAnswer
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=None)
    waiting = sensor(connection, job_id, cancel_on_kill=True, timeout=30)
    (raised,) = kill_while_poking(waiting, emulator, job_id)
    assert vendor_status(emulator, vendor, job_id) == CANCELLED_WORD[vendor.name]
    assert cancels_of(emulator, job_id) == 1
    # The next check finds the job cancelled: the task fails for that reason (were it not already being killed).
    assert isinstance(raised, FineTuningJobFailed)
    assert "was cancelled" in str(raised)


def test_poke_mode_on_kill_leaves_the_job_without_cancel_on_kill(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=None)
    waiting = sensor(connection, job_id, timeout=1.0)
    (raised,) = kill_while_poking(waiting, emulator, job_id)
    assert isinstance(raised, AirflowSensorTimeout), "execute kept waiting until its timeout"
    assert vendor_status(emulator, vendor, job_id) == RUNNING[vendor.name]
    assert cancels_of(emulator, job_id) == 0


def test_poke_mode_on_kill_leaves_the_job_to_the_try_that_holds_the_task_instance(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, task_state: TaskStateAnswer
) -> None:
    # A worker frozen past the heartbeat timeout, resumed: its supervisor SIGTERMs the old try while the retry runs.
    task_state.state = "running"
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=None)
    waiting = sensor(connection, job_id, cancel_on_kill=True, timeout=1.0)
    (raised,) = kill_while_poking(waiting, emulator, job_id)
    assert isinstance(raised, AirflowSensorTimeout), "execute kept waiting until its timeout"
    assert vendor_status(emulator, vendor, job_id) == RUNNING[vendor.name]
    assert cancels_of(emulator, job_id) == 0
    assert [(ti.dag_id, ti.task_id) for ti in task_state.asked] == [("ft_test_sensor", "wait")]


def test_a_failed_on_kill_cancel_is_logged_not_raised(
    emulator: FineTuningEmulator,
    vendor: Vendor,
    connection: str,
    capfd: pytest.CaptureFixture[str],
    task_state: TaskStateAnswer,
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=None)
    waiting = sensor(connection, job_id, cancel_on_kill=True)
    waiting._task_instance = TaskInstance()  # as execute() keeps it, for on_kill
    assert not waiting.poke({})
    emulator.inject(Fault(kind="status", status=503, times=1_000))
    waiting.on_kill()
    out, err = capfd.readouterr()
    assert f"Could not cancel fine-tuning job {job_id} (the task was killed)" in out + err


# -- cancel_on_timeout (poke mode) ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cancel_on_timeout", [True, False])
def test_poke_mode_timeout_cancels_the_job_only_with_cancel_on_timeout(
    cancel_on_timeout: bool, emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=None)
    with pytest.raises(AirflowSensorTimeout):
        sensor(connection, job_id, timeout=0.3, cancel_on_timeout=cancel_on_timeout).execute(make_context())
    expected = CANCELLED_WORD if cancel_on_timeout else RUNNING
    assert vendor_status(emulator, vendor, job_id) == expected[vendor.name]
    assert cancels_of(emulator, job_id) == int(cancel_on_timeout)


def test_soft_fail_timeout_skips_after_the_cancel(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=None)
    waiting = sensor(connection, job_id, timeout=0.3, cancel_on_timeout=True, soft_fail=True)
    with pytest.raises(AirflowSkipException):
        waiting.execute(make_context())
    assert vendor_status(emulator, vendor, job_id) == CANCELLED_WORD[vendor.name]


def test_a_failed_job_under_soft_fail_is_not_taken_for_a_timeout(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    # soft_fail turns the FineTuningJobFailed of a check into a skip too; that skip is no timeout, no cancel is sent.
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=0.1, outcome="failed")
    waiting = sensor(connection, job_id, timeout=30, cancel_on_timeout=True, soft_fail=True)
    with pytest.raises(AirflowSkipException):
        waiting.execute(make_context())
    assert cancels_of(emulator, job_id) == 0
    assert sum(1 for r in emulator.requests if r.method == "POST") == 0


# -- cost guards at each check ------------------------------------------------------------------------------------


def test_max_runtime_passed_cancels_and_fails_the_check(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = seed_started_ago(emulator, vendor, 3600, status=RUNNING[vendor.name], runs_for=None)
    with pytest.raises(FineTuningBudgetExceeded, match="max_runtime") as raised:
        sensor(connection, job_id, max_runtime=600).poke({})
    assert "it was cancelled" in str(raised.value)
    assert raised.value.job is not None
    assert raised.value.job["status"] == "CANCELLED"
    assert vendor_status(emulator, vendor, job_id) == CANCELLED_WORD[vendor.name]


@pytest.mark.parametrize("guard", PASSED_GUARDS, ids=lambda guard: guard.name)
def test_a_token_guard_passed_by_a_finished_job_fails_without_a_cancel(
    emulator: FineTuningEmulator, vendor: Vendor, make_connection: ConnectionFactory, guard: PassedGuard
) -> None:
    connection = make_connection(
        vendor.conn_id, vendor.conn_type, host=emulator.url(vendor.name), **FAST_RETRIES, **guard.connection_extras
    )
    job_id = emulator.seed_job(vendor.name, status=SUCCEEDED[vendor.name])
    with pytest.raises(FineTuningBudgetExceeded, match=f"{guard.name}: ") as raised:
        sensor(connection, job_id, **guard.arguments).poke({})
    assert raised.value.job is not None
    assert raised.value.job["status"] == "SUCCEEDED"
    assert cancels_of(emulator, job_id) == 0


def test_max_cost_without_a_price_fails_the_check_before_the_job_is_read(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=None)
    with pytest.raises(FineTuningConfigError, match="max_cost needs a price"):
        sensor(connection, job_id, max_cost=5).poke({})
    assert emulator.requests == []


def test_a_job_within_its_budget_is_waited_for(emulator: FineTuningEmulator, vendor: Vendor, connection: str) -> None:
    job_id = seed_started_ago(emulator, vendor, 0, status=RUNNING[vendor.name], runs_for=0.2)
    job = sensor(connection, job_id, max_runtime=3600, max_trained_tokens=10**9).execute(make_context())
    assert job["status"] == "SUCCEEDED"
    assert cancels_of(emulator, job_id) == 0


def test_the_check_before_deferring_enforces_the_budget(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = seed_started_ago(emulator, vendor, 3600, status=RUNNING[vendor.name], runs_for=None)
    with pytest.raises(FineTuningBudgetExceeded):
        sensor(connection, job_id, deferrable=True, max_runtime=600).execute(make_context())
    assert vendor_status(emulator, vendor, job_id) == CANCELLED_WORD[vendor.name]


# -- deferrable ----------------------------------------------------------------------------------------------------


def test_deferrable_mode_hands_the_guards_to_the_trigger(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=None)
    waiting = sensor(
        connection,
        job_id,
        deferrable=True,
        cancel_on_kill=True,
        cancel_on_timeout=True,
        max_trained_tokens=50_000,
        max_runtime=timedelta(hours=3),
    )
    with pytest.raises(TaskDeferred) as raised:
        waiting.execute(make_context())
    trigger = raised.value.trigger
    assert isinstance(trigger, FineTuningJobTrigger)
    _, kwargs = trigger.serialize()
    assert kwargs["cancel_on_kill"] is True
    assert kwargs["cancel_on_timeout"] is True
    assert kwargs["max_trained_tokens"] == 50_000
    assert kwargs["max_runtime"] == 10_800.0


async def test_deferred_budget_event_fails_the_task_with_the_cancelled_job(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = seed_started_ago(emulator, vendor, 0, status=RUNNING[vendor.name], runs_for=None)
    waiting = sensor(connection, job_id, deferrable=True, max_runtime=1.5)
    with pytest.raises(TaskDeferred) as raised:
        waiting.execute(make_context())
    events = [event async for event in raised.value.trigger.run()]
    with pytest.raises(FineTuningBudgetExceeded, match="max_runtime") as failed:
        waiting.execute_complete(make_context(), event=events[0].payload)
    assert failed.value.job is not None
    assert failed.value.job["status"] == "CANCELLED"


async def test_deferred_timeout_says_the_job_was_cancelled(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=None)
    waiting = sensor(connection, job_id, deferrable=True, timeout=0.3, cancel_on_timeout=True)
    with pytest.raises(TaskDeferred) as raised:
        waiting.execute(make_context())
    events = [event async for event in raised.value.trigger.run()]
    with pytest.raises(AirflowSensorTimeout, match="the job was cancelled"):
        waiting.execute_complete(make_context(), event=events[0].payload)
    assert vendor_status(emulator, vendor, job_id) == CANCELLED_WORD[vendor.name]


# -- execute_complete ----------------------------------------------------------------------------------------------


def test_budget_event_raises_budget_exceeded_with_the_job() -> None:
    job = {"id": "ft-1", "vendor": "openai", "status": "CANCELLED", "vendor_status": "cancelled"}
    event = {"status": "budget", "job_id": "ft-1", "job": job, "cancelled": True, "message": "max_runtime: too long"}
    with pytest.raises(FineTuningBudgetExceeded, match="max_runtime: too long") as raised:
        sensor("c", "ft-1").execute_complete({}, event=event)
    assert raised.value.job == job


@pytest.mark.parametrize(
    ("event_extra", "said"),
    [
        ({"cancelled": True}, "the job was cancelled"),
        ({"cancelled": False}, "the job was not cancelled and may still be running"),
        ({}, "the job was not cancelled and may still be running"),  # a trigger from before cancel_on_timeout
    ],
)
def test_timeout_event_says_whether_the_job_was_cancelled(event_extra: dict[str, Any], said: str) -> None:
    event = {"status": "timeout", "job_id": "ft-1", "job": None, "message": "deadline passed", **event_extra}
    with pytest.raises(AirflowSensorTimeout, match=said):
        sensor("c", "ft-1").execute_complete({}, event=event)

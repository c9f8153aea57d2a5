"""FineTuningJobTrigger's guards against an orphaned job: ``on_kill``, ``cancel_on_timeout`` and the cost guards
(``max_trained_tokens``, ``max_cost``, ``max_runtime``), against the emulator over loopback HTTP, on both vendors.

The triggerer's side (that Airflow 3.3 calls ``on_kill`` when a user kills the deferred task, and not when the
triggerer restarts) is proven under real Airflow processes in ``tests/system/test_lifecycle_system.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_ft.cost import Price
from airflow_provider_ft.exceptions import FineTuningConfigError
from airflow_provider_ft.triggers import fine_tuning as trigger_module
from airflow_provider_ft.triggers.fine_tuning import FineTuningJobTrigger
from airflow_provider_ft_emulator import Fault, FineTuningEmulator
from tests.airflow_versions import import_string, serde_round_trip
from tests.conftest import API_KEY, PASSED_GUARDS, PassedGuard, TaskStateAnswer, report_tokens_while_running
from tests.operators.conftest import TaskInstance

if TYPE_CHECKING:
    from tests.conftest import Vendor

RUNNING = {"dashscope": "RUNNING", "openai": "running", "azure": "running", "together": "running"}
SUCCEEDED = {"dashscope": "SUCCEEDED", "openai": "succeeded", "azure": "succeeded", "together": "completed"}
CANCELLED_WORD = {"dashscope": "CANCELED", "openai": "cancelled", "azure": "cancelled", "together": "cancelled"}
FAST_POLL = 0.05
GUARD_SECONDS = 15
#: The triggerer cancels a killed trigger's task with this message before it calls on_kill (Airflow 3.3).
USER_ACTION = "__airflow_user_action__"


async def only_event(trigger: FineTuningJobTrigger) -> dict[str, Any]:
    async with asyncio.timeout(GUARD_SECONDS):
        events = [event async for event in trigger.run()]
    assert len(events) == 1, f"a trigger must fire exactly one event, fired {events!r}"
    payload = dict(events[0].payload)
    json.dumps(payload)  # the triggerer stores it: it must be plain JSON
    return payload


def soon(seconds: float = 10.0) -> float:
    return time.time() + seconds


def of_a_task(trigger: FineTuningJobTrigger) -> FineTuningJobTrigger:
    """The trigger as a triggerer runs it for a deferred task: with its ``task_instance``, which ``on_kill`` reads."""
    trigger.task_instance = TaskInstance()
    return trigger


def vendor_status(emulator: FineTuningEmulator, vendor: Vendor, job_id: str) -> str:
    job = emulator.job(vendor.name, job_id)
    assert job is not None
    return str(job["status"])


def cancels_of(emulator: FineTuningEmulator, job_id: str) -> int:
    return sum(1 for r in emulator.requests if r.method == "POST" and r.path.endswith(f"/{job_id}/cancel"))


def seed_started_ago(emulator: FineTuningEmulator, vendor: Vendor, seconds: float, **kwargs: Any) -> str:
    """A job whose ``created_at`` is ``seconds`` before the real now.

    The cost guards compare the vendor's ``created_at`` with the real clock, while the session's emulator clock
    runs ahead of it by what earlier tests advanced it; the job's age makes up the difference.
    """
    ahead = max(emulator.now() - time.time(), 0.0)
    return emulator.seed_job(vendor.name, age=ahead + seconds, **kwargs)


def logged(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> str:
    """Everything the trigger's logger wrote: plain logging records (Airflow 2) and stdout/stderr (structlog)."""
    out, err = capfd.readouterr()
    return "\n".join([*(record.getMessage() for record in caplog.records), out, err])


# -- arguments ------------------------------------------------------------------------------------------------


def test_lifecycle_arguments_default_to_todays_behaviour() -> None:
    _, kwargs = FineTuningJobTrigger("ft_conn", "ft-1").serialize()
    assert {
        key: kwargs[key] for key in ("cancel_on_kill", "cancel_on_timeout", "max_trained_tokens", "max_runtime")
    } == {
        "cancel_on_kill": False,
        "cancel_on_timeout": False,
        "max_trained_tokens": None,
        "max_runtime": None,
    }


def test_lifecycle_arguments_round_trip_through_airflow_serde() -> None:
    trigger = FineTuningJobTrigger(
        "ft_conn",
        "ft-1",
        deadline=1_900_000_000.0,
        cancel_on_kill=True,
        cancel_on_timeout=True,
        max_trained_tokens=5_000,
        max_runtime=3600,
    )
    classpath, kwargs = trigger.serialize()
    assert (kwargs["cancel_on_kill"], kwargs["cancel_on_timeout"]) == (True, True)
    assert (kwargs["max_trained_tokens"], kwargs["max_runtime"]) == (5_000, 3600.0)
    again = import_string(classpath)(**serde_round_trip(kwargs))
    assert again.serialize() == (classpath, kwargs)
    assert again.cancel_on_kill is True
    assert again.budget.max_runtime == 3600.0


def test_max_cost_and_its_price_round_trip_through_airflow_serde() -> None:
    trigger = FineTuningJobTrigger("ft_conn", "ft-1", max_cost=25, price_per_million_tokens=8, currency="USD")
    classpath, kwargs = trigger.serialize()
    assert (kwargs["max_cost"], kwargs["price_per_million_tokens"], kwargs["currency"]) == (25.0, 8.0, "USD")
    again = import_string(classpath)(**serde_round_trip(kwargs))
    assert again.serialize() == (classpath, kwargs)
    assert (again.budget.max_cost, again.budget.price) == (25.0, Price(8.0, "USD"))


def test_a_trigger_without_max_cost_serializes_as_before() -> None:
    # A trigger stored by an earlier version has no cost arguments: it is re-created with no cost guard; one without
    # max_cost stores none, so that a triggerer of an earlier version still takes it.
    earlier = {
        "conn_id": "ft_conn",
        "job_id": "ft-1",
        "poll_interval": 60.0,
        "deadline": None,
        "max_consecutive_errors": None,
        "log_events": True,
        "events_after": None,
        "cancel_on_kill": True,
        "cancel_on_timeout": False,
        "max_trained_tokens": 5_000,
        "max_runtime": None,
    }
    again = FineTuningJobTrigger(**serde_round_trip(earlier))
    assert (again.budget.max_cost, again.budget.price, again.budget.max_trained_tokens) == (None, None, 5_000)
    assert again.serialize()[1] == earlier


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_runtime": math.nan}, "max_runtime"),
        ({"max_runtime": math.inf}, "max_runtime"),
        ({"max_runtime": -60}, "max_runtime"),
        ({"max_runtime": 0}, "max_runtime"),
        ({"max_runtime": True}, "max_runtime"),
        ({"max_runtime": "3600"}, "max_runtime"),
        ({"max_trained_tokens": 0}, "max_trained_tokens"),
        ({"max_trained_tokens": -1}, "max_trained_tokens"),
        ({"max_trained_tokens": True}, "max_trained_tokens"),
        ({"max_trained_tokens": 1.5}, "max_trained_tokens"),
        ({"max_trained_tokens": math.nan}, "max_trained_tokens"),
        ({"max_cost": 0, "price_per_million_tokens": 8}, "max_cost"),
        ({"max_cost": math.nan, "price_per_million_tokens": 8}, "max_cost"),
        ({"max_cost": "10", "price_per_million_tokens": 8}, "max_cost"),
        ({"max_cost": 10}, "price_per_million_tokens"),
        ({"max_cost": 10, "price_per_million_tokens": -8}, "per_million_tokens"),
        ({"max_cost": 10, "price_per_million_tokens": 8, "currency": "US dollars"}, "currency"),
        ({"cancel_on_kill": "false"}, "cancel_on_kill"),
        ({"cancel_on_kill": 1}, "cancel_on_kill"),
        ({"cancel_on_timeout": None}, "cancel_on_timeout"),
    ],
)
def test_unusable_lifecycle_arguments_are_refused_before_any_request(
    kwargs: dict[str, Any], name: str, emulator: FineTuningEmulator
) -> None:
    with pytest.raises(FineTuningConfigError, match=name):
        FineTuningJobTrigger("ft_conn", "ft-1", **kwargs)
    assert emulator.requests == []


# -- on_kill ---------------------------------------------------------------------------------------------------


async def kill_while_polling(trigger: FineTuningJobTrigger, emulator: FineTuningEmulator, job_id: str) -> None:
    """What Airflow 3.3's triggerer does when a user kills the deferred task: cancel ``run()``, then ``on_kill()``."""
    task = asyncio.create_task(only_event(trigger))
    async with asyncio.timeout(GUARD_SECONDS):
        while not any(request.path.endswith("/" + job_id) for request in emulator.requests):
            await asyncio.sleep(0.01)
    task.cancel(USER_ACTION)
    with pytest.raises(asyncio.CancelledError):
        await task
    async with asyncio.timeout(GUARD_SECONDS):
        await trigger.on_kill()


async def test_on_kill_cancels_the_job_with_cancel_on_kill(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, task_state: TaskStateAnswer
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=None)
    trigger = of_a_task(FineTuningJobTrigger(connection, job_id, FAST_POLL, soon(), cancel_on_kill=True))
    await kill_while_polling(trigger, emulator, job_id)
    assert vendor_status(emulator, vendor, job_id) == CANCELLED_WORD[vendor.name]
    assert cancels_of(emulator, job_id) == 1


async def test_on_kill_leaves_the_job_running_without_cancel_on_kill(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, task_state: TaskStateAnswer
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=None)
    trigger = of_a_task(FineTuningJobTrigger(connection, job_id, FAST_POLL, soon()))
    await kill_while_polling(trigger, emulator, job_id)
    requests_after_the_kill = len(emulator.requests)
    await trigger.on_kill()
    assert len(emulator.requests) == requests_after_the_kill, "on_kill sent a request"
    assert task_state.asked == [], "on_kill asked Airflow for the state with nothing to cancel"
    assert vendor_status(emulator, vendor, job_id) == RUNNING[vendor.name]
    assert cancels_of(emulator, job_id) == 0


async def test_on_kill_of_a_finished_job_sends_no_cancel(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, task_state: TaskStateAnswer
) -> None:
    job_id = emulator.seed_job(vendor.name, status=SUCCEEDED[vendor.name])
    await of_a_task(FineTuningJobTrigger(connection, job_id, cancel_on_kill=True)).on_kill()
    assert vendor_status(emulator, vendor, job_id) == SUCCEEDED[vendor.name]
    assert cancels_of(emulator, job_id) == 0


@pytest.mark.parametrize(
    "fault",
    [
        Fault(kind="status", status=503, times=1_000),
        Fault(kind="echo_key", variant="error", times=1_000),
    ],
    ids=["outage", "key-echoed-in-the-error"],
)
async def test_a_failed_on_kill_cancel_logs_a_warning_and_does_not_raise(
    fault: Fault,
    emulator: FineTuningEmulator,
    vendor: Vendor,
    connection: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    task_state: TaskStateAnswer,
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=None)
    emulator.inject(fault)
    caplog.set_level(logging.INFO)
    async with asyncio.timeout(GUARD_SECONDS):
        await of_a_task(FineTuningJobTrigger(connection, job_id, cancel_on_kill=True)).on_kill()
    text = logged(caplog, capfd)
    assert f"Could not cancel fine-tuning job {job_id} (the task was killed)" in text
    assert API_KEY not in text
    assert len(emulator.requests) >= 1
    emulator.clear_faults()
    assert vendor_status(emulator, vendor, job_id) == RUNNING[vendor.name]


async def test_a_hanging_vendor_cannot_hold_on_kill_past_its_bound(
    emulator: FineTuningEmulator,
    vendor: Vendor,
    connection: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    task_state: TaskStateAnswer,
) -> None:
    # The real bound is 20 s, under the triggerer's 30 s for on_kill; a shorter one keeps the test quick.
    monkeypatch.setattr(trigger_module, "CANCEL_SECONDS", 0.5)
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=None)
    emulator.inject(Fault(kind="hang", times=100))
    caplog.set_level(logging.INFO)
    started = time.monotonic()
    await of_a_task(FineTuningJobTrigger(connection, job_id, cancel_on_kill=True)).on_kill()
    assert time.monotonic() - started < 1.5
    assert "Could not cancel fine-tuning job" in logged(caplog, capfd)


async def test_on_kill_with_a_missing_connection_logs_a_warning(
    emulator: FineTuningEmulator,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    task_state: TaskStateAnswer,
) -> None:
    caplog.set_level(logging.INFO)
    await of_a_task(FineTuningJobTrigger("ft_no_such_connection", "ft-1", cancel_on_kill=True)).on_kill()
    text = logged(caplog, capfd)
    assert "Could not cancel fine-tuning job ft-1 after the task was killed" in text
    assert "ft_no_such_connection" in text
    assert emulator.requests == []


# -- cancel_on_timeout -------------------------------------------------------------------------------------------


async def test_cancel_on_timeout_cancels_the_job_then_fires_timeout(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=None)
    event = await only_event(FineTuningJobTrigger(connection, job_id, FAST_POLL, soon(0.3), cancel_on_timeout=True))
    assert event["status"] == "timeout"
    assert event["cancelled"] is True
    assert event["job"]["status"] == "CANCELLED", "the job as it stands after the cancel"
    assert vendor_status(emulator, vendor, job_id) == CANCELLED_WORD[vendor.name]
    assert cancels_of(emulator, job_id) == 1


async def test_timeout_without_cancel_on_timeout_leaves_the_job_running(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=None)
    event = await only_event(FineTuningJobTrigger(connection, job_id, FAST_POLL, soon(0.3)))
    assert event["status"] == "timeout"
    assert event["cancelled"] is False
    assert event["job"]["status"] == "RUNNING"
    assert cancels_of(emulator, job_id) == 0


async def test_a_failed_timeout_cancel_still_fires_timeout_saying_not_cancelled(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=None)
    emulator.inject(Fault(kind="status", status=500, method="POST", path="/cancel", times=1_000))
    event = await only_event(FineTuningJobTrigger(connection, job_id, FAST_POLL, soon(0.3), cancel_on_timeout=True))
    assert event["status"] == "timeout"
    assert event["cancelled"] is False
    assert event["job"]["status"] == "RUNNING", "the last job seen"
    assert cancels_of(emulator, job_id) >= 1


# -- cost guards -------------------------------------------------------------------------------------------------


async def test_max_runtime_passed_cancels_the_job_and_fires_budget(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = seed_started_ago(emulator, vendor, 3600, status=RUNNING[vendor.name], runs_for=None)
    event = await only_event(FineTuningJobTrigger(connection, job_id, FAST_POLL, soon(), max_runtime=600))
    assert event["status"] == "budget"
    assert event["cancelled"] is True
    assert event["job"]["status"] == "CANCELLED"
    assert "max_runtime" in event["message"]
    assert "it was cancelled" in event["message"]
    assert vendor_status(emulator, vendor, job_id) == CANCELLED_WORD[vendor.name]


async def test_max_runtime_passed_while_polling(emulator: FineTuningEmulator, vendor: Vendor, connection: str) -> None:
    job_id = seed_started_ago(emulator, vendor, 0, status=RUNNING[vendor.name], runs_for=None)
    event = await only_event(FineTuningJobTrigger(connection, job_id, FAST_POLL, soon(), max_runtime=1.5))
    assert event["status"] == "budget"
    assert event["cancelled"] is True
    gets = sum(1 for request in emulator.requests if request.method == "GET" and request.path.endswith("/" + job_id))
    assert gets >= 2, "within its runtime at first: the trigger polled again"


@pytest.mark.parametrize("guard", PASSED_GUARDS, ids=lambda guard: guard.name)
async def test_a_token_guard_passed_by_a_finished_job_fires_budget_without_a_cancel(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, guard: PassedGuard
) -> None:
    job_id = emulator.seed_job(vendor.name, status=SUCCEEDED[vendor.name])
    trigger = FineTuningJobTrigger(connection, job_id, FAST_POLL, soon(), **guard.trigger_arguments)
    event = await only_event(trigger)
    assert event["status"] == "budget"
    assert event["cancelled"] is False
    assert event["job"]["status"] == "SUCCEEDED"
    assert event["job"]["trained_tokens"] > 1_000
    assert f"{guard.name}: " in event["message"]
    assert "already ended SUCCEEDED" in event["message"]
    assert cancels_of(emulator, job_id) == 0


@pytest.mark.parametrize("guard", PASSED_GUARDS, ids=lambda guard: guard.name)
async def test_a_token_guard_passed_while_running_cancels_the_job_once(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, guard: PassedGuard
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=None)
    report_tokens_while_running(emulator, vendor.name, job_id, 50_000)
    trigger = FineTuningJobTrigger(connection, job_id, FAST_POLL, soon(), **guard.trigger_arguments)
    event = await only_event(trigger)
    assert event["status"] == "budget"
    assert event["cancelled"] is True
    assert f"{guard.name}: " in event["message"]
    assert vendor_status(emulator, vendor, job_id) == CANCELLED_WORD[vendor.name]
    assert cancels_of(emulator, job_id) == 1


async def test_a_job_within_its_budget_succeeds(emulator: FineTuningEmulator, vendor: Vendor, connection: str) -> None:
    job_id = seed_started_ago(emulator, vendor, 0, status=RUNNING[vendor.name], runs_for=0.2)
    trigger = FineTuningJobTrigger(connection, job_id, FAST_POLL, soon(), max_trained_tokens=10**9, max_runtime=3600)
    event = await only_event(trigger)
    assert event["status"] == "success"
    assert event["job"]["status"] == "SUCCEEDED"
    assert "cancelled" not in event
    assert cancels_of(emulator, job_id) == 0

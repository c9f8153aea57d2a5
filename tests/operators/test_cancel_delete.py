"""Cancel and delete operators against the emulator over loopback HTTP."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_ft._compat import TaskDeferred
from airflow_provider_ft.exceptions import (
    FineTuningConfigError,
    FineTuningError,
    FineTuningTimeout,
    InvalidJobIdError,
    JobNotFoundError,
    UnsupportedOperationError,
)
from airflow_provider_ft.links import JOB_URL_XCOM_KEY, FineTuningJobLink
from airflow_provider_ft.operators.fine_tuning import CancelFineTuningJobOperator, DeleteFineTuningJobOperator
from airflow_provider_ft.triggers.events import DEFERRAL_TIMEOUT_MARGIN
from airflow_provider_ft_emulator import FineTuningEmulator
from tests.conftest import FAST_RETRIES, ConnectionFactory, Vendor
from tests.operators.conftest import (
    CANCELLED,
    FAILED,
    RUNNING,
    SUCCEEDED,
    Run,
    mutating,
    status_of,
)

# -- cancel ---------------------------------------------------------------------------------------------------


def test_cancel_running_job(emulator: FineTuningEmulator, vendor: Vendor, connection: str, run: Run) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], age=timedelta(hours=1))
    result = run.execute(CancelFineTuningJobOperator(task_id="cancel", job_id=job_id, conn_id=connection))
    assert status_of(emulator, vendor.name, job_id) == CANCELLED[vendor.name]
    assert result["id"] == job_id
    assert result["status"] == "CANCELLED"
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in mutating(emulator.requests)] == [("POST", "cancel")]


@pytest.mark.parametrize("words", [SUCCEEDED, FAILED, CANCELLED], ids=["succeeded", "failed", "cancelled"])
def test_cancel_terminal_job_returns_it_without_cancelling(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, run: Run, words: dict[str, str]
) -> None:
    job_id = emulator.seed_job(vendor.name, status=words[vendor.name], age=timedelta(hours=3))
    result = run.execute(CancelFineTuningJobOperator(task_id="cancel", job_id=job_id, conn_id=connection))
    assert result["vendor_status"] == words[vendor.name]
    assert result["is_terminal"]
    assert mutating(emulator.requests) == []
    assert status_of(emulator, vendor.name, job_id) == words[vendor.name]


def test_cancel_twice_is_idempotent(emulator: FineTuningEmulator, vendor: Vendor, connection: str, run: Run) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name])
    operator = CancelFineTuningJobOperator(task_id="cancel", job_id=job_id, conn_id=connection)
    first = run.execute(operator)
    second = Run().execute(CancelFineTuningJobOperator(task_id="cancel", job_id=job_id, conn_id=connection))
    assert first["status"] == second["status"] == "CANCELLED"
    assert len(mutating(emulator.requests)) == 1


def test_cancel_missing_job_fails(emulator: FineTuningEmulator, vendor: Vendor, connection: str, run: Run) -> None:
    operator = CancelFineTuningJobOperator(task_id="cancel", job_id="ft-missing-9", conn_id=connection)
    with pytest.raises(JobNotFoundError, match="ft-missing-9"):
        run.execute(operator)


def test_cancel_missing_job_can_be_ignored(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, run: Run
) -> None:
    operator = CancelFineTuningJobOperator(
        task_id="cancel", job_id="ft-missing-9", conn_id=connection, ignore_if_missing=True
    )
    assert run.execute(operator) is None
    assert mutating(emulator.requests) == []


def test_cancel_waits_for_termination_in_the_worker(
    slow_emulator: FineTuningEmulator, vendor: Vendor, make_connection: ConnectionFactory, run: Run
) -> None:
    conn_id = make_connection("slow", vendor.conn_type, host=slow_emulator.url(vendor.name), **FAST_RETRIES)
    job_id = slow_emulator.seed_job(vendor.name, status=RUNNING[vendor.name])
    operator = CancelFineTuningJobOperator(
        task_id="cancel",
        job_id=job_id,
        conn_id=conn_id,
        wait_for_termination=True,
        poll_interval=0.1,
        timeout=30,
        deferrable=False,
    )
    result = run.execute(operator)
    assert result["status"] == "CANCELLED"
    assert status_of(slow_emulator, vendor.name, job_id) == CANCELLED[vendor.name]


async def first_event(trigger: Any) -> Any:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("the trigger fired no event")


def test_deferrable_cancel_waits_in_the_triggerer(
    slow_emulator: FineTuningEmulator, make_connection: ConnectionFactory, run: Run
) -> None:
    conn_id = make_connection("slow_ds", "dashscope", host=slow_emulator.url("dashscope"), **FAST_RETRIES)
    job_id = slow_emulator.seed_job("dashscope", status="RUNNING")
    operator = CancelFineTuningJobOperator(
        task_id="cancel", job_id=job_id, conn_id=conn_id, wait_for_termination=True, poll_interval=0.1, deferrable=True
    )
    with pytest.raises(TaskDeferred) as deferred:
        run.execute(operator)
    assert deferred.value.method_name == "execute_complete"
    assert status_of(slow_emulator, "dashscope", job_id) == "CANCELING"
    event = asyncio.run(first_event(deferred.value.trigger))
    result = operator.execute_complete(run.context, event)
    assert result["vendor_status"] == "CANCELED"
    assert result["id"] == job_id


def test_deferrable_cancel_gives_the_scheduler_a_backstop_past_the_trigger_deadline(
    slow_emulator: FineTuningEmulator, make_connection: ConnectionFactory, run: Run
) -> None:
    conn_id = make_connection("slow_ds", "dashscope", host=slow_emulator.url("dashscope"), **FAST_RETRIES)
    job_id = slow_emulator.seed_job("dashscope", status="RUNNING")
    operator = CancelFineTuningJobOperator(
        task_id="cancel", job_id=job_id, conn_id=conn_id, wait_for_termination=True, timeout=30, deferrable=True
    )
    with pytest.raises(TaskDeferred) as deferred:
        run.execute(operator)
    assert deferred.value.timeout is not None
    assert 30 < deferred.value.timeout.total_seconds() <= 30 + DEFERRAL_TIMEOUT_MARGIN
    assert deferred.value.trigger.deadline is not None


def test_deferrable_cancel_of_a_job_that_stops_at_once_does_not_defer(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, run: Run
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name])
    operator = CancelFineTuningJobOperator(
        task_id="cancel", job_id=job_id, conn_id=connection, wait_for_termination=True, deferrable=True
    )
    assert run.execute(operator)["status"] == "CANCELLED"


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({"status": "timeout", "job_id": "ft-1", "job": None, "message": "too slow"}, FineTuningTimeout),
        ({"status": "error", "job_id": "ft-1", "job": None, "message": "job ft-1 not found"}, FineTuningError),
        (None, FineTuningError),
    ],
    ids=["timeout", "error", "no-event"],
)
def test_execute_complete_raises_for_a_trigger_that_did_not_see_the_job_stop(
    run: Run, event: dict[str, Any] | None, error: type[Exception]
) -> None:
    operator = CancelFineTuningJobOperator(task_id="cancel", job_id="ft-1", deferrable=True)
    with pytest.raises(error):
        operator.execute_complete(run.context, event)


def test_dashscope_cancel_goes_through_canceling(
    slow_emulator: FineTuningEmulator, make_connection: ConnectionFactory, run: Run
) -> None:
    conn_id = make_connection("slow_ds", "dashscope", host=slow_emulator.url("dashscope"), **FAST_RETRIES)
    job_id = slow_emulator.seed_job("dashscope", status="RUNNING")
    without_wait = run.execute(CancelFineTuningJobOperator(task_id="cancel", job_id=job_id, conn_id=conn_id))
    assert without_wait["vendor_status"] == "CANCELING"
    assert without_wait["status"] == "CANCELLING"
    waited = Run().execute(
        CancelFineTuningJobOperator(
            task_id="cancel", job_id=job_id, conn_id=conn_id, wait_for_termination=True, poll_interval=0.1
        )
    )
    assert waited["vendor_status"] == "CANCELED"
    assert waited["status"] == "CANCELLED"


def test_cancel_pushes_the_console_link(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, run: Run, vendor_consoles: str
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name])
    operator = CancelFineTuningJobOperator(task_id="cancel", job_id=job_id, conn_id=connection)
    run.execute(operator)
    assert run.ti.xcoms[JOB_URL_XCOM_KEY] == f"{vendor_consoles}/{vendor.name}/{job_id}"
    assert [type(link) for link in operator.operator_extra_links] == [FineTuningJobLink]


def test_cancel_through_another_host_than_the_vendors_pushes_no_link(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, run: Run
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name])
    operator = CancelFineTuningJobOperator(task_id="cancel", job_id=job_id, conn_id=connection)
    run.execute(operator)
    assert operator.hook.console_url(job_id) == ""
    assert JOB_URL_XCOM_KEY not in run.ti.xcoms


@pytest.mark.parametrize("job_id", ["", "../other", "a/b", "x" * 200])
def test_bad_job_id_sends_nothing(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, run: Run, job_id: str
) -> None:
    with pytest.raises(InvalidJobIdError):
        run.execute(CancelFineTuningJobOperator(task_id="cancel", job_id=job_id, conn_id=connection))
    assert emulator.requests == []


@pytest.mark.parametrize(
    "kwargs",
    [{"poll_interval": 0}, {"poll_interval": -1}, {"timeout": 0}, {"timeout": "soon"}],
    ids=["zero-poll", "negative-poll", "zero-timeout", "text-timeout"],
)
def test_wait_arguments_are_checked_at_parse_time(kwargs: dict[str, object]) -> None:
    with pytest.raises(FineTuningConfigError):
        CancelFineTuningJobOperator(task_id="cancel", job_id="ft-1", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(FineTuningConfigError):
        DeleteFineTuningJobOperator(task_id="delete", job_id="ft-1", **kwargs)  # type: ignore[arg-type]


def test_operators_template_job_id_and_conn_id() -> None:
    for operator_class in (CancelFineTuningJobOperator, DeleteFineTuningJobOperator):
        assert {"job_id", "conn_id"} <= set(operator_class.template_fields)


def test_operators_can_be_teardowns() -> None:
    cancel = CancelFineTuningJobOperator(task_id="cancel", job_id="ft-1").as_teardown()
    delete = DeleteFineTuningJobOperator(task_id="delete", job_id="ft-1").as_teardown()
    assert cancel.is_teardown
    assert delete.is_teardown


# -- delete ---------------------------------------------------------------------------------------------------


@pytest.fixture
def dashscope(emulator: FineTuningEmulator, make_connection: ConnectionFactory) -> str:
    return make_connection("ds", "dashscope", host=emulator.url("dashscope"), **FAST_RETRIES)


def test_delete_finished_dashscope_job(emulator: FineTuningEmulator, dashscope: str, run: Run) -> None:
    job_id = emulator.seed_job("dashscope", status="SUCCEEDED", age=timedelta(days=3))
    other = emulator.seed_job("dashscope", status="SUCCEEDED", age=timedelta(days=3))
    result = run.execute(DeleteFineTuningJobOperator(task_id="delete", job_id=job_id, conn_id=dashscope))
    assert result == {"id": job_id, "deleted": True, "reason": None}
    assert emulator.job("dashscope", job_id) is None
    assert emulator.job("dashscope", other) is not None
    assert [(r.method, r.path) for r in mutating(emulator.requests)] == [("DELETE", f"/fine-tunes/{job_id}")]
    assert JOB_URL_XCOM_KEY not in run.ti.xcoms, "the emulator is not DashScope's host: no console link"


def test_delete_running_dashscope_job_says_to_cancel_first(
    emulator: FineTuningEmulator, dashscope: str, run: Run
) -> None:
    job_id = emulator.seed_job("dashscope", status="RUNNING")
    with pytest.raises(FineTuningError, match="cancel_if_running=True"):
        run.execute(DeleteFineTuningJobOperator(task_id="delete", job_id=job_id, conn_id=dashscope))
    assert status_of(emulator, "dashscope", job_id) == "RUNNING"


def test_delete_cancels_a_running_job_first(
    slow_emulator: FineTuningEmulator, make_connection: ConnectionFactory, run: Run
) -> None:
    conn_id = make_connection("slow_ds", "dashscope", host=slow_emulator.url("dashscope"), **FAST_RETRIES)
    job_id = slow_emulator.seed_job("dashscope", status="RUNNING")
    operator = DeleteFineTuningJobOperator(
        task_id="delete", job_id=job_id, conn_id=conn_id, cancel_if_running=True, poll_interval=0.1, timeout=30
    )
    assert run.execute(operator)["deleted"] is True
    assert slow_emulator.job("dashscope", job_id) is None
    calls = [(r.method, r.path.rsplit("/", 1)[-1]) for r in mutating(slow_emulator.requests)]
    assert calls == [("POST", "cancel"), ("DELETE", job_id)]
    waited = [r for r in slow_emulator.requests if r.method == "GET"]
    assert len(waited) >= 2, "it polled the CANCELING job before deleting it"


def test_delete_with_cancel_if_running_leaves_finished_jobs_uncancelled(
    emulator: FineTuningEmulator, dashscope: str, run: Run
) -> None:
    job_id = emulator.seed_job("dashscope", status="FAILED")
    operator = DeleteFineTuningJobOperator(task_id="delete", job_id=job_id, conn_id=dashscope, cancel_if_running=True)
    run.execute(operator)
    assert [r.method for r in mutating(emulator.requests)] == ["DELETE"]


def test_delete_missing_job(emulator: FineTuningEmulator, dashscope: str, run: Run) -> None:
    with pytest.raises(JobNotFoundError):
        run.execute(DeleteFineTuningJobOperator(task_id="delete", job_id="ft-gone-1", conn_id=dashscope))


@pytest.mark.parametrize("cancel_if_running", [False, True])
def test_delete_missing_job_can_be_ignored(
    emulator: FineTuningEmulator, dashscope: str, run: Run, cancel_if_running: bool
) -> None:
    operator = DeleteFineTuningJobOperator(
        task_id="delete",
        job_id="ft-gone-1",
        conn_id=dashscope,
        ignore_if_missing=True,
        cancel_if_running=cancel_if_running,
    )
    assert run.execute(operator) == {"id": "ft-gone-1", "deleted": False, "reason": "not found"}


def test_openai_delete_is_unsupported_before_any_request(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory, run: Run
) -> None:
    conn_id = make_connection("oa", "openaifinetuning", host=emulator.url("openai"), **FAST_RETRIES)
    job_id = emulator.seed_job("openai", status="succeeded")
    operator = DeleteFineTuningJobOperator(
        task_id="delete", job_id=job_id, conn_id=conn_id, cancel_if_running=True, ignore_if_missing=True
    )
    with pytest.raises(UnsupportedOperationError, match="CancelFineTuningJobOperator"):
        run.execute(operator)
    assert emulator.requests == []
    assert emulator.job("openai", job_id) is not None

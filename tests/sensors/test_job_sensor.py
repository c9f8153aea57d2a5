"""FineTuningJobSensor called directly (poke, execute, execute_complete) against the emulator, on both vendors.

The whole-DAG behaviour in every mode is in ``test_sensor_dags.py``; these tests pin the fine-grained rules.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_ft._compat import AirflowSensorTimeout, AirflowSkipException, TaskDeferred
from airflow_provider_ft.exceptions import (
    FineTuningApiError,
    FineTuningError,
    FineTuningJobFailed,
    InvalidJobIdError,
    JobNotFoundError,
)
from airflow_provider_ft.links import JOB_URL_XCOM_KEY, FineTuningJobLink
from airflow_provider_ft.sensors.fine_tuning import FineTuningJobSensor
from airflow_provider_ft.triggers.events import DEFERRAL_TIMEOUT_MARGIN
from airflow_provider_ft.triggers.fine_tuning import FineTuningJobTrigger
from airflow_provider_ft_emulator import Fault
from tests.operators.conftest import TaskInstance

if TYPE_CHECKING:
    from airflow_provider_ft_emulator import FineTuningEmulator
    from tests.conftest import ConnectionFactory, Vendor

WORDS = {
    "dashscope": {"running": "RUNNING", "succeeded": "SUCCEEDED", "failed": "FAILED", "cancelled": "CANCELED"},
    "openai": {"running": "running", "succeeded": "succeeded", "failed": "failed", "cancelled": "cancelled"},
    "azure": {"running": "running", "succeeded": "succeeded", "failed": "failed", "cancelled": "cancelled"},
    "together": {"running": "running", "succeeded": "completed", "failed": "error", "cancelled": "cancelled"},
}
VENDOR_ERROR = "Training file has invalid format"


def make_context() -> Any:
    """The context of a direct ``execute`` call: a task instance that records XComs (the console link) and names
    itself (``on_kill`` asks for its state). Runs through Airflow with a real task instance are in
    ``test_sensor_dags.py``."""
    return {"ti": TaskInstance(dag_id="ft_test_sensor", task_id="wait")}


def logged(capfd: pytest.CaptureFixture[str]) -> str:
    """What the task's loggers wrote (Airflow's structlog setup writes to the process's stdout/stderr)."""
    out, err = capfd.readouterr()
    return out + err


def sensor(conn_id: str, job_id: str, **kwargs: Any) -> FineTuningJobSensor:
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("deferrable", False)
    return FineTuningJobSensor(task_id="wait", job_id=job_id, conn_id=conn_id, **kwargs)


# -- declaration ----------------------------------------------------------------------------------------------------


def test_templated_fields_and_console_link() -> None:
    assert {"job_id", "conn_id"} <= set(FineTuningJobSensor.template_fields)
    assert any(isinstance(link, FineTuningJobLink) for link in FineTuningJobSensor.operator_extra_links)


def test_docstring_documents_every_parameter() -> None:
    documented = FineTuningJobSensor.__doc__ or ""
    for name in inspect.signature(FineTuningJobSensor.__init__).parameters:
        if name not in ("self", "kwargs"):
            assert f":param {name}:" in documented, name


def test_defaults() -> None:
    waiting = FineTuningJobSensor(task_id="wait", job_id="ft-1")
    assert waiting.conn_id == "dashscope_default"
    assert waiting.poke_interval == 60
    assert waiting.mode == "poke"
    assert waiting.fail_on_failure is True
    assert waiting.timeout == 7 * 24 * 3600  # [sensors] default_timeout


@pytest.mark.parametrize("configured", ["True", "False"])
def test_deferrable_defaults_to_the_operators_setting(configured: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", configured)
    assert FineTuningJobSensor(task_id="wait", job_id="ft-1").deferrable is (configured == "True")
    assert FineTuningJobSensor(task_id="wait", job_id="ft-1", deferrable=False).deferrable is False


def test_poke_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="poke_interval"):
        FineTuningJobSensor(task_id="wait", job_id="ft-1", poke_interval=0)


def test_importing_the_sensor_stays_light() -> None:
    # DAG parsing imports the sensor: beyond what Airflow's SDK loads anyway, it may only add the provider's small
    # modules and the reading of trigger events; not the trigger itself (nor, through it, the triggerer's base
    # classes), the hook or the emulator. (Airflow 2's own BaseOperator imports airflow.triggers.base: only what the
    # sensor adds on top of the base classes counts.)
    code = (
        "import sys, json; from airflow_provider_ft._compat import BaseSensorOperator; before = set(sys.modules); "
        "import airflow_provider_ft.sensors.fine_tuning; "
        "print(json.dumps({'added': sorted(set(sys.modules) - before), "
        "'triggers': sorted(m for m in set(sys.modules) - before if m.startswith('airflow.triggers'))}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(loaded["added"]) <= {
        "airflow_provider_ft._numbers",
        "airflow_provider_ft._text",
        "airflow_provider_ft._validate",
        "airflow_provider_ft.cost",
        "airflow_provider_ft.defaults",
        "airflow_provider_ft.exceptions",
        "airflow_provider_ft.jobs",
        "airflow_provider_ft.links",
        "airflow_provider_ft.sensors",
        "airflow_provider_ft.sensors.fine_tuning",
        "airflow_provider_ft.triggers",
        "airflow_provider_ft.triggers.events",
    }
    assert loaded["triggers"] == []


# -- poke ------------------------------------------------------------------------------------------------------------


def test_running_job_keeps_waiting_and_logs_progress(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, capfd: pytest.CaptureFixture[str]
) -> None:
    job_id = emulator.seed_job(vendor.name, status=WORDS[vendor.name]["running"], runs_for=None)
    result = sensor(connection, job_id).poke({})
    assert not result
    assert f"job {job_id}: RUNNING" in logged(capfd)


def test_succeeded_job_is_done_with_the_job_as_xcom(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(vendor.name, status=WORDS[vendor.name]["succeeded"])
    result = sensor(connection, job_id).poke({})
    assert result.is_done
    assert result.xcom_value["id"] == job_id
    assert result.xcom_value["status"] == "SUCCEEDED"
    assert result.xcom_value["fine_tuned_model"]
    json.dumps(result.xcom_value)


@pytest.mark.parametrize("outcome", ["failed", "cancelled"])
def test_failed_or_cancelled_job_fails_the_task(
    outcome: str, emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(vendor.name, status=WORDS[vendor.name][outcome], error=VENDOR_ERROR)
    with pytest.raises(FineTuningJobFailed) as raised:
        sensor(connection, job_id).poke({})
    assert job_id in str(raised.value)
    assert raised.value.job is not None
    assert raised.value.job["id"] == job_id
    if outcome == "failed":
        assert VENDOR_ERROR in str(raised.value)
        assert raised.value.job["status"] == "FAILED"
    else:
        assert "was cancelled" in str(raised.value)
        assert raised.value.job["status"] == "CANCELLED"


@pytest.mark.parametrize("outcome", ["failed", "cancelled"])
def test_failed_or_cancelled_job_succeeds_without_fail_on_failure(
    outcome: str, emulator: FineTuningEmulator, vendor: Vendor, connection: str, capfd: pytest.CaptureFixture[str]
) -> None:
    job_id = emulator.seed_job(vendor.name, status=WORDS[vendor.name][outcome], error=VENDOR_ERROR)
    result = sensor(connection, job_id, fail_on_failure=False).poke({})
    assert result.is_done
    assert result.xcom_value["status"] == ("FAILED" if outcome == "failed" else "CANCELLED")
    assert "fail_on_failure is False" in logged(capfd)


@pytest.mark.off_contract("a status word no document has, served on purpose")
def test_unknown_status_keeps_waiting_with_a_warning(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, capfd: pytest.CaptureFixture[str]
) -> None:
    job_id = emulator.seed_job(vendor.name, status="UNDER_REVIEW")
    assert not sensor(connection, job_id).poke({})
    assert "treating it as still running" in logged(capfd)


def test_transient_error_does_not_fail_the_poke(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, capfd: pytest.CaptureFixture[str]
) -> None:
    job_id = emulator.seed_job(vendor.name, status=WORDS[vendor.name]["succeeded"])
    emulator.inject(Fault(kind="status", status=503, times=100))
    waiting = sensor(connection, job_id)
    assert not waiting.poke({})
    assert "will poll again" in logged(capfd)
    emulator.clear_faults()
    assert waiting.poke({}).is_done


def test_missing_job_fails_clearly(emulator: FineTuningEmulator, vendor: Vendor, connection: str) -> None:
    with pytest.raises(JobNotFoundError) as raised:
        sensor(connection, "ft-no-such-job").poke({})
    assert "ft-no-such-job" in str(raised.value)
    assert connection in str(raised.value)
    assert raised.value.http_status == 404
    assert len(emulator.requests) == 1


def test_rejected_key_fails_at_once(
    emulator: FineTuningEmulator, vendor: Vendor, make_connection: ConnectionFactory
) -> None:
    conn_id = make_connection("ft_bad_key", vendor.conn_type, host=emulator.url(vendor.name), password="sk-wrong")
    job_id = emulator.seed_job(vendor.name, status=WORDS[vendor.name]["running"])
    with pytest.raises(FineTuningApiError) as raised:
        sensor(conn_id, job_id).poke({})
    assert raised.value.http_status == 401
    assert "sk-wrong" not in str(raised.value)


def test_invalid_job_id_fails_before_any_request(emulator: FineTuningEmulator, vendor: Vendor, connection: str) -> None:
    with pytest.raises(InvalidJobIdError):
        sensor(connection, "ft-1/../../admin").poke({})
    assert emulator.requests == []


def test_execute_pushes_the_console_link_and_the_job(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, vendor_consoles: str
) -> None:
    job_id = emulator.seed_job(vendor.name, status=WORDS[vendor.name]["succeeded"])
    context = make_context()
    job = sensor(connection, job_id).execute(context)
    assert job["id"] == job_id
    assert context["ti"].xcoms[JOB_URL_XCOM_KEY] == f"{vendor_consoles}/{vendor.name}/{job_id}"


def test_poke_mode_times_out(emulator: FineTuningEmulator, vendor: Vendor, connection: str) -> None:
    job_id = emulator.seed_job(vendor.name, status=WORDS[vendor.name]["running"], runs_for=None)
    with pytest.raises(AirflowSensorTimeout):
        sensor(connection, job_id, timeout=0.3).execute(make_context())


# -- deferrable ------------------------------------------------------------------------------------------------------


def test_terminal_job_finishes_without_deferring(emulator: FineTuningEmulator, vendor: Vendor, connection: str) -> None:
    job_id = emulator.seed_job(vendor.name, status=WORDS[vendor.name]["succeeded"])
    context = make_context()
    job = sensor(connection, job_id, deferrable=True).execute(context)
    assert job["status"] == "SUCCEEDED"
    assert JOB_URL_XCOM_KEY not in context["ti"].xcoms, "the emulator is not the vendor's host: no console link"
    job_reads = [request for request in emulator.requests if request.path.endswith(job_id)]
    assert len(job_reads) == 1, "one check, then the job's progress log, and no trigger"


def test_failed_job_fails_without_deferring(emulator: FineTuningEmulator, vendor: Vendor, connection: str) -> None:
    job_id = emulator.seed_job(vendor.name, status=WORDS[vendor.name]["failed"], error=VENDOR_ERROR)
    with pytest.raises(FineTuningJobFailed, match=VENDOR_ERROR):
        sensor(connection, job_id, deferrable=True).execute(make_context())


def test_running_job_defers_with_an_absolute_deadline(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(vendor.name, status=WORDS[vendor.name]["running"], runs_for=None)
    waiting = sensor(connection, job_id, deferrable=True, poke_interval=30, timeout=timedelta(hours=2))
    before = time.time()
    with pytest.raises(TaskDeferred) as raised:
        waiting.execute(make_context())
    after = time.time()
    deferred = raised.value
    assert deferred.method_name == "execute_complete"
    trigger = deferred.trigger
    assert isinstance(trigger, FineTuningJobTrigger)
    _classpath, kwargs = trigger.serialize()
    assert kwargs["conn_id"] == connection
    assert kwargs["job_id"] == job_id
    assert kwargs["poll_interval"] == 30
    assert before + 7200 <= kwargs["deadline"] <= after + 7200
    # Airflow's own deferral timeout is only a backstop behind the trigger's deadline.
    assert deferred.timeout is not None
    assert 7200 < deferred.timeout.total_seconds() <= 7200 + DEFERRAL_TIMEOUT_MARGIN


def test_transient_error_at_the_first_look_defers(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(vendor.name, status=WORDS[vendor.name]["succeeded"])
    emulator.inject(Fault(kind="status", status=503, times=100))
    with pytest.raises(TaskDeferred):
        sensor(connection, job_id, deferrable=True).execute(make_context())


def test_missing_job_fails_without_deferring(emulator: FineTuningEmulator, vendor: Vendor, connection: str) -> None:
    with pytest.raises(JobNotFoundError):
        sensor(connection, "ft-no-such-job", deferrable=True).execute(make_context())


async def test_deferred_wait_resumes_with_the_final_job(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(vendor.name, status=WORDS[vendor.name]["running"], runs_for=0.3)
    waiting = sensor(connection, job_id, deferrable=True)
    with pytest.raises(TaskDeferred) as raised:
        waiting.execute(make_context())
    events = [event async for event in raised.value.trigger.run()]
    assert len(events) == 1
    job = waiting.execute_complete(make_context(), event=events[0].payload)
    assert job["id"] == job_id
    assert job["status"] == "SUCCEEDED"


async def test_deferred_wait_keeps_the_sensor_timeout(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(vendor.name, status=WORDS[vendor.name]["running"], runs_for=None)
    waiting = sensor(connection, job_id, deferrable=True, timeout=0.3)
    with pytest.raises(TaskDeferred) as raised:
        waiting.execute(make_context())
    # As after a triggerer restart: the trigger is re-created from its serialized form.
    _classpath, kwargs = raised.value.trigger.serialize()
    events = [event async for event in FineTuningJobTrigger(**kwargs).run()]
    with pytest.raises(AirflowSensorTimeout, match="timed out"):
        waiting.execute_complete(make_context(), event=events[0].payload)


# -- execute_complete --------------------------------------------------------------------------------------------------


def job_dict(status: str, error: str | None = None) -> dict[str, Any]:
    return {"id": "ft-1", "vendor": "openai", "status": status, "vendor_status": status.lower(), "error": error}


def test_success_event_returns_the_job() -> None:
    event = {"status": "success", "job_id": "ft-1", "job": job_dict("SUCCEEDED"), "message": "done"}
    assert sensor("c", "ft-1").execute_complete({}, event=event) == job_dict("SUCCEEDED")


def test_success_event_with_failed_job_applies_fail_on_failure() -> None:
    event = {"status": "success", "job_id": "ft-1", "job": job_dict("FAILED", VENDOR_ERROR), "message": "done"}
    with pytest.raises(FineTuningJobFailed, match=VENDOR_ERROR) as raised:
        sensor("c", "ft-1").execute_complete({}, event=event)
    assert raised.value.job == job_dict("FAILED", VENDOR_ERROR)
    assert sensor("c", "ft-1", fail_on_failure=False).execute_complete({}, event=event)["status"] == "FAILED"


def test_timeout_event_is_a_sensor_timeout() -> None:
    event = {"status": "timeout", "job_id": "ft-1", "job": job_dict("RUNNING"), "message": "deadline passed"}
    with pytest.raises(AirflowSensorTimeout, match="deadline passed"):
        sensor("c", "ft-1").execute_complete({}, event=event)


def test_timeout_event_with_soft_fail_skips() -> None:
    # The path Airflow takes on resume: resume_execution applies soft_fail to what execute_complete raises.
    event = {"status": "timeout", "job_id": "ft-1", "job": None, "message": "deadline passed"}
    with pytest.raises(AirflowSkipException):
        sensor("c", "ft-1", soft_fail=True).resume_execution("execute_complete", {"event": event}, {})


def test_error_event_raises_the_typed_error() -> None:
    not_found = {
        "status": "error",
        "job_id": "ft-1",
        "conn_id": "c",
        "job": None,
        "message": "Could not wait",
        "error": {
            "type": "JobNotFoundError",
            "message": "OpenAI get failed: job ft-1 not found",
            "http_status": 404,
            "vendor_code": "fine_tune_not_found",
            "request_id": "req-1",
            "retryable": False,
        },
    }
    with pytest.raises(JobNotFoundError, match="ft-1") as raised:
        sensor("c", "ft-1").execute_complete({}, event=not_found)
    assert raised.value.http_status == 404
    assert raised.value.vendor_code == "fine_tune_not_found"

    outage = {**not_found, "error": {**not_found["error"], "type": "FineTuningApiError", "http_status": 503}}
    with pytest.raises(FineTuningApiError) as api_error:
        sensor("c", "ft-1").execute_complete({}, event=outage)
    assert not isinstance(api_error.value, JobNotFoundError)
    assert api_error.value.http_status == 503
    assert str(api_error.value).startswith("Waiting for fine-tuning job ft-1 failed: OpenAI get failed")
    assert str(api_error.value).count("HTTP 503") == 1, "the error is built whole: its details are said once"

    broken = {**not_found, "message": "connection missing", "error": {"type": "AirflowNotFoundException"}}
    with pytest.raises(FineTuningError, match="connection missing") as other:
        sensor("c", "ft-1").execute_complete({}, event=broken)
    assert not isinstance(other.value, FineTuningApiError)


@pytest.mark.parametrize(
    "event",
    [
        None,
        {},
        {"status": "maybe"},
        "success",
        {"status": "success", "job": None},
        {"status": "success", "job": {}},
        {"status": "success", "job": {"id": "ft-1", "status": "RUNNING"}},
        {"status": "success", "job": {"id": "ft-1", "status": "nonsense"}},
    ],
)
def test_malformed_events_fail_clearly(event: Any) -> None:
    with pytest.raises(FineTuningError, match="ft-1"):
        sensor("c", "ft-1").execute_complete({}, event=event)

"""Every fault the emulator can inject ends in success or in one typed error, within a configured bound."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningTransportError, JobNotFoundError
from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
from airflow_provider_ft.jobs import JobStatus
from airflow_provider_ft_emulator import Fault, FineTuningEmulator
from tests.conftest import FAST_RETRIES, ConnectionFactory, Vendor

RUNNING = {"dashscope": "RUNNING", "openai": "running", "azure": "running", "together": "running"}
ATTEMPTS = FAST_RETRIES["max_retries"] + 1


def _seed(emulator: FineTuningEmulator, vendor: Vendor) -> str:
    return emulator.seed_job(vendor.name, status=RUNNING[vendor.name])


def _attempts(emulator: FineTuningEmulator, method: str = "GET") -> int:
    return sum(request.method == method for request in emulator.requests)


@pytest.mark.parametrize(
    ("headers", "least_wait"),
    [({"Retry-After": "0.2"}, 0.4), ({"retry-after-ms": "200"}, 0.4), ("http-date", 0.9)],
    ids=["retry-after-seconds", "retry-after-ms", "retry-after-http-date"],
)
def test_rate_limit_is_waited_out(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, headers: dict[str, str] | str, least_wait: float
) -> None:
    if headers == "http-date":
        # HTTP dates have whole seconds: two seconds ahead is at least one second after truncation.
        headers = {"Retry-After": format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)}
    assert isinstance(headers, dict)
    job_id = _seed(emulator, vendor)
    emulator.inject(Fault(kind="status", status=429, headers=headers, times=2))
    started = time.monotonic()
    assert FineTuningHook(connection).get_job(job_id).id == job_id
    elapsed = time.monotonic() - started
    assert _attempts(emulator) == 3
    assert elapsed >= least_wait, "the client must wait as long as the server asked"


def test_retry_after_above_the_cap_is_capped(
    emulator: FineTuningEmulator, vendor: Vendor, make_connection: ConnectionFactory
) -> None:
    conn_id = make_connection(
        "capped", vendor.conn_type, host=emulator.url(vendor.name), retry_after_max=0.1, **FAST_RETRIES
    )
    job_id = _seed(emulator, vendor)
    emulator.inject(Fault(kind="status", status=429, headers={"Retry-After": "3600"}, times=1))
    started = time.monotonic()
    FineTuningHook(conn_id).get_job(job_id)
    assert time.monotonic() - started < 60, "an hour-long Retry-After must be capped by retry_after_max"


def test_a_short_5xx_burst_is_absorbed(emulator: FineTuningEmulator, vendor: Vendor, connection: str) -> None:
    job_id = _seed(emulator, vendor)
    emulator.inject(Fault(kind="status", status=503, times=ATTEMPTS - 1))
    assert FineTuningHook(connection).get_job(job_id).id == job_id
    assert _attempts(emulator) == ATTEMPTS


def test_a_long_5xx_burst_ends_in_one_typed_error(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = _seed(emulator, vendor)
    emulator.inject(Fault(kind="status", status=500, times=ATTEMPTS + 5))
    with pytest.raises(FineTuningApiError) as raised:
        FineTuningHook(connection).get_job(job_id)
    assert raised.value.http_status == 500
    assert raised.value.attempts == ATTEMPTS
    assert _attempts(emulator) == ATTEMPTS


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_other_4xx_are_never_retried(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, status: int
) -> None:
    job_id = _seed(emulator, vendor)
    emulator.inject(Fault(kind="status", status=status, times=5))
    with pytest.raises(FineTuningApiError) as raised:
        FineTuningHook(connection).get_job(job_id)
    assert raised.value.http_status == status
    assert _attempts(emulator) == 1


@pytest.mark.parametrize("kind", ["drop", "drop_mid_body"])
def test_dropped_connections_are_retried(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, kind: str
) -> None:
    job_id = _seed(emulator, vendor)
    emulator.inject(Fault(kind=kind, times=2))
    assert FineTuningHook(connection).get_job(job_id).id == job_id
    assert _attempts(emulator) == 3


def test_a_hanging_server_hits_the_read_timeout(
    emulator: FineTuningEmulator, vendor: Vendor, make_connection: ConnectionFactory
) -> None:
    timeout, retries = 0.3, 1
    conn_id = make_connection(
        "hang",
        vendor.conn_type,
        host=emulator.url(vendor.name),
        timeout=timeout,
        max_retries=retries,
        backoff_base=0.01,
    )
    job_id = _seed(emulator, vendor)
    emulator.inject(Fault(kind="hang", times=10))
    hook = FineTuningHook(conn_id)
    started = time.monotonic()
    with pytest.raises(FineTuningTransportError, match="Timeout"):
        hook.get_job(job_id)
    bound = (retries + 1) * timeout + hook.settings.retry.longest_total_wait()
    assert time.monotonic() - started <= bound


@pytest.mark.parametrize(
    ("kind", "status"), [("html", 502), ("truncated", 200), ("empty", 200)], ids=["html", "truncated", "empty"]
)
def test_bodies_that_are_not_json_become_typed_errors(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, kind: str, status: int
) -> None:
    job_id = _seed(emulator, vendor)
    emulator.inject(Fault(kind=kind, status=status, times=ATTEMPTS + 5))
    with pytest.raises(FineTuningApiError) as raised:
        FineTuningHook(connection).get_job(job_id)
    assert raised.value.http_status == status
    assert "JSONDecodeError" not in str(raised.value)


def test_an_html_gateway_error_is_retried_then_succeeds(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = _seed(emulator, vendor)
    emulator.inject(Fault(kind="html", status=502, times=1))
    assert FineTuningHook(connection).get_job(job_id).id == job_id


def test_dashscope_200_with_error_code(emulator: FineTuningEmulator, make_connection: ConnectionFactory) -> None:
    conn_id = make_connection("ds", "dashscope", host=emulator.url("dashscope"), **FAST_RETRIES)
    job_id = emulator.seed_job("dashscope", status="RUNNING")
    emulator.inject(Fault(kind="dashscope_200_error", vendor="dashscope", times=ATTEMPTS + 5))
    with pytest.raises(FineTuningApiError) as raised:
        FineTuningHook(conn_id).get_job(job_id)
    assert raised.value.http_status == 200
    assert raised.value.vendor_code == "InternalError"
    assert raised.value.attempts == ATTEMPTS


def test_delete_whose_answer_was_lost_is_a_success(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory
) -> None:
    conn_id = make_connection("ds", "dashscope", host=emulator.url("dashscope"), **FAST_RETRIES)
    job_id = emulator.seed_job("dashscope", status="FAILED")
    emulator.inject(Fault(kind="lose_response", method="DELETE", times=1))
    FineTuningHook(conn_id).delete_job(job_id)
    assert emulator.job("dashscope", job_id) is None
    assert [request.status for request in emulator.requests] == [0, 404]


def test_first_delete_of_a_missing_job_is_not_found(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory
) -> None:
    conn_id = make_connection("ds", "dashscope", host=emulator.url("dashscope"), **FAST_RETRIES)
    with pytest.raises(JobNotFoundError):
        FineTuningHook(conn_id).delete_job("ft-never-existed")


def test_cancel_whose_answer_was_lost_is_a_success(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = _seed(emulator, vendor)
    emulator.inject(Fault(kind="lose_response", method="POST", times=1))
    job = FineTuningHook(connection).cancel_job(job_id)
    assert job.status is JobStatus.CANCELLED
    lost, retried = (request for request in emulator.requests if request.method == "POST")
    assert lost.status == 0, "the first cancel did its work but its answer was lost"
    assert retried.status >= 400, "the retried cancel was refused (already cancelled) and confirmed with a read"
    assert emulator.requests[-1].method == "GET"

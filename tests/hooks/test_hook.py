"""FineTuningHook against the emulator over loopback HTTP, on both vendors."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from airflow_provider_ft.exceptions import (
    FineTuningConfigError,
    FineTuningTimeout,
    JobNotFoundError,
    UnsupportedOperationError,
)
from airflow_provider_ft.hooks.connection_types import OpenAIFineTuningHook
from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
from airflow_provider_ft.jobs import JobStatus
from airflow_provider_ft_emulator import FineTuningEmulator
from tests.conftest import API_KEY, FAST_RETRIES, ConnectionFactory, Vendor

RUNNING = {"dashscope": "RUNNING", "openai": "running", "azure": "running", "together": "running"}
SUCCEEDED = {"dashscope": "SUCCEEDED", "openai": "succeeded", "azure": "succeeded", "together": "completed"}
CANCEL_PATHS = {
    "dashscope": "/fine-tunes/{}/cancel",
    "openai": "/fine_tuning/jobs/{}/cancel",
    "azure": "/fine_tuning/jobs/{}/cancel",
    "together": "/fine-tunes/{}/cancel",
}


def test_get_job_normalizes_the_vendor_job(emulator: FineTuningEmulator, vendor: Vendor, connection: str) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], age=timedelta(hours=2), model="base-model")
    job = FineTuningHook(connection).get_job(job_id)
    assert job.id == job_id
    assert job.vendor == vendor.name
    assert job.status is JobStatus.RUNNING
    assert job.vendor_status == RUNNING[vendor.name]
    assert job.model == "base-model"
    assert not job.is_terminal
    assert job.created_at is not None
    assert job.created_at.tzinfo is not None
    age = datetime.now(UTC) - job.created_at
    assert timedelta(hours=1, minutes=58) < age < timedelta(hours=2, minutes=2)
    assert job.raw == emulator.job(vendor.name, job_id)


def test_get_job_sends_auth_and_identifies_itself(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name])
    FineTuningHook(connection).get_job(job_id)
    (request,) = emulator.requests
    assert request.authorized
    assert request.method == "GET"
    assert request.headers["user-agent"].startswith("airflow-provider-ft/")
    assert request.headers["accept"] == "application/json"


def test_missing_job_is_job_not_found(emulator: FineTuningEmulator, vendor: Vendor, connection: str) -> None:
    with pytest.raises(JobNotFoundError, match="ft-missing-1"):
        FineTuningHook(connection).get_job("ft-missing-1")


def test_list_jobs_walks_every_page_lazily(emulator: FineTuningEmulator, vendor: Vendor, connection: str) -> None:
    seeded = set(emulator.seed_jobs(vendor.name, 7, status=RUNNING[vendor.name]))
    hook = FineTuningHook(connection, page_size=3)
    jobs = hook.list_jobs()
    first = next(jobs)
    assert len(emulator.requests) == 1, "the second page must not be fetched before it is needed"
    listed = [first.id, *(job.id for job in jobs)]
    assert set(listed) == seeded
    assert len(listed) == len(seeded), "no job may be listed twice"
    assert len(emulator.requests) == (3 if hook.dialect.jobs_paged else 1), "one answer holds an unpaged listing"


def test_dashscope_lists_by_model_server_side(emulator: FineTuningEmulator, make_connection: ConnectionFactory) -> None:
    conn_id = make_connection("ds", "dashscope", host=emulator.url("dashscope"))
    wanted = set(emulator.seed_jobs("dashscope", 2, status="RUNNING", model="qwen-plus"))
    emulator.seed_jobs("dashscope", 3, status="RUNNING", model="qwen-turbo")
    listed = {job.id for job in FineTuningHook(conn_id).list_jobs(model="qwen-plus")}
    assert listed == wanted
    assert ("model", "qwen-plus") in emulator.requests[0].query.items()


def test_openai_lists_by_metadata_server_side(emulator: FineTuningEmulator, make_connection: ConnectionFactory) -> None:
    conn_id = make_connection("oa", "openaifinetuning", host=emulator.url("openai"))
    wanted = set(emulator.seed_jobs("openai", 2, status="running", metadata={"team": "search"}))
    emulator.seed_jobs("openai", 2, status="running", metadata={"team": "ads"})
    listed = {job.id for job in FineTuningHook(conn_id).list_jobs(metadata={"team": "search"})}
    assert listed == wanted


def test_an_unsupported_filter_is_refused_before_any_request(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    with pytest.raises(FineTuningConfigError, match="cannot filter jobs by colour"):
        list(FineTuningHook(connection).list_jobs(colour="blue"))
    assert emulator.requests == []


def test_cancel_running_job(emulator: FineTuningEmulator, vendor: Vendor, connection: str) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name])
    job = FineTuningHook(connection).cancel_job(job_id)
    assert job.id == job_id
    assert job.status is JobStatus.CANCELLED
    assert FineTuningHook(connection).get_job(job_id).status is JobStatus.CANCELLED
    assert [request.method for request in emulator.requests[:2]] == ["GET", "POST"], "read first, then cancel"
    assert emulator.requests[1].path == CANCEL_PATHS[vendor.name].format(job_id)


def test_cancel_terminal_job_returns_it_unchanged(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(vendor.name, status=SUCCEEDED[vendor.name])
    job = FineTuningHook(connection).cancel_job(job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert [request.method for request in emulator.requests] == ["GET"], "a finished job gets no cancel request"


def test_cancel_missing_job(emulator: FineTuningEmulator, vendor: Vendor, connection: str) -> None:
    with pytest.raises(JobNotFoundError):
        FineTuningHook(connection).cancel_job("ft-nope")


def test_dashscope_cancel_reports_the_cancelling_state(
    emulator_server: FineTuningEmulator, make_connection: ConnectionFactory
) -> None:
    with FineTuningEmulator(api_key=API_KEY, cancel_delay=60.0) as slow_cancel:
        conn_id = make_connection("ds_slow", "dashscope", host=slow_cancel.url("dashscope"))
        job_id = slow_cancel.seed_job("dashscope", status="RUNNING")
        hook = FineTuningHook(conn_id)
        assert hook.cancel_job(job_id).status is JobStatus.CANCELLING
        slow_cancel.advance(61)
        assert hook.get_job(job_id).status is JobStatus.CANCELLED


def test_dashscope_delete(emulator: FineTuningEmulator, make_connection: ConnectionFactory) -> None:
    conn_id = make_connection("ds", "dashscope", host=emulator.url("dashscope"))
    job_id = emulator.seed_job("dashscope", status="SUCCEEDED")
    assert FineTuningHook(conn_id).delete_job(job_id) is None
    assert emulator.job("dashscope", job_id) is None
    with pytest.raises(JobNotFoundError):
        FineTuningHook(conn_id).delete_job(job_id)


def test_openai_delete_is_unsupported_before_any_request(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory
) -> None:
    conn_id = make_connection("oa", "openaifinetuning", host=emulator.url("openai"))
    job_id = emulator.seed_job("openai", status="succeeded")
    with pytest.raises(UnsupportedOperationError, match="cancel"):
        FineTuningHook(conn_id).delete_job(job_id)
    assert emulator.requests == []
    assert emulator.job("openai", job_id) is not None


def test_wait_for_job_returns_the_terminal_job(emulator: FineTuningEmulator, vendor: Vendor, connection: str) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=timedelta(seconds=30))
    hook = FineTuningHook(connection)
    emulator.advance(31)
    job = hook.wait_for_job(job_id, poll_interval=0.05, timeout=10)
    assert job.status is JobStatus.SUCCEEDED
    assert job.fine_tuned_model


def test_wait_for_job_times_out(emulator: FineTuningEmulator, vendor: Vendor, connection: str) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name], runs_for=None)
    with pytest.raises(FineTuningTimeout, match=job_id):
        FineTuningHook(connection).wait_for_job(job_id, poll_interval=0.05, timeout=0.3)
    assert len(emulator.requests) >= 2


def test_wait_for_job_keeps_polling_through_a_passing_outage(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    from airflow_provider_ft_emulator import Fault

    job_id = emulator.seed_job(vendor.name, status=SUCCEEDED[vendor.name])
    emulator.inject(Fault(kind="status", status=503, times=FAST_RETRIES["max_retries"] + 1))
    job = FineTuningHook(connection).wait_for_job(job_id, poll_interval=0.05, timeout=10)
    assert job.status is JobStatus.SUCCEEDED


def test_one_tcp_connection_serves_many_calls(emulator: FineTuningEmulator, vendor: Vendor, connection: str) -> None:
    job_id = emulator.seed_job(vendor.name, status=RUNNING[vendor.name])
    hook = FineTuningHook(connection)
    before = emulator.connections_opened
    for _ in range(5):
        hook.get_job(job_id)
    assert emulator.connections_opened - before == 1


def test_test_connection_ok(emulator: FineTuningEmulator, vendor: Vendor, connection: str) -> None:
    ok, message = FineTuningHook(connection).test_connection()
    assert ok, message
    assert emulator.url(vendor.name) in message
    (request,) = emulator.requests
    assert request.authorized
    assert request.method == "GET"


def test_test_connection_with_a_wrong_key(
    emulator: FineTuningEmulator, vendor: Vendor, make_connection: ConnectionFactory
) -> None:
    wrong_key = "sk-wrong-key-0000000000000"
    conn_id = make_connection("bad", vendor.conn_type, host=emulator.url(vendor.name), password=wrong_key)
    ok, message = FineTuningHook(conn_id).test_connection()
    assert not ok
    assert "401" in message
    assert wrong_key not in message


def test_vendor_headers_come_from_extras(emulator: FineTuningEmulator, make_connection: ConnectionFactory) -> None:
    ds = make_connection("ds", "dashscope", host=emulator.url("dashscope"), workspace="ws-42")
    oa = make_connection("oa", "openaifinetuning", host=emulator.url("openai"), organization="org-7", project="p-9")
    list(FineTuningHook(ds).list_jobs())
    list(FineTuningHook(oa).list_jobs())
    ds_request, oa_request = emulator.requests
    assert ds_request.headers["x-dashscope-workspace"] == "ws-42"
    assert oa_request.headers["openai-organization"] == "org-7"
    assert oa_request.headers["openai-project"] == "p-9"


def test_a_connection_made_for_the_official_openai_provider_works(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory
) -> None:
    conn_id = make_connection(
        "openai_default", "openai", host=emulator.url("openai"), openai_client_kwargs={"organization": "org-3"}
    )
    job_id = emulator.seed_job("openai", status="queued")
    assert OpenAIFineTuningHook().get_job(job_id).status is JobStatus.QUEUED
    assert OpenAIFineTuningHook.default_conn_name == conn_id
    assert emulator.requests[0].headers["openai-organization"] == "org-3"


def test_the_key_stays_out_of_logs_reprs_and_errors(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, caplog: pytest.LogCaptureFixture
) -> None:
    from airflow_provider_ft_emulator import Fault

    emulator.inject(Fault(kind="status", status=503, times=2))
    hook = FineTuningHook(connection)
    with caplog.at_level(logging.DEBUG):
        list(hook.list_jobs())
        with pytest.raises(JobNotFoundError) as raised:
            hook.get_job("ft-nope")
    assert "retrying" in caplog.text
    for text in (caplog.text, str(raised.value), repr(hook), repr(hook.settings), repr(hook.transport)):
        assert API_KEY not in text

"""Fidelity: the official ``dashscope`` SDK 2.0.2 (v2 ``Client`` and the 1.x ``FineTunes`` API) against the emulator.

The v2 client takes ``base_url`` (the native ``/api/v1`` root); the 1.x classmethods take ``base_address``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import dashscope
import pytest
from dashscope.v2 import errors as ds_errors

from airflow_provider_ft_emulator import Fault, FineTuningEmulator
from tests.emulator.conftest import TRAINING_JSONL


@pytest.fixture
def client(emulator: FineTuningEmulator) -> Iterator[dashscope.Client]:
    with dashscope.Client(
        api_key=emulator.api_key, base_url=emulator.url("dashscope"), workspace="ws-test", max_retries=0, timeout=5
    ) as sdk:
        yield sdk


def test_list_get_and_paging(emulator: FineTuningEmulator, client: dashscope.Client) -> None:
    ids = [emulator.seed_job("dashscope", age=timedelta(minutes=30 - i)) for i in range(5)]
    first = client.fine_tunes.list(page_no=1, page_size=2)
    third = client.fine_tunes.list(page_no=3, page_size=2)
    assert first.total_count == 5
    assert [job.job_id for job in first.jobs] == [ids[4], ids[3]]
    assert [job.job_id for job in third.jobs] == [ids[0]]
    job = client.fine_tunes.get(ids[0])
    assert (job.job_id, job.status, job.finished, job.is_error) == (ids[0], "RUNNING", False, False)
    assert job.request_id == job.headers["x-request-id"]
    assert all(r.headers["x-dashscope-workspace"] == "ws-test" for r in emulator.requests)


def test_finished_jobs_parse(emulator: FineTuningEmulator, client: dashscope.Client) -> None:
    ok = client.fine_tunes.get(emulator.seed_job("dashscope", status="SUCCEEDED", age=7200))
    assert ok.succeeded
    assert ok.finetuned_model.startswith("qwen-turbo-ft-")  # type: ignore[union-attr]
    assert ok.finished_at is not None
    assert ok.usage is not None
    assert ok.usage.total_tokens > 0
    bad = client.fine_tunes.get(emulator.seed_job("dashscope", status="FAILED", age=7200, error="bad rows"))
    assert (bad.status, bad.code, bad.message) == ("FAILED", "TrainingFailed", "bad rows")


def test_create_cancel_delete_logs(emulator: FineTuningEmulator, client: dashscope.Client) -> None:
    file_id = emulator.seed_file("dashscope", "train.jsonl", TRAINING_JSONL)
    created = client.fine_tunes.create(
        model="qwen-turbo", training_file_ids=file_id, mode="sft", finetuned_model="my-qwen"
    )
    assert created.status == "PENDING"
    assert emulator.requests[-1].body["model_name"] == "my-qwen"
    assert client.fine_tunes.cancel(created.job_id).status == "success"  # type: ignore[arg-type]
    assert client.fine_tunes.get(created.job_id).status == "CANCELED"  # type: ignore[arg-type]
    logs = client.fine_tunes.logs(created.job_id)  # type: ignore[arg-type]
    assert logs.content.splitlines()[-1].endswith("CANCELED")
    assert client.fine_tunes.delete(created.job_id).status == "success"  # type: ignore[arg-type]
    assert emulator.job("dashscope", created.job_id) is None  # type: ignore[arg-type]


def test_error_mapping(emulator: FineTuningEmulator, client: dashscope.Client) -> None:
    running = emulator.seed_job("dashscope")
    done = emulator.seed_job("dashscope", status="SUCCEEDED", age=60)
    with pytest.raises(ds_errors.NotFoundError):
        client.fine_tunes.get("ft-202401010000-0000")
    with pytest.raises(ds_errors.BadRequestError) as not_deletable:
        client.fine_tunes.delete(running)
    assert not_deletable.value.code == "UnsupportedOperation"
    with pytest.raises(ds_errors.BadRequestError) as not_cancellable:
        client.fine_tunes.cancel(done)
    assert not_cancellable.value.code == "UnsupportedOperation"
    emulator.inject(Fault("status", status=429))
    with pytest.raises(ds_errors.RateLimitError):
        client.fine_tunes.list()
    emulator.inject(Fault("dashscope_200_error"))
    with pytest.raises(ds_errors.DashScopeError) as in_body:
        client.fine_tunes.get(running)
    assert (in_body.value.status_code, in_body.value.code) == (200, "InternalError")
    emulator.inject(Fault("drop"))
    with pytest.raises(ds_errors.APIConnectionError):
        client.fine_tunes.get(running)


def test_wrong_key_is_authentication_error(emulator: FineTuningEmulator) -> None:
    sdk = dashscope.Client(api_key="sk-wrong", base_url=emulator.url("dashscope"), workspace="ws", max_retries=0)
    with sdk, pytest.raises(ds_errors.AuthenticationError) as denied:
        sdk.fine_tunes.list()
    assert denied.value.code == "InvalidApiKey"


def test_legacy_1x_api(emulator: FineTuningEmulator) -> None:
    base = {"api_key": emulator.api_key, "base_address": emulator.url("dashscope")}
    job_id = emulator.seed_job("dashscope", status="FAILED", age=600, error="boom")
    listed = dashscope.FineTunes.list(**base)
    assert (listed.status_code, listed.output.total, listed.output.jobs[0].job_id) == (200, 1, job_id)
    got = dashscope.FineTunes.get(job_id, **base)
    assert (got.output.status, got.output.end_time is not None) == ("FAILED", True)
    assert dashscope.FineTunes.cancel(job_id, **base).status_code == 400
    assert dashscope.FineTunes.delete(job_id, **base).output.status == "success"
    missing = dashscope.FineTunes.get(job_id, **base)
    assert (missing.status_code, missing.code, missing.message) == (404, "NotFound", "Not Found!")

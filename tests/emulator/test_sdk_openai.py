"""Fidelity: the official ``openai`` SDK works against the emulator and maps its errors as for the real API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import openai
import pytest
import requests
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest

from airflow_provider_ft_emulator import Fault, FineTuningEmulator
from tests.emulator.conftest import TRAINING_JSONL


@pytest.fixture
def client(emulator: FineTuningEmulator) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=emulator.url("openai"),
        api_key=emulator.api_key,
        organization="org-abc",
        project="proj-xyz",
        max_retries=0,
        timeout=5,
    ) as sdk:
        yield sdk


def test_auto_pagination_walks_every_page(emulator: FineTuningEmulator, client: openai.OpenAI) -> None:
    ids = [emulator.seed_job("openai", age=timedelta(minutes=60 - i)) for i in range(45)]
    listed = [job.id for job in client.fine_tuning.jobs.list(limit=10)]
    assert listed == list(reversed(ids))
    afters = [r.query.get("after") for r in emulator.requests]
    assert afters == [None, *[listed[i] for i in (9, 19, 29, 39)]]
    assert all(r.headers["openai-organization"] == "org-abc" for r in emulator.requests)
    assert all(r.headers["openai-project"] == "proj-xyz" for r in emulator.requests)


def test_create_retrieve_cancel(emulator: FineTuningEmulator, client: openai.OpenAI) -> None:
    training = emulator.seed_file("openai", "train.jsonl", TRAINING_JSONL)
    created = client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=training, suffix="demo", metadata={"team": "a"}, seed=7
    )
    assert created.status == "validating_files"
    assert (created.seed, created.metadata, created.user_provided_suffix) == (7, {"team": "a"}, "demo")
    assert client.fine_tuning.jobs.retrieve(created.id).id == created.id
    cancelled = client.fine_tuning.jobs.cancel(created.id)
    assert cancelled.status == "cancelled"
    assert cancelled.finished_at is not None


def test_sdk_request_bodies_match_the_contract(
    emulator: FineTuningEmulator, client: openai.OpenAI, openai_spec: OpenAPI
) -> None:
    client.fine_tuning.jobs.create(
        model="gpt-4o-mini",
        training_file=emulator.seed_file("openai", "train.jsonl", TRAINING_JSONL),
        validation_file=emulator.seed_file("openai", "valid.jsonl", TRAINING_JSONL),
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}},
    )
    record = emulator.requests[-1]
    url, auth = f"{emulator.url('openai')}{record.path}", {"Authorization": "Bearer redacted"}
    replay = requests.Request("POST", url, json=record.body, headers=auth).prepare()
    openai_spec.validate_request(RequestsOpenAPIRequest(replay))
    assert emulator.jobs("openai")[0]["hyperparameters"]["n_epochs"] == 3


def test_pause_resume_events_checkpoints(emulator: FineTuningEmulator, client: openai.OpenAI) -> None:
    running = emulator.seed_job("openai", status="running")
    assert client.fine_tuning.jobs.pause(running).status == "paused"
    assert client.fine_tuning.jobs.resume(running).status == "queued"
    done = emulator.seed_job("openai", status="succeeded", age=3600)
    events = list(client.fine_tuning.jobs.list_events(done, limit=2))
    assert events[0].message == "The job has successfully completed"
    assert [e.type for e in events].count("message") == 5
    metrics = [e for e in events if e.type == "metrics"]
    assert [e.data["step"] for e in metrics] == list(range(100, 0, -10))  # type: ignore[index]
    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(done, limit=1))
    assert [c.step_number for c in checkpoints] == [300, 200, 100]


def test_error_mapping(emulator: FineTuningEmulator, client: openai.OpenAI) -> None:
    finished = emulator.seed_job("openai", status="succeeded", age=60)
    with pytest.raises(openai.NotFoundError) as not_found:
        client.fine_tuning.jobs.retrieve("ftjob-doesnotexist")
    assert not_found.value.code == "fine_tune_not_found"
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.cancel(finished)
    emulator.inject(Fault("status", status=429, headers={"retry-after": "1"}))
    with pytest.raises(openai.RateLimitError) as limited:
        client.fine_tuning.jobs.list()
    assert limited.value.response.headers["retry-after"] == "1"
    emulator.inject(Fault("status", status=503))
    with pytest.raises(openai.InternalServerError):
        client.fine_tuning.jobs.list()
    emulator.inject(Fault("drop"))
    with pytest.raises(openai.APIConnectionError):
        client.fine_tuning.jobs.list()


def test_wrong_key_is_authentication_error(emulator: FineTuningEmulator) -> None:
    bad = openai.OpenAI(base_url=emulator.url("openai"), api_key="sk-wrong-key-123456789", max_retries=0)
    with bad, pytest.raises(openai.AuthenticationError) as denied:
        bad.fine_tuning.jobs.list()
    assert denied.value.code == "invalid_api_key"
    assert "sk-wrong-key-123456789" not in str(denied.value)


def test_sdk_retries_honour_retry_after_ms(emulator: FineTuningEmulator) -> None:
    emulator.inject(Fault("status", status=503, headers={"retry-after-ms": "10"}, times=2))
    with openai.OpenAI(base_url=emulator.url("openai"), api_key=emulator.api_key, max_retries=2) as sdk:
        assert list(sdk.fine_tuning.jobs.list()) == []
    assert [r.status for r in emulator.requests] == [503, 503, 200]

"""Fidelity: the official ``openai.AzureOpenAI`` client (and ``openai.OpenAI`` on the v1 API) against the
emulator's Azure mount, and the provider's Azure dialect sending what that client sends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx2
import openai
import pytest

from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
from airflow_provider_ft_emulator import Fault, FineTuningEmulator
from tests.conftest import FAST_RETRIES, ConnectionFactory
from tests.emulator.conftest import TRAINING_JSONL

API_VERSION = "2024-10-21"


@pytest.fixture
def client(emulator: FineTuningEmulator) -> Iterator[openai.AzureOpenAI]:
    with openai.AzureOpenAI(
        azure_endpoint=emulator.url("azure"),
        api_key=emulator.api_key,
        api_version=API_VERSION,
        max_retries=0,
        timeout=5,
    ) as sdk:
        yield sdk


def test_sdk_pages_every_job_with_api_version_and_api_key(
    emulator: FineTuningEmulator, client: openai.AzureOpenAI
) -> None:
    ids = [emulator.seed_job("azure", age=timedelta(minutes=30 - i)) for i in range(25)]
    listed = [job.id for job in client.fine_tuning.jobs.list(limit=10)]
    assert listed == list(reversed(ids))
    assert [r.path for r in emulator.requests] == ["/fine_tuning/jobs"] * 3
    assert all(r.query["api-version"] == API_VERSION for r in emulator.requests)
    assert all(r.authorized for r in emulator.requests)
    assert not any("api-key" in r.headers for r in emulator.requests)


def test_sdk_create_retrieve_cancel_delete(emulator: FineTuningEmulator, client: openai.AzureOpenAI) -> None:
    training = client.files.create(file=("train.jsonl", TRAINING_JSONL), purpose="fine-tune")
    created = client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=training.id, suffix="af-demo", hyperparameters={"n_epochs": 2}, seed=7
    )
    assert created.status == "pending"
    assert created.seed == 7
    assert client.fine_tuning.jobs.retrieve(created.id).id == created.id
    assert client.fine_tuning.jobs.cancel(created.id).status == "cancelled"
    deleted = client.delete(
        f"/fine_tuning/jobs/{created.id}", cast_to=httpx2.Response, options={"params": {"api-version": API_VERSION}}
    )
    assert deleted.status_code == 204
    assert emulator.job("azure", created.id) is None
    assert [r.status for r in emulator.requests] == [201, 201, 200, 200, 204]


def test_sdk_maps_azure_errors(emulator: FineTuningEmulator, client: openai.AzureOpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("ftjob-doesnotexist")
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.pause(emulator.seed_job("azure", status="running"))
    emulator.inject(Fault("status", status=429, headers={"retry-after": "1"}))
    with pytest.raises(openai.RateLimitError) as limited:
        client.fine_tuning.jobs.list()
    assert limited.value.code == "tooManyRequests"
    wrong = openai.AzureOpenAI(
        azure_endpoint=emulator.url("azure"), api_key="wrong-key-0123456789", api_version=API_VERSION, max_retries=0
    )
    with wrong, pytest.raises(openai.AuthenticationError) as denied:
        wrong.fine_tuning.jobs.list()
    assert "wrong-key-0123456789" not in str(denied.value)


def test_dated_api_without_a_version_is_not_found(emulator: FineTuningEmulator) -> None:
    sdk = openai.OpenAI(base_url=f"{emulator.url('azure')}/openai", api_key=emulator.api_key, max_retries=0)
    with sdk, pytest.raises(openai.NotFoundError):
        sdk.fine_tuning.jobs.list()


def test_plain_openai_client_on_the_v1_api(emulator: FineTuningEmulator) -> None:
    job = emulator.seed_job("azure", status="running")
    with openai.OpenAI(base_url=f"{emulator.url('azure')}/openai/v1/", api_key=emulator.api_key, max_retries=0) as sdk:
        assert sdk.fine_tuning.jobs.retrieve(job).status == "running"
    assert emulator.requests[-1].path == "/v1/fine_tuning/jobs/" + job
    assert "api-version" not in emulator.requests[-1].query


@pytest.mark.parametrize("api_version", [API_VERSION, "v1"])
def test_the_dialect_sends_what_the_sdk_sends(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory, client: openai.AzureOpenAI, api_version: str
) -> None:
    job = emulator.seed_job("azure", status="running")
    client.fine_tuning.jobs.retrieve(job)
    by_sdk = emulator.requests[-1]
    conn_id = make_connection(
        "ft_azure_sdk",
        "azureopenaifinetuning",
        host=emulator.url("azure"),
        password=emulator.api_key,
        api_version=api_version,
        **FAST_RETRIES,
    )
    found = FineTuningHook(conn_id).get_job(job)
    ours = emulator.requests[-1]
    assert (found.id, found.vendor_status) == (job, "running")
    prefix = "/v1" if api_version == "v1" else ""
    assert ours.path == prefix + by_sdk.path
    assert ours.query == ({} if api_version == "v1" else by_sdk.query)
    assert ours.authorized
    assert by_sdk.authorized


@pytest.mark.parametrize("api_version", ["2025-04-01-preview", "v1"])
def test_pause_and_resume_where_the_api_version_has_them(emulator: FineTuningEmulator, api_version: str) -> None:
    """Microsoft's 2025-04-01-preview ``FineTuning_Pause`` and ``FineTuning_Resume`` examples answer ``paused``
    and ``resuming``; the resumed job runs again after the queue's wait."""
    job = emulator.seed_job("azure", status="running")
    if api_version == "v1":
        sdk: openai.OpenAI = openai.OpenAI(
            base_url=f"{emulator.url('azure')}/openai/v1/", api_key=emulator.api_key, max_retries=0
        )
    else:
        sdk = openai.AzureOpenAI(
            azure_endpoint=emulator.url("azure"), api_key=emulator.api_key, api_version=api_version, max_retries=0
        )
    with sdk:
        assert sdk.fine_tuning.jobs.pause(job).status == "paused"  # type: ignore[comparison-overlap]
        assert sdk.fine_tuning.jobs.resume(job).status == "resuming"  # type: ignore[comparison-overlap]
        emulator.advance(6)
        assert sdk.fine_tuning.jobs.retrieve(job).status == "running"


def test_events_come_oldest_first_and_page_forward(emulator: FineTuningEmulator, client: openai.AzureOpenAI) -> None:
    """Every ``FineTuning_GetEvents`` example lists the events oldest first; ``after`` is the last event read."""
    job = emulator.seed_job("azure", status="running", runs_for=timedelta(minutes=10))
    emulator.advance(700)
    first = client.fine_tuning.jobs.list_events(job, limit=3)
    times = [event.created_at for event in first.data]
    assert times == sorted(times)
    assert first.data[0].message == f"Created fine-tuning job: {job}"
    every = list(client.fine_tuning.jobs.list_events(job, limit=3))
    assert [event.created_at for event in every] == sorted(event.created_at for event in every)
    assert len({event.id for event in every}) == len(every) > 3


def test_the_dated_file_list_is_one_answer_without_has_more(
    emulator: FineTuningEmulator, client: openai.AzureOpenAI
) -> None:
    """Azure's ``FileList`` is ``{object, data}``: every file at once."""
    uploaded = [client.files.create(file=(f"t{i}.jsonl", TRAINING_JSONL), purpose="fine-tune").id for i in range(3)]
    listed = client.files.with_raw_response.list(limit=1).http_response.json()
    assert set(listed) == {"object", "data"}
    assert [file["id"] for file in listed["data"]] == list(reversed(uploaded))

"""Fidelity: the official ``together`` SDK (3.x) works against the emulator's ``/together`` mount, its types
validate every answer strictly, and it maps the emulator's errors as for the real API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import together
from together.types import FinetuneResponse, FineTuningListEventsResponse, FineTuningListResponse
from together.types.file_list import FileList
from together.types.fine_tuning_delete_response import FineTuningDeleteResponse

from airflow_provider_ft.identity import TaskIdentity
from airflow_provider_ft.vendors.together import TogetherDialect
from airflow_provider_ft.vendors.wire import JobSpec
from airflow_provider_ft_emulator import Fault, FineTuningEmulator
from tests.emulator.conftest import TRAINING_JSONL


@pytest.fixture
def client(emulator: FineTuningEmulator) -> Iterator[together.Together]:
    # The SDK's paths start with /v1: its base URL is the mount without it.
    root = emulator.url("together").removesuffix("/v1")
    with together.Together(base_url=root, api_key=emulator.api_key, max_retries=0, timeout=5) as sdk:
        yield sdk


def test_list_retrieve_events_validate_against_the_sdk_types(
    emulator: FineTuningEmulator, client: together.Together
) -> None:
    done = emulator.seed_job("together", status="completed", age=3600, name="af-demo")
    running = emulator.seed_job("together", status="running", runs_for=None)
    failed = emulator.seed_job("together", status="error", error="Training data has an invalid line")

    listed = client.fine_tuning.list()
    assert [job.id for job in listed.data] == [failed, running, done]
    FineTuningListResponse.model_validate(listed.to_dict())  # strict: the SDK itself only constructs

    job = client.fine_tuning.retrieve(done)
    FinetuneResponse.model_validate(job.to_dict())
    assert job.status == "completed"
    assert job.x_model_output_name is not None
    assert "af-demo" in job.x_model_output_name

    events = client.fine_tuning.list_events(failed)
    FineTuningListEventsResponse.model_validate(events.to_dict())
    assert events.data[-1].type == "job_error"
    assert events.data[-1].message == "Training data has an invalid line"
    assert all(request.path.startswith("/fine-tunes") for request in emulator.requests)


def test_cancel_then_delete(emulator: FineTuningEmulator, client: together.Together) -> None:
    job_id = emulator.seed_job("together", status="running")
    cancelled = client.fine_tuning.cancel(job_id)
    assert cancelled.status == "cancelled"
    deleted = client.fine_tuning.delete(job_id)
    FineTuningDeleteResponse.model_validate(deleted.to_dict())
    assert emulator.job("together", job_id) is None


def test_the_dialects_create_body_is_accepted_and_answered_in_the_sdks_type(
    emulator: FineTuningEmulator, client: together.Together
) -> None:
    training = emulator.seed_file("together", "train.jsonl", TRAINING_JSONL)
    spec = JobSpec(
        model="meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
        training_file=training,
        hyperparameters={"n_epochs": 3, "learning_rate": 0.0001, "batch_size": "max"},
        method="sft",
        training_type={"type": "Lora", "lora_r": 8, "lora_alpha": 16},
        seed=7,
    )
    request = TogetherDialect().create_job(spec, TaskIdentity("dag", "task", "run"))
    assert request.json_body is not None
    created = client.post("/v1/fine-tunes", body=request.json_body, cast_to=FinetuneResponse)
    FinetuneResponse.model_validate(created.to_dict())
    assert (created.status, created.n_epochs, created.training_file) == ("pending", 3, training)
    assert emulator.jobs("together")[0]["random_seed"] == 7


def test_a_file_uploaded_the_documented_way_is_listed_in_the_sdks_type(
    emulator: FineTuningEmulator, client: together.Together
) -> None:
    emulator.seed_file("together", "train.jsonl", TRAINING_JSONL)
    files = client.files.list()
    FileList.model_validate(files.to_dict())
    assert [(file.filename, file.bytes, file.purpose) for file in files.data] == [
        ("train.jsonl", len(TRAINING_JSONL), "fine-tune")
    ]


@pytest.mark.parametrize(
    ("status", "error"),
    [(404, together.NotFoundError), (400, together.BadRequestError), (429, together.RateLimitError)],
)
def test_the_sdk_maps_the_emulators_errors(
    emulator: FineTuningEmulator, client: together.Together, status: int, error: type[Exception]
) -> None:
    job_id = emulator.seed_job("together", status="running", age=timedelta(minutes=5))
    if status != 404:
        emulator.inject(Fault(kind="status", status=status, vendor="together"))
    with pytest.raises(error) as raised:
        client.fine_tuning.retrieve(job_id if status != 404 else "ft-gone")
    body = raised.value.body  # type: ignore[attr-defined]
    assert set(body["error"]) == {"message", "type", "param", "code"}, "the documented error object"


def test_a_wrong_key_is_an_authentication_error(emulator: FineTuningEmulator) -> None:
    root = emulator.url("together").removesuffix("/v1")
    sdk = together.Together(base_url=root, api_key="wrong-key-0123456789", max_retries=0)
    with sdk, pytest.raises(together.AuthenticationError) as raised:
        sdk.fine_tuning.list()
    assert "wrong-key-0123456789" not in str(raised.value)

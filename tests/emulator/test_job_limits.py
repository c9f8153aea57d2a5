"""An emulated account at its job limit: the vendor's documented answer over real HTTP, and a slot freeing.

The answers and their sources: ``airflow_provider_ft_emulator.limits`` and docs/operators/create.md.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from airflow_provider_ft_emulator import FineTuningEmulator
from tests.emulator.conftest import API_KEY, TRAINING_JSONL

MODEL = "gpt-4o-mini-2024-07-18"
DAY = 24 * 3600.0
AZURE_JOBS = {"dated": "/openai/fine_tuning/jobs?api-version=2024-10-21", "v1": "/openai/v1/fine_tuning/jobs"}


def create_openai(emulator: FineTuningEmulator, http: requests.Session, model: str = MODEL) -> requests.Response:
    training = emulator.seed_file("openai", "train.jsonl", TRAINING_JSONL)
    return http.post(f"{emulator.url('openai')}/fine_tuning/jobs", json={"model": model, "training_file": training})


def create_azure(emulator: FineTuningEmulator, surface: str) -> requests.Response:
    training = emulator.seed_file("azure", "train.jsonl", TRAINING_JSONL)
    return requests.post(
        emulator.url("azure") + AZURE_JOBS[surface],
        json={"model": MODEL, "training_file": training},
        headers={"api-key": API_KEY},
        timeout=10,
    )


def test_openai_daily_limit_answers_as_openai_does_and_makes_no_job(
    emulator: FineTuningEmulator, http: requests.Session, openai_contract: Any
) -> None:
    emulator.limit_jobs("openai", per_day=1)
    emulator.seed_job("openai", model=MODEL, age=3600)

    response = create_openai(emulator, http)

    assert response.status_code == 429
    error = openai_contract(response)["error"]
    assert (error["code"], error["type"], error["param"]) == (
        "daily_rate_limit_exceeded",
        "invalid_request_error",
        None,
    )
    assert error["message"] == (
        "This fine-tune request has been rate-limited. Your organization has reached the maximum of 1 fine-tuning "
        f"requests per day for the model '{MODEL}'."
    )
    assert len(emulator.jobs("openai")) == 1


def test_openai_daily_limit_counts_one_model_over_the_last_day(
    emulator: FineTuningEmulator, http: requests.Session
) -> None:
    emulator.limit_jobs("openai", per_day=1)
    emulator.seed_job("openai", model=MODEL, age=DAY - 60)

    assert create_openai(emulator, http, "gpt-4.1-2025-04-14").status_code == 200, "another model has its own count"
    assert create_openai(emulator, http).status_code == 429
    emulator.advance(61)
    assert create_openai(emulator, http).status_code == 200, "the earlier job has aged out of the day"
    assert create_openai(emulator, http).status_code == 429


@pytest.mark.parametrize("surface", sorted(AZURE_JOBS))
def test_azure_active_limit_answers_quota_exceeded_until_a_job_ends(emulator: FineTuningEmulator, surface: str) -> None:
    emulator.limit_jobs("azure", active=1)
    emulator.seed_job("azure", status="running", runs_for=60)

    refused = create_azure(emulator, surface)

    assert refused.status_code == 429
    assert refused.json() == {
        "error": {
            "code": "quotaExceeded",
            "message": "Quota exceeded: the resource already has 1 fine-tuning jobs queued or running (at most 1).",
        }
    }
    assert len(emulator.jobs("azure")) == 1
    emulator.advance(61)
    assert create_azure(emulator, surface).status_code == 201, "the running job has ended: a slot is free"


def test_a_limit_is_lifted_by_reset_and_replaced_by_a_new_one(
    emulator: FineTuningEmulator, http: requests.Session
) -> None:
    emulator.limit_jobs("openai", per_day=0)
    assert create_openai(emulator, http).status_code == 429
    emulator.limit_jobs("openai", per_day=5)
    assert create_openai(emulator, http).status_code == 200
    emulator.limit_jobs("openai", per_day=0)
    emulator.reset()
    assert create_openai(emulator, http).status_code == 200


@pytest.mark.parametrize(
    ("vendor", "limit"),
    [
        ("dashscope", {"active": 1}),
        ("together", {"active": 1}),
        ("together", {"per_day": 1}),
        ("openai", {"active": 1}),
        ("azure", {"per_day": 1}),
    ],
)
def test_only_a_limit_the_vendor_documents_an_answer_for_can_be_set(vendor: str, limit: dict[str, int]) -> None:
    with FineTuningEmulator() as emulator, pytest.raises(ValueError, match="documents no answer"):
        emulator.limit_jobs(vendor, **limit)


@pytest.mark.parametrize("limit", [{}, {"per_day": -1}, {"per_day": True}, {"per_day": 1.5}])
def test_a_limit_must_be_a_number_of_jobs(emulator: FineTuningEmulator, limit: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"give active= or per_day=|whole number of jobs"):
        emulator.limit_jobs("openai", **limit)

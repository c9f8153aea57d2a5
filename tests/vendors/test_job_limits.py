"""Which refused creates say the account is at its job limit (``Dialect.is_job_limit``), each answer with its source.

A job-limit answer becomes ``FineTuningCapacityError``, not a rate limit (``rate_limited`` false: the account's
other requests are not paused); anything else stays what it was. Only a create can be refused for the job limit.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningCapacityError
from airflow_provider_ft.identity import TaskIdentity
from airflow_provider_ft.vendors.azure_openai import AzureOpenAIDialect
from airflow_provider_ft.vendors.base import Dialect
from airflow_provider_ft.vendors.dashscope import DashScopeDialect
from airflow_provider_ft.vendors.openai import OpenAIDialect
from airflow_provider_ft.vendors.together import TogetherDialect
from airflow_provider_ft.vendors.wire import ApiRequest, ApiResponse, JobSpec

IDENTITY = TaskIdentity("dag", "task", "run", -1, "ns")
SPEC = JobSpec(model="gpt-4o-mini-2024-07-18", training_file="file-abc123")

#: OpenAI's answer to a create past the daily limit, as a user's log quotes it (johny-b/llmcomp issue #58,
#: https://github.com/johny-b/llmcomp/issues/58, 2026-02-12; the number is the organization's own). The same
#: wording is what that project's code parses (llmcomp/finetuning/manager.py, "maximum of (\d+) fine-tuning
#: requests per day"). OpenAI's API reference and OpenAPI spec document no error body for this.
OPENAI_DAILY_LIMIT = {
    "error": {
        "message": "This fine-tune request has been rate-limited. Your organization has reached the maximum of 8 "
        "fine-tuning requests per day for the model 'gpt-4.1-2025-04-14'.",
        "type": "invalid_request_error",
        "param": None,
        "code": "daily_rate_limit_exceeded",
    }
}
#: A request-rate 429 (OpenAI's error-codes guide, "429 - Rate limit reached for requests"; the wording as it comes).
OPENAI_REQUEST_RATE = {
    "error": {
        "message": "Rate limit reached for gpt-4o-mini in organization org-x on requests per min (RPM): Limit 3, "
        "Used 3, Requested 1. Please try again in 20s.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}


def azure(code: str) -> dict[str, Any]:
    """Microsoft's ``ErrorResponse`` (authoring spec 2024-10-21, ``Error``: ``code`` an ``ErrorCode``, ``message``)."""
    return {"error": {"code": code, "message": "Quota exceeded."}}


def refusal(
    dialect: Dialect, status: int, body: dict[str, Any], request: ApiRequest | None = None
) -> FineTuningApiError:
    request = request or dialect.create_job(SPEC, IDENTITY)
    with pytest.raises(FineTuningApiError) as raised:
        dialect.decode(request, ApiResponse(status, {"retry-after": "30"}, json.dumps(body).encode()))
    return raised.value


def test_openai_daily_job_limit_is_a_capacity_refusal_not_a_rate_limit() -> None:
    error = refusal(OpenAIDialect(), 429, OPENAI_DAILY_LIMIT)
    assert isinstance(error, FineTuningCapacityError)
    assert not error.rate_limited
    assert (error.http_status, error.vendor_code, error.retry_after) == (429, "daily_rate_limit_exceeded", 30.0)
    assert "maximum of 8 fine-tuning requests per day" in error.message


def test_openai_job_limit_wording_with_another_code_is_a_capacity_refusal() -> None:
    body = {"error": {**OPENAI_DAILY_LIMIT["error"], "code": "rate_limit_exceeded"}}
    assert isinstance(refusal(OpenAIDialect(), 429, body), FineTuningCapacityError)


def test_openai_request_rate_limit_stays_a_rate_limit() -> None:
    error = refusal(OpenAIDialect(), 429, OPENAI_REQUEST_RATE)
    assert not isinstance(error, FineTuningCapacityError)
    assert error.rate_limited


@pytest.mark.parametrize("status", [400, 500])
def test_openai_job_limit_words_need_a_429(status: int) -> None:
    assert not isinstance(refusal(OpenAIDialect(), status, OPENAI_DAILY_LIMIT), FineTuningCapacityError)


def test_only_a_create_is_refused_for_the_job_limit() -> None:
    dialect = OpenAIDialect()
    error = refusal(dialect, 429, OPENAI_DAILY_LIMIT, dialect.list_page(None, 20, {}))
    assert not isinstance(error, FineTuningCapacityError)
    assert error.rate_limited


@pytest.mark.parametrize("api_version", [None, "v1"])
@pytest.mark.parametrize("status", [400, 403, 429])
def test_azure_quota_exceeded_on_a_create_is_a_capacity_refusal(status: int, api_version: str | None) -> None:
    error = refusal(AzureOpenAIDialect({"api_version": api_version}), status, azure("quotaExceeded"))
    assert isinstance(error, FineTuningCapacityError)
    assert not error.rate_limited
    assert error.vendor_code == "quotaExceeded"


def test_azure_v1_answers_in_openai_words_are_read_as_openai_reads_them() -> None:
    dialect = AzureOpenAIDialect({"api_version": "v1"})
    assert isinstance(refusal(dialect, 429, OPENAI_DAILY_LIMIT), FineTuningCapacityError)


def test_azure_too_many_requests_stays_a_rate_limit() -> None:
    error = refusal(AzureOpenAIDialect(), 429, azure("tooManyRequests"))
    assert not isinstance(error, FineTuningCapacityError)
    assert error.rate_limited


def test_azure_quota_exceeded_elsewhere_than_a_create_is_no_job_limit() -> None:
    dialect = AzureOpenAIDialect()
    request = dialect.files_page(None, 100)  # a listing: the files quota is not a job limit
    assert not isinstance(refusal(dialect, 400, azure("quotaExceeded"), request), FineTuningCapacityError)


@pytest.mark.parametrize("code", ["Throttling", "Throttling.RateQuota", "Throttling.AllocationQuota"])
def test_dashscope_documents_no_job_limit_answer_its_throttling_stays_a_rate_limit(code: str) -> None:
    # Model Studio's error codes (shared/api/dashscope-fine-tunes.md): 429 Throttling* is a rate or quota limit.
    dialect = DashScopeDialect()
    spec = JobSpec(model="qwen-turbo", training_file="file-ft-0123")
    error = refusal(
        dialect, 429, {"request_id": "r-1", "code": code, "message": "slow down"}, dialect.create_job(spec, IDENTITY)
    )
    assert not isinstance(error, FineTuningCapacityError)
    assert error.rate_limited


def test_together_documents_no_job_limit_answer_its_429_stays_a_rate_limit() -> None:
    # docs/wire/together.md: 429 is the rate limit (SDK v1 api_requestor.handle_error_response).
    dialect = TogetherDialect()
    spec = JobSpec(model="meta-llama/Meta-Llama-3.1-8B-Instruct-Reference", training_file="file-0123")
    body = {"error": {"message": "This fine-tune request has been rate-limited.", "type": "rate_limit", "code": None}}
    error = refusal(dialect, 429, body, dialect.create_job(spec, IDENTITY))
    assert not isinstance(error, FineTuningCapacityError)
    assert error.rate_limited

"""The Azure OpenAI dialect on its own: paths and api-version, auth, the create body, delete's 204, errors, words."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_ft.exceptions import (
    FineTuningApiError,
    FineTuningConfigError,
    InvalidJobIdError,
    UnsupportedOperationError,
)
from airflow_provider_ft.identity import TaskIdentity
from airflow_provider_ft.jobs import JobStatus
from airflow_provider_ft.transport import settings_from_connection
from airflow_provider_ft.vendors.azure_openai import DEFAULT_API_VERSION, AzureOpenAIDialect
from airflow_provider_ft.vendors.wire import ApiRequest, ApiResponse, JobSpec

IDENTITY = TaskIdentity("dag", "task", "run", -1, "ns")
JOB = "ftjob-0123456789abcdef0123456789"


def job(**fields: Any) -> dict[str, Any]:
    return {"id": JOB, "object": "fine_tuning.job", "status": "pending", "model": "gpt-4o-mini", **fields}


@pytest.mark.parametrize(
    ("build", "method", "path"),
    [
        (lambda d: d.get_job(JOB), "GET", f"/fine_tuning/jobs/{JOB}"),
        (lambda d: d.cancel_job(JOB), "POST", f"/fine_tuning/jobs/{JOB}/cancel"),
        (lambda d: d.delete_job(JOB), "DELETE", f"/fine_tuning/jobs/{JOB}"),
        (lambda d: d.events_page(JOB, None, 50), "GET", f"/fine_tuning/jobs/{JOB}/events"),
        (lambda d: d.list_page(None, 20, {"metadata": {"k": "v"}}), "GET", "/fine_tuning/jobs"),
        (lambda d: d.files_page(None, 100), "GET", "/files"),
    ],
    ids=["get", "cancel", "delete", "events", "list", "files"],
)
@pytest.mark.parametrize("api_version", [None, "2025-04-01-preview", "v1"])
def test_requests_go_below_openai_with_the_api_version_or_below_openai_v1(
    build: Any, method: str, path: str, api_version: str | None
) -> None:
    request: ApiRequest = build(AzureOpenAIDialect({"api_version": api_version} if api_version else {}))
    assert request.method == method
    params = dict(request.params)
    if api_version == "v1":
        assert request.path == f"/openai/v1{path}"
        assert "api-version" not in params
    else:
        assert request.path == f"/openai{path}"
        assert params["api-version"] == (api_version or DEFAULT_API_VERSION)
    assert not any(name.startswith("metadata") for name in params), "Azure lists take no metadata filter"


def test_the_dated_apis_file_listing_takes_purpose_alone_and_is_one_page() -> None:
    """``Files_List`` of the dated API (azure-rest-api-specs, AzureOpenAI/authoring/stable/2024-10-21/
    azureopenai.json) takes ``purpose`` and ``api-version`` only, and its ``FileList`` has no ``has_more``."""
    dated, v1 = AzureOpenAIDialect(), AzureOpenAIDialect({"api_version": "v1"})
    assert dict(dated.files_page("file-x", 100).params) == {"purpose": "fine-tune", "api-version": DEFAULT_API_VERSION}
    assert dict(v1.files_page("file-x", 100).params) == {
        "purpose": "fine-tune",
        "limit": "100",
        "order": "desc",
        "after": "file-x",
    }
    entry = {"id": "file-a", "object": "file", "filename": "a.jsonl", "bytes": 3, "status": "processed"}
    page = dated.parse_files_page({"object": "list", "data": [entry]}, None, 100)
    assert ([f.id for f in page.files], page.next_cursor) == (["file-a"], None)
    said_more = dated.parse_files_page({"object": "list", "data": [entry], "has_more": True}, None, 100)
    assert said_more.next_cursor == "file-a", "a page that says more follow is not taken for the last"


def test_the_key_goes_in_api_key_and_nothing_else_carries_it() -> None:
    headers = AzureOpenAIDialect({"organization": "org-x"}).headers("secret-key-123")
    assert headers == {"api-key": "secret-key-123", "Accept": "application/json"}


@pytest.mark.parametrize("bad", ["2024-10", "latest", "V1", 20241021, "2024-10-21?x=1"])
def test_an_unusable_api_version_is_refused_before_any_request(bad: object) -> None:
    with pytest.raises(FineTuningConfigError, match="api_version"):
        AzureOpenAIDialect({"api_version": bad})


def test_the_connection_needs_the_resource_endpoint() -> None:
    from airflow_provider_ft._compat import Connection

    conn = Connection(conn_id="az", conn_type="azureopenaifinetuning", password="k" * 32)
    with pytest.raises(FineTuningConfigError, match="no host"):
        settings_from_connection(conn)
    conn.host = "https://my-resource.openai.azure.com"
    assert settings_from_connection(conn).base_url == "https://my-resource.openai.azure.com"


def test_create_carries_the_identity_in_the_suffix_and_takes_hyperparameters_and_seed() -> None:
    spec = JobSpec("gpt-4o-mini", "file-abc", "file-def", hyperparameters={"n_epochs": 2}, seed=7)
    request = AzureOpenAIDialect().create_job(spec, IDENTITY)
    assert (request.method, request.path, request.retry_safe) == ("POST", "/openai/fine_tuning/jobs", False)
    assert request.json_body == {
        "model": "gpt-4o-mini",
        "training_file": "file-abc",
        "validation_file": "file-def",
        "suffix": IDENTITY.tag,
        "hyperparameters": {"n_epochs": 2},
        "seed": 7,
    }
    assert len(IDENTITY.tag) <= 40, "Azure's suffix limit"


@pytest.mark.parametrize(
    "options", [{"suffix": "mine"}, {"metadata": {"a": "b"}}, {"method": "dpo"}, {"training_type": "sft"}]
)
def test_options_azure_does_not_take_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(FineTuningConfigError, match="takes no"):
        AzureOpenAIDialect().create_job(JobSpec("gpt-4o-mini", "file-abc", **options), IDENTITY)


def test_the_job_is_found_again_by_its_suffix() -> None:
    dialect = AzureOpenAIDialect()
    assert dialect.identity_filters(JobSpec("m", "file-a"), IDENTITY) == {}
    assert dialect.carries_identity(dialect.parse_job(job(suffix=IDENTITY.tag)), IDENTITY)
    assert not dialect.carries_identity(dialect.parse_job(job(suffix="af-other")), IDENTITY)
    assert not dialect.carries_identity(dialect.parse_job(job()), IDENTITY)


def test_a_delete_answered_204_without_a_body_is_a_success() -> None:
    dialect = AzureOpenAIDialect()
    request = dialect.delete_job(JOB)
    assert dialect.decode(request, ApiResponse(204, {}, b"")) == {}
    with pytest.raises(FineTuningApiError):  # a get answered 204 has no job: not a success
        dialect.decode(dialect.get_job(JOB), ApiResponse(204, {}, b""))


def test_pause_and_resume_are_refused_before_any_request() -> None:
    dialect = AzureOpenAIDialect()
    for build in (dialect.pause_job, dialect.resume_job):
        with pytest.raises(UnsupportedOperationError, match="Azure OpenAI"):
            build(JOB)
        with pytest.raises(InvalidJobIdError):
            build("../x")


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("created", JobStatus.QUEUED),
        ("pending", JobStatus.QUEUED),
        ("validating_files", JobStatus.QUEUED),
        ("queued", JobStatus.QUEUED),
        ("running", JobStatus.RUNNING),
        ("succeeded", JobStatus.SUCCEEDED),
        ("failed", JobStatus.FAILED),
        ("cancelled", JobStatus.CANCELLED),
        # FineTuningState since 2025-04-01-preview: pausing and resuming are active states, paused is not
        ("pausing", JobStatus.RUNNING),
        ("paused", JobStatus.PAUSED),
        ("resuming", JobStatus.RUNNING),
        # the 2023-10-01-preview FineTuning_Cancel example's spelling
        ("canceled", JobStatus.CANCELLED),
        # OperationState (deployments, imports), not a fine-tuning job's
        ("notRunning", JobStatus.UNKNOWN),
    ],
)
def test_status_words(word: str, status: JobStatus) -> None:
    assert AzureOpenAIDialect().parse_job(job(status=word)).status is status


def error(status: int, code: str) -> FineTuningApiError:
    dialect = AzureOpenAIDialect()
    body = json.dumps({"error": {"code": code, "message": "no", "target": None}}).encode()
    with pytest.raises(FineTuningApiError) as raised:
        dialect.decode(dialect.cancel_job(JOB), ApiResponse(status, {}, body))
    return raised.value


def test_azure_error_codes() -> None:
    assert error(400, "unexpectedEntityState").vendor_code == "unexpectedEntityState"
    assert AzureOpenAIDialect().refuses_in_current_state(error(422, "unexpectedEntityState"))
    assert AzureOpenAIDialect().refuses_in_current_state(error(422, "conflict"))
    assert not AzureOpenAIDialect().refuses_in_current_state(error(422, "invalidPayload"))
    limited = error(400, "tooManyRequests")
    assert limited.rate_limited
    assert limited.retryable
    assert not error(400, "invalidPayload").retryable


def test_the_console_link_opens_the_foundry_portal() -> None:
    assert AzureOpenAIDialect().console_url(JOB, "https://my-resource.openai.azure.com") == "https://ai.azure.com/"
    assert AzureOpenAIDialect().console_url(JOB, "https://gateway.example.com/azure") == ""

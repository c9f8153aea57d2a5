"""The vendor dialects are pure functions: these tests need no server."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta, timezone

import pytest

from airflow_provider_ft.exceptions import (
    FineTuningApiError,
    FineTuningConfigError,
    InvalidJobIdError,
    JobNotFoundError,
    MalformedAnswerError,
    UnsupportedOperationError,
)
from airflow_provider_ft.identity import TaskIdentity
from airflow_provider_ft.jobs import FineTuningJob, JobStatus
from airflow_provider_ft.retry import parse_retry_after
from airflow_provider_ft.vendors import (
    DIALECTS_BY_CONN_TYPE,
    AzureOpenAIDialect,
    DashScopeDialect,
    OpenAIDialect,
    TogetherDialect,
    base,
)
from airflow_provider_ft.vendors.base import Dialect
from airflow_provider_ft.vendors.ids import validate_job_id
from airflow_provider_ft.vendors.wire import ApiRequest, ApiResponse, JobSpec

BAD_JOB_IDS = [
    "",
    "   ",
    "../x",
    "a/b",
    "x?y",
    "x#y",
    "%2e%2e",
    "job\nid",
    "job\x00id",
    "a" * 10_000,
    "a..b",
    "job id",
    123,
    None,
    ["ft-1"],
]


@pytest.mark.parametrize("job_id", BAD_JOB_IDS, ids=lambda value: repr(value)[:20])
def test_bad_job_ids_are_refused_with_a_reason(job_id: object) -> None:
    with pytest.raises(InvalidJobIdError) as raised:
        validate_job_id(job_id)
    message = str(raised.value)
    assert message
    assert any(word in message for word in ("string", "empty", "characters", "'..'"))


@pytest.mark.parametrize("job_id", ["ft-202410291653-a1b2", "ftjob-AF1WoRqd3aJAHsqc9NY7iL8F", "a.b_c-1"])
def test_real_job_ids_are_accepted(job_id: str) -> None:
    assert validate_job_id(job_id) == job_id


@pytest.mark.parametrize(
    "dialect",
    [DashScopeDialect(), OpenAIDialect(), AzureOpenAIDialect(), TogetherDialect()],
    ids=["dashscope", "openai", "azure", "together"],
)
@pytest.mark.parametrize("build", ["get_job", "cancel_job", "delete_job"])
def test_every_request_builder_validates_the_id_first(dialect: DashScopeDialect, build: str) -> None:
    with pytest.raises(InvalidJobIdError):
        getattr(dialect, build)("../../admin")


def test_registry_maps_every_conn_type_including_the_official_openai_one_and_the_old_names() -> None:
    assert {
        "dashscope": DashScopeDialect,
        "openaifinetuning": OpenAIDialect,
        "openai": OpenAIDialect,
        "azureopenaifinetuning": AzureOpenAIDialect,
        "togetherfinetuning": TogetherDialect,
        # the types' names before 0.1.0 lost the underscores: stored connections keep working
        "openai_fine_tuning": OpenAIDialect,
        "azure_openai_fine_tuning": AzureOpenAIDialect,
        "together_fine_tuning": TogetherDialect,
    } == DIALECTS_BY_CONN_TYPE


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("PENDING", JobStatus.QUEUED),
        ("QUEUING", JobStatus.QUEUED),
        ("RUNNING", JobStatus.RUNNING),
        ("SUCCEEDED", JobStatus.SUCCEEDED),
        ("FAILED", JobStatus.FAILED),
        ("CANCELED", JobStatus.CANCELLED),
        ("CANCELING", JobStatus.CANCELLING),
        ("SUSPENDED", JobStatus.PAUSED),
        ("UNKNOWN", JobStatus.UNKNOWN),
        ("DEPLOYING", JobStatus.UNKNOWN),
    ],
)
def test_dashscope_status_words(word: str, status: JobStatus) -> None:
    job = DashScopeDialect().parse_job({"output": {"job_id": "ft-1", "status": word}})
    assert (job.status, job.vendor_status) == (status, word)


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("validating_files", JobStatus.QUEUED),
        ("queued", JobStatus.QUEUED),
        ("running", JobStatus.RUNNING),
        ("paused", JobStatus.PAUSED),
        ("succeeded", JobStatus.SUCCEEDED),
        ("failed", JobStatus.FAILED),
        ("cancelled", JobStatus.CANCELLED),
        ("canceled", JobStatus.UNKNOWN),
    ],
)
def test_openai_status_words(word: str, status: JobStatus) -> None:
    job = OpenAIDialect().parse_job({"id": "ftjob-1", "status": word})
    assert (job.status, job.vendor_status) == (status, word)


def test_terminal_statuses() -> None:
    terminal = {status for status in JobStatus if status.is_terminal}
    assert terminal == {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}


def test_unknown_status_is_warned_about_once(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "_unknown_statuses", base.UnknownStatusWarnings())
    dialect = OpenAIDialect()
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert dialect.parse_job({"id": "ftjob-1", "status": "reticulating"}).status is JobStatus.UNKNOWN
    assert sum("reticulating" in record.getMessage() for record in caplog.records) == 1


def test_dashscope_create_tags_the_job_in_job_name_and_sends_the_suffix_as_finetuned_output_suffix() -> None:
    # The reference ("Create a fine-tuning job", 2026) documents job_name ("The name of the fine-tuning job") and
    # finetuned_output_suffix in the create body.
    identity = TaskIdentity("dag", "task", "run")
    spec = JobSpec(model="qwen3-14b", training_file="file-ft-1", suffix="nightly")
    body = DashScopeDialect().create_job(spec, identity).json_body
    assert body == {
        "model": "qwen3-14b",
        "training_file_ids": ["file-ft-1"],
        "job_name": identity.tag,
        "finetuned_output_suffix": "nightly",
    }
    with pytest.raises(FineTuningConfigError, match="finetuned_output_suffix"):
        DashScopeDialect().create_job(JobSpec(model="qwen3-14b", training_file="file-ft-1", suffix=" "), identity)


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"job_name": "af-1"}, "af-1"),
        ({"jobs_name": "af-1"}, "af-1"),  # the reference's field tables spell it so
        ({"job_name": "af-1", "jobs_name": "other"}, "af-1"),
        ({"job_name": None, "jobs_name": "af-1"}, "af-1"),
        ({}, None),
    ],
)
def test_dashscope_job_name_is_read_from_either_spelling(fields: dict[str, object], name: str | None) -> None:
    job = DashScopeDialect().parse_job({"output": {"job_id": "ft-1", "status": "RUNNING", **fields}})
    assert job.name == name


def test_dashscope_upload_answer_gives_the_file_stored_even_beside_refused_ones() -> None:
    # The reference's example answers an upload of several files: one stored, others refused, side by side.
    answer = {
        "data": {
            "uploaded_files": [{"file_id": "file-ft-1", "name": "train.jsonl"}],
            "failed_uploads": [{"name": "other.jsonl", "code": "BadRequest.TooMany", "message": "too many"}],
        }
    }
    assert DashScopeDialect().parse_upload(answer).id == "file-ft-1"
    refused = {"data": {"uploaded_files": [], "failed_uploads": answer["data"]["failed_uploads"]}}
    with pytest.raises(FineTuningApiError, match="too many"):
        DashScopeDialect().parse_upload(refused)


def test_dashscope_times_are_read_in_the_configured_zone() -> None:
    raw = {
        "job_id": "ft-1",
        "status": "SUCCEEDED",
        "create_time": "2024-10-29 16:53:53",
        "end_time": "2024-10-29 18:00:00",
    }
    default = DashScopeDialect().parse_job({"output": raw})
    assert default.created_at == datetime(2024, 10, 29, 8, 53, 53, tzinfo=UTC)
    utc = DashScopeDialect({"timezone": "UTC"}).parse_job({"output": raw})
    assert utc.created_at == datetime(2024, 10, 29, 16, 53, 53, tzinfo=UTC)
    offset = DashScopeDialect({"timezone": "-05:30"}).parse_job({"output": raw})
    assert offset.created_at == datetime(2024, 10, 29, 16, 53, 53, tzinfo=timezone(-timedelta(hours=5, minutes=30)))
    assert default.finished_at == datetime(2024, 10, 29, 10, 0, 0, tzinfo=UTC)


def test_dashscope_unfinished_job_has_no_finish_time_even_if_end_time_is_filled() -> None:
    job = DashScopeDialect().parse_job({"output": {"job_id": "ft-1", "status": "RUNNING", "end_time": ""}})
    assert job.finished_at is None


@pytest.mark.parametrize("zone", ["Mars/Olympus", "+8", "tomorrow"])
def test_dashscope_rejects_an_unknown_zone(zone: str) -> None:
    with pytest.raises(FineTuningConfigError, match="timezone"):
        DashScopeDialect({"timezone": zone})


def test_openai_job_fields_are_normalized() -> None:
    job = OpenAIDialect().parse_job(
        {
            "id": "ftjob-abc",
            "object": "fine_tuning.job",
            "status": "failed",
            "model": "gpt-4o-mini-2024-07-18",
            "fine_tuned_model": None,
            "created_at": 1721764800,
            "finished_at": 1721768400,
            "error": {"code": "invalid_training_file", "message": "bad line 3", "param": "training_file"},
            "trained_tokens": 1234,
            "metadata": {"team": "search"},
        }
    )
    assert job.status is JobStatus.FAILED
    assert job.is_terminal
    assert job.created_at == datetime(2024, 7, 23, 20, 0, tzinfo=UTC)
    assert job.finished_at == datetime(2024, 7, 23, 21, 0, tzinfo=UTC)
    assert job.error == "invalid_training_file: bad line 3"
    assert job.metadata == {"team": "search"}
    assert job.trained_tokens == 1234


def test_to_dict_is_json_serializable_and_leaves_the_vendor_object_out() -> None:
    job = FineTuningJob(
        id="ft-1",
        vendor="dashscope",
        status=JobStatus.RUNNING,
        vendor_status="RUNNING",
        created_at=datetime(2024, 1, 1, tzinfo=UTC),
        raw={"job_id": "ft-1"},
    )
    restored = json.loads(json.dumps(job.to_dict()))
    assert restored["status"] == "RUNNING"
    assert restored["is_terminal"] is False
    assert restored["created_at"] == "2024-01-01T00:00:00+00:00"
    assert "raw" not in restored, "the vendor's object stays out of XCom and trigger events"


def _response(status: int, body: object, **headers: str) -> ApiResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return ApiResponse(status, {name.lower().replace("_", "-"): value for name, value in headers.items()}, raw)


def test_dashscope_200_with_an_error_code_is_an_error() -> None:
    dialect = DashScopeDialect()
    request = dialect.get_job("ft-1")
    body = {"request_id": "r-1", "code": "Throttling.RateQuota", "message": "slow down"}
    with pytest.raises(FineTuningApiError) as raised:
        dialect.decode(request, _response(200, body))
    assert raised.value.vendor_code == "Throttling.RateQuota"
    assert raised.value.request_id == "r-1"
    assert raised.value.retryable


def test_404_on_a_job_is_job_not_found() -> None:
    dialect = DashScopeDialect()
    request = dialect.get_job("ft-1")
    with pytest.raises(JobNotFoundError, match="ft-1"):
        dialect.decode(request, _response(404, {"request_id": "r", "code": "NotFound", "message": "Not Found!"}))


def test_404_on_a_listing_is_not_job_not_found() -> None:
    dialect = OpenAIDialect()
    request = dialect.list_page(None, 10, {})
    with pytest.raises(FineTuningApiError) as raised:
        dialect.decode(request, _response(404, {"error": {"message": "Unknown path", "type": "invalid_request_error"}}))
    assert not isinstance(raised.value, JobNotFoundError)


@pytest.mark.parametrize(
    "body",
    [b"<html><body>502 Bad Gateway</body></html>", b'{"id": "ftjob-1", "sta', b"", b"[1, 2]", b"null"],
    ids=["html", "truncated", "empty", "array", "null"],
)
def test_a_body_that_is_not_a_json_object_is_a_typed_error(body: bytes) -> None:
    dialect = OpenAIDialect()
    with pytest.raises(FineTuningApiError) as raised:
        dialect.decode(dialect.get_job("ftjob-1"), _response(200, body))
    assert not isinstance(raised.value, json.JSONDecodeError)
    assert "not a JSON object" in str(raised.value)


def test_an_html_error_page_keeps_a_short_snippet() -> None:
    dialect = DashScopeDialect()
    page = b"<html><head><title>502 Bad Gateway</title></head><body>" + b"x" * 5000 + b"</body></html>"
    with pytest.raises(FineTuningApiError) as raised:
        dialect.decode(dialect.get_job("ft-1"), _response(502, page))
    assert raised.value.http_status == 502
    assert raised.value.retryable
    assert "502 Bad Gateway" in str(raised.value)
    assert len(str(raised.value)) < 400


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, False), (404, False), (408, True), (409, False), (429, True), (503, True)],
)
def test_which_statuses_are_retryable(status: int, retryable: bool) -> None:
    dialect = OpenAIDialect()
    with pytest.raises(FineTuningApiError) as raised:
        dialect.decode(dialect.list_page(None, 1, {}), _response(status, {"error": {"message": "x"}}))
    assert raised.value.retryable is retryable


def test_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "Thu, 01 Jan 2026 12:00:07 GMT"}, now=now) == 7.0
    assert parse_retry_after({"retry-after": "Thu, 01 Jan 2026 11:00:00 GMT"}, now=now) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_openai_has_no_job_deletion_and_says_what_to_use() -> None:
    with pytest.raises(UnsupportedOperationError, match="cancel"):
        OpenAIDialect().delete_job("ftjob-1")


def test_pagination_cursors() -> None:
    dashscope = DashScopeDialect()
    running = {"status": "RUNNING"}
    two = [{"job_id": "a", **running}, {"job_id": "b", **running}]
    page = dashscope.parse_page({"output": {"total": 5, "jobs": two}}, "2", 2)
    assert page.next_cursor == "3"
    last = dashscope.parse_page({"output": {"total": 5, "jobs": [{"job_id": "e", **running}]}}, "3", 2)
    assert last.next_cursor is None
    openai = OpenAIDialect()
    more = openai.parse_page(
        {"data": [{"id": "j1", "status": "running"}, {"id": "j2", "status": "running"}], "has_more": True}, None, 2
    )
    assert more.next_cursor == "j2"
    assert openai.parse_page({"data": [], "has_more": False}, "j2", 2).next_cursor is None


@pytest.mark.parametrize(
    ("dialect", "answer"),
    [
        (OpenAIDialect(), {"data": [], "has_more": True}),
        (DashScopeDialect(), {"output": {"total": 5, "jobs": []}}),
    ],
    ids=["openai", "dashscope"],
)
def test_an_empty_page_that_says_more_follow_is_an_error_not_the_end(dialect: Dialect, answer: object) -> None:
    with pytest.raises(MalformedAnswerError, match="holds no entry but says more follow"):
        dialect.parse_page(answer, "2", 2)


def test_list_requests_carry_paging_and_filters() -> None:
    assert DashScopeDialect().list_page("3", 25, {"model": "qwen-turbo"}) == ApiRequest(
        "list", "GET", "/fine-tunes", params=(("page_no", "3"), ("page_size", "25"), ("model", "qwen-turbo"))
    )
    assert OpenAIDialect().list_page("ftjob-9", 20, {"metadata": {"team": "a"}}).params == (
        ("limit", "20"),
        ("after", "ftjob-9"),
        ("metadata[team]", "a"),
    )


def test_official_openai_provider_extras_are_understood() -> None:
    dialect = OpenAIDialect({"openai_client_kwargs": {"organization": "org-1", "project": "proj-1"}})
    assert dialect.extra_headers() == {"OpenAI-Organization": "org-1", "OpenAI-Project": "proj-1"}


@pytest.mark.parametrize(
    ("dialect", "base_url", "link"),
    [
        (OpenAIDialect(), "https://api.openai.com/v1", "https://platform.openai.com/finetune/JOB"),
        (OpenAIDialect(), "https://llm-gateway.example.com/openai/v1", ""),
        (OpenAIDialect(), "http://127.0.0.1:8089/openai/v1", ""),
        (AzureOpenAIDialect(), "https://my-resource.openai.azure.com", "https://ai.azure.com/"),
        (AzureOpenAIDialect(), "https://my-resource.cognitiveservices.azure.com", "https://ai.azure.com/"),
        (AzureOpenAIDialect(), "https://api.openai.com/v1", ""),
        (TogetherDialect(), "https://api.together.ai/v1", "https://api.together.ai/fine-tuning/JOB"),
        (TogetherDialect(), "https://api.together.xyz/v1", "https://api.together.ai/fine-tuning/JOB"),
        (TogetherDialect(), "https://proxy.example.com/together/v1", ""),
        (
            DashScopeDialect(),
            "https://dashscope.aliyuncs.com/api/v1",
            "https://bailian.console.aliyun.com/?tab=model#/efm/model_manager",
        ),
        (
            DashScopeDialect(),
            "https://DashScope-Intl.aliyuncs.com/api/v1",
            "https://modelstudio.console.alibabacloud.com/?tab=model#/efm/model_manager",
        ),
        (DashScopeDialect(), "https://dashscope.aliyuncs.com.example.com/api/v1", ""),
    ],
    ids=lambda value: value if isinstance(value, str) else type(value).__name__,
)
def test_a_job_links_to_the_vendors_console_only_through_the_vendors_own_api(
    dialect: Dialect, base_url: str, link: str
) -> None:
    """Issue 24: OpenAI's link pointed at platform.openai.com through a gateway or the emulator. The vendor's job page
    where it has one (OpenAI, Together AI), its jobs page where it has none (DashScope's Model Studio, the Azure AI
    Foundry portal), nothing through another host."""
    assert dialect.console_url("JOB", base_url) == link

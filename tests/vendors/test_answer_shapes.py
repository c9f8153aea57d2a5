"""Wrong-shaped answers end in one typed error that says what was wrong (issue #10 §2); pure, no server."""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningConfigError, MalformedAnswerError
from airflow_provider_ft.jobs import JobStatus
from airflow_provider_ft.vendors import DashScopeDialect, OpenAIDialect
from airflow_provider_ft.vendors.base import Dialect
from airflow_provider_ft.vendors.decoding import MAX_JSON_DEPTH
from airflow_provider_ft.vendors.wire import ApiResponse

DIALECTS = [pytest.param(DashScopeDialect(), id="dashscope"), pytest.param(OpenAIDialect(), id="openai")]
NOT_A_LIST = [5, True, "jobs", {"id": "ftjob-1"}, None]


def openai_job(**fields: Any) -> dict[str, Any]:
    return {"id": "ftjob-1", "status": "running", **fields}


def dashscope_job(**fields: Any) -> dict[str, Any]:
    return {"job_id": "ft-1", "status": "RUNNING", **fields}


def as_answer(dialect: Dialect, job: dict[str, Any]) -> dict[str, Any]:
    return {"output": job} if isinstance(dialect, DashScopeDialect) else job


def job_with(dialect: Dialect, **fields: Any) -> dict[str, Any]:
    if isinstance(dialect, DashScopeDialect):
        return as_answer(dialect, dashscope_job(**fields))
    return openai_job(**fields)


def id_field(dialect: Dialect) -> str:
    return "job_id" if isinstance(dialect, DashScopeDialect) else "id"


def response(status: int, body: object, **headers: str) -> ApiResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return ApiResponse(status, {name.lower(): value for name, value in headers.items()}, raw)


# -- times: created_at decides (max_runtime, the cleanup's age), the others are informational -------------------

UNUSABLE_UNIX_TIMES = [1e20, math.nan, math.inf, -math.inf, 1_700_000_000_000, 1e17, 0, -1, 10**400, "1700000000", True]
UNUSABLE_UNIX_IDS = ["1e20", "nan", "inf", "-inf", "ms", "1e17", "zero", "negative", "huge", "string", "bool"]


@pytest.mark.parametrize("value", UNUSABLE_UNIX_TIMES, ids=UNUSABLE_UNIX_IDS)
def test_openai_unusable_created_at_is_a_typed_error_naming_the_field(value: object) -> None:
    with pytest.raises(MalformedAnswerError, match=r"'created_at' of job ftjob-1 .*not a time from 2000 to 2200"):
        OpenAIDialect().parse_job(openai_job(created_at=value))


@pytest.mark.parametrize("field", ["finished_at", "estimated_finish"])
@pytest.mark.parametrize("value", UNUSABLE_UNIX_TIMES, ids=UNUSABLE_UNIX_IDS)
def test_openai_unusable_informational_time_is_not_reported(
    field: str, value: object, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="airflow_provider_ft.vendors.readers"):
        job = OpenAIDialect().parse_job(openai_job(status="succeeded", **{field: value}))
    assert getattr(job, "finished_at" if field == "finished_at" else "estimated_finish") is None
    assert job.status is JobStatus.SUCCEEDED
    assert [record.levelno for record in caplog.records] == [logging.DEBUG]
    assert f"'{field}' of job ftjob-1" in caplog.records[0].getMessage()


def test_openai_times_in_range_are_read_as_utc() -> None:
    job = OpenAIDialect().parse_job(openai_job(created_at=946_684_800, estimated_finish=1_721_764_800.5))
    assert job.created_at == datetime(2000, 1, 1, tzinfo=UTC)
    assert job.estimated_finish == datetime(2024, 7, 23, 20, 0, 0, 500000, tzinfo=UTC)


def test_openai_absent_or_null_times_are_not_reported() -> None:
    job = OpenAIDialect().parse_job(openai_job(created_at=None, estimated_finish=None))
    assert (job.created_at, job.finished_at, job.estimated_finish) == (None, None, None)


def test_a_body_with_nan_is_not_json() -> None:
    dialect = OpenAIDialect()
    body = b'{"id": "ftjob-1", "status": "running", "created_at": NaN}'
    with pytest.raises(FineTuningApiError, match="not a JSON object"):
        dialect.decode(dialect.get_job("ftjob-1"), response(200, body))


# -- DashScope times ---------------------------------------------------------------------------------------------

UNUSABLE_DASHSCOPE_TIMES = [
    "yesterday",
    "2024-13-45 99:99:99",
    "16:53:53 2024/10/29",
    "1999-12-31 23:59:59",
    1730192033,
    ["2024-10-29 16:53:53"],
]


@pytest.mark.parametrize("value", UNUSABLE_DASHSCOPE_TIMES)
def test_dashscope_unusable_create_time_is_a_typed_error_naming_the_field(value: object) -> None:
    with pytest.raises(MalformedAnswerError, match="'create_time' of job ft-1"):
        DashScopeDialect().parse_job({"output": dashscope_job(create_time=value)})


@pytest.mark.parametrize("value", ["", "   ", None])
def test_dashscope_absent_or_empty_time_reads_as_absent(value: object) -> None:
    assert DashScopeDialect().parse_job({"output": dashscope_job(create_time=value)}).created_at is None


@pytest.mark.parametrize("value", UNUSABLE_DASHSCOPE_TIMES)
def test_dashscope_unusable_end_time_is_not_reported(value: object) -> None:
    job = DashScopeDialect().parse_job({"output": dashscope_job(status="SUCCEEDED", end_time=value)})
    assert job.finished_at is None
    assert job.status is JobStatus.SUCCEEDED


def test_dashscope_end_time_is_read_only_once_the_job_is_terminal() -> None:
    dialect = DashScopeDialect()
    assert dialect.parse_job({"output": dashscope_job(end_time="2024-10-29 17:00:00")}).finished_at is None
    finished = dialect.parse_job({"output": dashscope_job(status="SUCCEEDED", end_time="2024-10-29 17:00:00")})
    assert finished.finished_at is not None


# -- JSON that would not decode safely -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000],
    ids=["arrays", "objects"],
)
@pytest.mark.parametrize("dialect", DIALECTS)
def test_deeply_nested_json_is_a_typed_error(dialect: Dialect, body: bytes) -> None:
    with pytest.raises(FineTuningApiError, match="not a JSON object"):
        dialect.decode(dialect.list_page(None, 10, {}), response(200, body))


def nested(depth: int) -> bytes:
    """A JSON object with ``depth`` levels of objects and arrays."""
    return b'{"a": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def test_nesting_is_allowed_up_to_the_limit() -> None:
    dialect = OpenAIDialect()
    request = dialect.get_job("ftjob-1")
    assert dialect.decode(request, response(200, nested(MAX_JSON_DEPTH)))
    with pytest.raises(FineTuningApiError, match="not a JSON object"):
        dialect.decode(request, response(200, nested(MAX_JSON_DEPTH + 1)))


# -- pages -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", NOT_A_LIST, ids=repr)
def test_openai_page_data_that_is_not_a_list_is_a_typed_error(data: object) -> None:
    with pytest.raises(MalformedAnswerError, match=r"'data' is .* not an array"):
        OpenAIDialect().parse_page({"data": data, "has_more": False}, None, 10)


@pytest.mark.parametrize("jobs", NOT_A_LIST, ids=repr)
def test_dashscope_page_jobs_that_is_not_a_list_is_a_typed_error(jobs: object) -> None:
    with pytest.raises(MalformedAnswerError, match=r"'jobs' is .* not an array"):
        DashScopeDialect().parse_page({"output": {"jobs": jobs, "total": 1}}, None, 10)


@pytest.mark.parametrize("entry", [1, "ftjob-2", None, [], True], ids=repr)
def test_openai_page_entry_that_is_not_an_object_is_a_typed_error(entry: object) -> None:
    with pytest.raises(MalformedAnswerError, match="entry 1 of the page's 'data'"):
        OpenAIDialect().parse_page({"data": [openai_job(), entry], "has_more": True}, None, 10)


def test_a_dashscope_page_full_of_non_objects_is_a_typed_error_not_an_endless_listing() -> None:
    with pytest.raises(MalformedAnswerError, match="entry 0 of the page's 'jobs'"):
        DashScopeDialect().parse_page({"output": {"total": 1000, "jobs": [1, 2, 3]}}, None, 3)


@pytest.mark.parametrize("has_more", ["false", "true", 0, 1], ids=repr)
def test_openai_has_more_must_be_a_boolean(has_more: object) -> None:
    with pytest.raises(MalformedAnswerError, match=r"'has_more' is .* not true or false"):
        OpenAIDialect().parse_page({"data": [openai_job()], "has_more": has_more}, None, 1)


@pytest.mark.parametrize("page", [{}, {"has_more": None}], ids=["absent", "null"])
def test_a_job_page_without_has_more_goes_on_while_it_brings_jobs(page: dict[str, object]) -> None:
    """Azure's 2023-10-01-preview job list sends no ``has_more``: read as openai-python reads it (more may follow
    a page with entries; an empty page ends the listing), never as the end of a page that brought jobs."""
    dialect = OpenAIDialect()
    assert dialect.parse_page({**page, "data": [openai_job(id="ftjob-7")]}, None, 20).next_cursor == "ftjob-7"
    assert dialect.parse_page({**page, "data": []}, "ftjob-7", 20).next_cursor is None
    events = {**page, "data": [{"id": "ftevent-1", "created_at": 1_700_000_000, "message": "m"}]}
    assert dialect.parse_events(events, None).next_cursor == "ftevent-1"
    assert dialect.parse_events({**page, "data": []}, "ftevent-1").next_cursor is None


def test_a_files_page_without_has_more_holds_every_file() -> None:
    """Azure's ``FileList`` (and OpenAI's file list before it paged) has no ``has_more``: the answer is the list."""
    page = OpenAIDialect().parse_files_page({"data": [{"id": "file-1", "object": "file"}]}, None, 1)
    assert ([file.id for file in page.files], page.next_cursor) == (["file-1"], None)


@pytest.mark.parametrize(
    "answer",
    [
        # openai-openapi createUpload's example: an Uploads API object, whose id would pass as a file id
        {"id": "upload_abc123", "object": "upload", "bytes": 2147483648, "filename": "training_examples.jsonl"},
        {"id": "file-abc123", "object": "fine_tuning.job", "status": "queued"},
        # openai-openapi deleteFile's example
        {"id": "file-abc123", "object": "file", "deleted": True},
    ],
    ids=["upload-object", "job-object", "deleted-file"],
)
def test_an_upload_answer_that_is_not_a_usable_file_is_refused(answer: dict[str, object]) -> None:
    with pytest.raises(MalformedAnswerError, match="uploaded file"):
        OpenAIDialect().parse_upload(answer)


def test_a_files_page_entry_that_is_another_object_is_refused() -> None:
    with pytest.raises(MalformedAnswerError, match=r"entry 0 of the files page is .*not a file"):
        OpenAIDialect().parse_files_page({"data": [{"id": "upload_1", "object": "upload"}], "has_more": False}, None, 9)


@pytest.mark.parametrize("total", [-1, True, 1.5, "5", 10**10, 10**400], ids=repr)
def test_dashscope_total_must_be_a_sane_whole_number(total: object) -> None:
    with pytest.raises(MalformedAnswerError, match="'total' is"):
        DashScopeDialect().parse_page({"output": {"jobs": [dashscope_job()], "total": total}}, None, 10)


def test_dashscope_page_without_a_total_goes_on_while_pages_are_full() -> None:
    dialect = DashScopeDialect()
    full = dialect.parse_page({"output": {"jobs": [dashscope_job(), dashscope_job(job_id="ft-2")]}}, "4", 2)
    assert full.next_cursor == "5"
    assert dialect.parse_page({"output": {"jobs": [dashscope_job()], "total": None}}, "5", 2).next_cursor is None


@pytest.mark.parametrize("cursor", ["9" * 5000, "0", "-1", "two", "1.5", "\u0661"], ids=lambda c: c[:8])
def test_dashscope_cursor_that_is_not_a_page_number_is_refused_clearly(cursor: str) -> None:
    dialect = DashScopeDialect()
    with pytest.raises(FineTuningConfigError, match="page cursor"):
        dialect.parse_page({"output": {"jobs": [], "total": 0}}, cursor, 10)
    with pytest.raises(FineTuningConfigError, match="page cursor"):
        dialect.list_page(cursor, 10, {})


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_page_entry_with_an_unsafe_id_is_a_typed_error(dialect: Dialect) -> None:
    if isinstance(dialect, DashScopeDialect):
        page: dict[str, Any] = {"output": {"jobs": [dashscope_job(job_id="../admin")], "total": 1}}
    else:
        page = {"data": [openai_job(id="../admin")], "has_more": False}
    with pytest.raises(MalformedAnswerError, match="not a usable job id"):
        dialect.parse_page(page, None, 10)


# -- what a job object must carry -------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "answer",
    [{}, {"output": None}, {"output": {}}, {"output": {"jobs": [], "total": 0}}, {"data": [], "has_more": False}],
    ids=["empty", "output-null", "output-empty", "dashscope-page", "openai-page"],
)
def test_an_answer_without_a_job_is_a_typed_error_not_a_job_without_id(dialect: Dialect, answer: object) -> None:
    with pytest.raises(MalformedAnswerError):
        dialect.parse_job(answer)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("answer", [[], 5, "ft-1", None], ids=repr)
def test_an_answer_that_is_not_an_object_is_a_typed_error(dialect: Dialect, answer: object) -> None:
    with pytest.raises(MalformedAnswerError, match="not a JSON object"):
        dialect.parse_job(answer)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("bad_id", [5, "", None, "../x", "a/b", "x\ny", "x" * 200, True], ids=repr)
def test_the_job_id_must_be_a_valid_non_empty_string(dialect: Dialect, bad_id: object) -> None:
    with pytest.raises(MalformedAnswerError, match=f"'{id_field(dialect)}'") as raised:
        dialect.parse_job(job_with(dialect, **{id_field(dialect): bad_id}))
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("status", [None, 5, "", "   ", ["RUNNING"]], ids=repr)
def test_the_status_must_be_a_word(dialect: Dialect, status: object) -> None:
    with pytest.raises(MalformedAnswerError, match=r"'status' of job .* not a status word"):
        dialect.parse_job(job_with(dialect, status=status))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_missing_id_or_status_is_named(dialect: Dialect) -> None:
    answer = job_with(dialect)
    job = answer.get("output", answer)
    del job["status"]
    with pytest.raises(MalformedAnswerError, match="has no 'status'"):
        dialect.parse_job(answer)
    del job[id_field(dialect)]
    with pytest.raises(MalformedAnswerError, match=f"has no '{id_field(dialect)}'"):
        dialect.parse_job(answer)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_answer_must_be_the_job_asked_for(dialect: Dialect) -> None:
    answer = job_with(dialect)
    asked = dialect.parse_job(answer).id
    assert dialect.parse_job(answer, job_id=asked).id == asked
    with pytest.raises(MalformedAnswerError, match=f"asked for job other-1, the answer is job {asked}"):
        dialect.parse_job(answer, job_id="other-1")


def test_openai_cancel_answer_must_be_the_job_cancelled() -> None:
    with pytest.raises(MalformedAnswerError, match="asked for job ftjob-2"):
        OpenAIDialect().parse_cancel(openai_job(status="cancelled"), job_id="ftjob-2")
    assert OpenAIDialect().parse_cancel(openai_job(status="cancelled"), job_id="ftjob-1") is not None


def test_an_unknown_status_word_stays_unknown() -> None:
    assert DashScopeDialect().parse_job({"output": dashscope_job(status="WARMING_UP")}).status is JobStatus.UNKNOWN


# -- HTTP statuses outside 2xx ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_redirect_with_a_job_body_is_an_error_naming_the_location(dialect: Dialect) -> None:
    body = job_with(dialect, status="SUCCEEDED" if isinstance(dialect, DashScopeDialect) else "succeeded")
    answer = response(301, body, Location="https://elsewhere.example/v1/jobs/ftjob-1")
    with pytest.raises(FineTuningApiError, match="redirects are not followed") as raised:
        dialect.decode(dialect.get_job("ftjob-1"), answer)
    assert "https://elsewhere.example/v1/jobs/ftjob-1" in str(raised.value)
    assert raised.value.http_status == 301
    assert not raised.value.retryable


def test_a_redirect_location_is_escaped_and_cut_short() -> None:
    dialect = OpenAIDialect()
    answer = response(302, b"", Location="https://x.example/\r\nINFO forged line " + "z" * 5000)
    with pytest.raises(FineTuningApiError) as raised:
        dialect.decode(dialect.get_job("ftjob-1"), answer)
    message = str(raised.value)
    assert all(char.isprintable() for char in message)
    assert "\\r\\nINFO forged line" in message
    assert len(message) < 600


@pytest.mark.parametrize("status", [100, 199, 300, 302, 307, 399, 0, -5])
def test_statuses_that_are_not_success_nor_error_are_errors(status: int) -> None:
    dialect = DashScopeDialect()
    with pytest.raises(FineTuningApiError, match=f"HTTP {status}"):
        dialect.decode(dialect.get_job("ft-1"), response(status, {"output": dashscope_job()}))


def test_any_2xx_with_a_job_body_is_a_success() -> None:
    dialect = DashScopeDialect()
    for status in (200, 201, 299):
        assert dialect.decode(dialect.get_job("ft-1"), response(status, {"output": dashscope_job()}))


def test_4xx_and_5xx_keep_their_mapping() -> None:
    dialect = OpenAIDialect()
    with pytest.raises(FineTuningApiError) as raised:
        dialect.decode(dialect.get_job("ftjob-1"), response(503, {"error": {"message": "busy"}}))
    assert (raised.value.http_status, raised.value.retryable) == (503, True)


# -- DashScope cancel and delete envelopes ----------------------------------------------------------------------

NOT_SUCCESS = [
    {},
    {"output": None},
    {"output": {}},
    {"output": {"status": "failed"}},
    {"output": "success"},
    {"output": {"status": True}},
    [],
    "success",
]


@pytest.mark.parametrize("answer", NOT_SUCCESS, ids=repr)
def test_dashscope_delete_needs_the_documented_success_envelope(answer: object) -> None:
    with pytest.raises(MalformedAnswerError, match="delete answer"):
        DashScopeDialect().parse_delete(answer)


@pytest.mark.parametrize("answer", NOT_SUCCESS, ids=repr)
def test_dashscope_cancel_needs_the_documented_success_envelope(answer: object) -> None:
    with pytest.raises(MalformedAnswerError, match="cancel answer"):
        DashScopeDialect().parse_cancel(answer)


def test_dashscope_success_envelopes_are_accepted() -> None:
    success = {"request_id": "7d7e1469-df77-4163-83ce-54425df744ed", "output": {"status": "success"}}
    DashScopeDialect().parse_delete(success)
    assert DashScopeDialect().parse_cancel(success) is None


def test_the_base_rule_accepts_any_delete_answer() -> None:
    assert OpenAIDialect().parse_delete({}) is None


# -- lenient optional fields -------------------------------------------------------------------------------------


def test_openai_optional_fields_of_the_wrong_type_read_as_absent() -> None:
    job = OpenAIDialect().parse_job(
        openai_job(model=5, fine_tuned_model=[], error="broke", trained_tokens="12", user_provided_suffix={})
    )
    assert (job.model, job.fine_tuned_model, job.error, job.trained_tokens, job.name) == (None,) * 5


@pytest.mark.parametrize("tokens", [-1, 1.5, True, 2**64], ids=repr)
def test_token_counts_that_are_no_count_read_as_absent(tokens: object) -> None:
    assert OpenAIDialect().parse_job(openai_job(trained_tokens=tokens)).trained_tokens is None
    assert DashScopeDialect().parse_job({"output": dashscope_job(usage=tokens)}).trained_tokens is None


def test_openai_metadata_values_that_are_not_strings_are_kept_as_json_text() -> None:
    metadata = {"team": "search", "run": 3, "nightly": True, "owner": None, "tags": ["a", "b"]}
    job = OpenAIDialect().parse_job(openai_job(metadata=metadata))
    assert job.metadata == {"team": "search", "run": "3", "nightly": "true", "owner": "null", "tags": '["a", "b"]'}
    assert OpenAIDialect().parse_job(openai_job(metadata=None)).metadata == {}


@pytest.mark.parametrize("metadata", [["team"], "airflow_ti=af-1", 5])
def test_openai_metadata_that_is_no_object_is_a_typed_error(metadata: object) -> None:
    # It carries the create's identity: exactly-once must not read a job as "not ours" from a garbled one.
    with pytest.raises(MalformedAnswerError, match="'metadata' of job ftjob-1"):
        OpenAIDialect().parse_job(openai_job(metadata=metadata))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_to_dict_of_a_decoded_odd_answer_is_strict_json(dialect: Dialect) -> None:
    answer = job_with(dialect, metadata={"n": 1.5}, hyperparameters={"lr": [1e308, -0.0]}, model="\u2028\x00")
    decoded = dialect.decode(dialect.get_job("ft-1"), response(200, answer))
    json.dumps(dialect.parse_job(decoded).to_dict(), allow_nan=False)


def test_a_malformed_answer_error_says_it_came_in_a_success_answer() -> None:
    with pytest.raises(MalformedAnswerError) as raised:
        OpenAIDialect().parse_job({})
    assert str(raised.value).endswith("(in a success answer)")
    assert "no HTTP answer" not in str(raised.value)
    assert not raised.value.retryable

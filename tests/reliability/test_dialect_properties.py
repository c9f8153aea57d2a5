"""Wire shapes: whatever a server sends, a dialect returns a well-formed result or raises ``FineTuningApiError``.

For each dialect and each entry point that reads an answer (``decode``, ``parse_job``, ``parse_page``,
``parse_cancel``, ``parse_delete``, and the lifecycle's ``parse_upload`` and ``parse_files_page``), hypothesis
feeds arbitrary JSON values (and, for ``decode``, arbitrary statuses, headers and bytes), plus well-formed answers
with fields replaced by arbitrary JSON or removed. Anything but a well-formed result or a ``FineTuningApiError``
whose text prints on one line fails the property. Pure: no server.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_ft._text import ELLIPSIS, printable
from airflow_provider_ft.exceptions import FineTuningApiError
from airflow_provider_ft.jobs import FineTuningJob, JobStatus
from airflow_provider_ft.vendors import AzureOpenAIDialect, DashScopeDialect, OpenAIDialect, TogetherDialect, base
from airflow_provider_ft.vendors.base import Dialect, UnknownStatusWarnings
from airflow_provider_ft.vendors.ids import validate_job_id
from airflow_provider_ft.vendors.readers import EARLIEST_TIME, LATEST_TIME
from airflow_provider_ft.vendors.wire import ApiRequest, ApiResponse, FilePage, JobPage, RemoteFile
from tests.reliability.conftest import ExampleCounter

PROPERTY = settings(
    max_examples=200,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
DIALECTS: dict[str, Callable[[], Dialect]] = {
    "dashscope": DashScopeDialect,
    "openai": OpenAIDialect,
    "azure": AzureOpenAIDialect,
    "together": TogetherDialect,
}
PAGE_SIZE = 3

VALID_JOBS: dict[str, dict[str, Any]] = {
    "dashscope": {
        "job_id": "ft-202410291653-a1b2",
        "job_name": "nightly",
        "status": "SUCCEEDED",
        "model": "qwen-turbo",
        "base_model": "qwen-turbo",
        "finetuned_output": "qwen-turbo-ft-1",
        "create_time": "2024-10-29 16:53:53",
        "end_time": "2024-10-29 18:00:00",
        "usage": 1234,
        "code": "",
        "message": "",
    },
    "openai": {
        "id": "ftjob-AF1WoRqd3aJAHsqc9NY7iL8F",
        "object": "fine_tuning.job",
        "status": "running",
        "model": "gpt-4o-mini-2024-07-18",
        "fine_tuned_model": None,
        "created_at": 1721764800,
        "finished_at": None,
        "estimated_finish": 1721768400,
        "error": None,
        "trained_tokens": 1234,
        "user_provided_suffix": "nightly",
        "metadata": {"team": "search"},
    },
    # Microsoft's FineTuningJob: no metadata, the suffix as Azure names it.
    "azure": {
        "id": "ftjob-AF1WoRqd3aJAHsqc9NY7iL8F",
        "object": "fine_tuning.job",
        "status": "running",
        "model": "gpt-4o-mini-2024-07-18",
        "training_file": "file-AF1WoRqd3aJAHsqc9NY7iL8F",
        "fine_tuned_model": None,
        "created_at": 1721764800,
        "finished_at": None,
        "estimated_finish": 1721768400,
        "error": None,
        "trained_tokens": 1234,
        "suffix": "af-0123456789abcdef0123456789abc",
        "seed": 7,
    },
    "together": {
        "id": "ft-3b883474-f39c-40d9-9d5a-7f97ba9eeb9f",
        "status": "error",
        "model": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
        "model_output_name": "user/Meta-Llama-3.1-8B-Instruct-Reference-nightly-1a2b",
        "suffix": "nightly",
        "created_at": "2024-07-23T20:00:00.000Z",
        "updated_at": "2024-07-23T21:00:00.000Z",
        "token_count": 1234,
        "events": [{"object": "fine-tune-event", "type": "job_error", "level": "error", "message": "bad data"}],
    },
}
# Values that sit on the edges the dialects check (times, ids, counts, envelopes), mixed in with arbitrary JSON.
EDGES = st.sampled_from(
    [
        0,
        -1,
        946_684_799,
        946_684_800,
        7_258_118_399,
        7_258_118_400,
        1_700_000_000_000,
        1e20,
        math.nan,
        math.inf,
        2**63,
        "",
        " ",
        "1999-12-31 23:59:59",
        "2199-12-31 23:59:59",
        "2024-10-29T16:53:53+08:00",
        "ft-1",
        "../x",
        "a\nb",
        "success",
        "RUNNING",
        "succeeded",
        True,
        False,
        None,
    ]
)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | EDGES
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@pytest.fixture(autouse=True)
def own_unknown_status_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Arbitrary status words fill the warned-about set; keep them from silencing other tests' warnings."""
    monkeypatch.setattr(base, "_unknown_statuses", UnknownStatusWarnings())


def cases(row: str) -> list[Any]:
    return [
        pytest.param(
            vendor, id=vendor, marks=pytest.mark.reliability(area="wire shapes", row=row, column=vendor, vendor=vendor)
        )
        for vendor in DIALECTS
    ]


@st.composite
def damaged(draw: st.DrawFn, valid: dict[str, Any]) -> dict[str, Any]:
    """``valid`` as it is (one time in three), or with some fields replaced by arbitrary JSON, removed, added."""
    if draw(st.integers(0, 2)) == 0:
        return valid
    fields = sorted(valid)
    replaced = draw(st.dictionaries(st.sampled_from(fields) | st.text(max_size=8), JSON_VALUES, max_size=4))
    removed = draw(st.sets(st.sampled_from(fields), max_size=3))
    return {key: value for key, value in {**valid, **replaced}.items() if key not in removed}


def job_shaped(vendor: str) -> st.SearchStrategy[dict[str, Any]]:
    return damaged(VALID_JOBS[vendor])


def job_answers(vendor: str) -> st.SearchStrategy[Any]:
    """A job answer as the vendor sends it, damaged, or any JSON value."""
    job = job_shaped(vendor)
    if vendor == "dashscope":
        shaped = job.flatmap(lambda output: damaged({"request_id": "r-1", "output": output}))
    else:
        shaped = job
    return shaped | JSON_VALUES


def page_answers(vendor: str) -> st.SearchStrategy[Any]:
    entries = st.lists(job_shaped(vendor) | JSON_VALUES, max_size=PAGE_SIZE + 1)
    if vendor == "dashscope":
        output = entries.flatmap(lambda jobs: damaged({"page_no": 1, "page_size": PAGE_SIZE, "total": 9, "jobs": jobs}))
        shaped = output.flatmap(lambda out: damaged({"request_id": "r-1", "output": out}))
    elif vendor == "together":
        shaped = entries.flatmap(lambda jobs: damaged({"data": jobs}))
    else:
        shaped = entries.flatmap(lambda jobs: damaged({"object": "list", "data": jobs, "has_more": True}))
    return shaped | JSON_VALUES


def envelope_answers(vendor: str) -> st.SearchStrategy[Any]:
    """Answers to cancel and delete: the DashScope success envelope damaged, OpenAI's job answers, any JSON."""
    if vendor == "dashscope":
        output = damaged({"status": "success"})
        return output.flatmap(lambda out: damaged({"request_id": "r-1", "output": out})) | JSON_VALUES
    if vendor == "together":  # a cancel answers the job, a delete {"message": ...}
        return job_answers(vendor) | damaged({"message": "Fine-tune job deleted"})
    return job_answers(vendor)


def requests_of(dialect: Dialect) -> st.SearchStrategy[ApiRequest]:
    built = [dialect.get_job("ft-1"), dialect.list_page(None, PAGE_SIZE, {}), dialect.cancel_job("ft-1")]
    if dialect.supports_delete:
        built.append(dialect.delete_job("ft-1"))
    return st.sampled_from(built)


def bodies(vendor: str) -> st.SearchStrategy[bytes]:
    answers = job_answers(vendor) | page_answers(vendor) | envelope_answers(vendor)
    as_json = answers.map(lambda value: json.dumps(value).encode())
    return as_json | as_json.flatmap(lambda body: st.integers(0, len(body)).map(lambda cut: body[:cut])) | st.binary()


HEADERS = st.dictionaries(
    st.sampled_from(["location", "retry-after", "retry-after-ms", "x-request-id", "content-type"])
    | st.text(max_size=8),
    st.text(max_size=40) | st.sampled_from(["1", "nan", "1e400", "-5", "Thu, 01 Jan 2026 12:00:07 GMT", "0x10"]),
    max_size=4,
)
STATUSES = st.sampled_from([200, 201, 204, 299, 301, 302, 400, 404, 409, 429, 500, 503]) | st.integers(-5, 1000)


# -- what a well-formed result is -------------------------------------------------------------------------------


def assert_one_printable_line(text: str) -> None:
    assert all(char.isprintable() for char in text), f"not printable on one line: {text!r:.300}"


def well_formed_error(error: FineTuningApiError) -> None:
    assert_one_printable_line(str(error))


def assert_well_formed_time(moment: datetime | None) -> None:
    if moment is not None:
        assert moment.tzinfo is not None
        assert EARLIEST_TIME.year - 1 <= moment.astimezone(EARLIEST_TIME.tzinfo).year <= LATEST_TIME.year


def assert_well_formed_job(job: object, vendor: str) -> None:
    assert isinstance(job, FineTuningJob)
    assert validate_job_id(job.id) == job.id
    assert job.vendor == vendor
    assert isinstance(job.status, JobStatus)
    assert isinstance(job.vendor_status, str)
    assert job.vendor_status.strip()
    for moment in (job.created_at, job.finished_at, job.estimated_finish):
        assert_well_formed_time(moment)
    assert job.trained_tokens is None or job.trained_tokens >= 0
    assert all(isinstance(key, str) and isinstance(value, str) for key, value in job.metadata.items())
    json.dumps(job.to_dict())
    assert_one_printable_line(job.describe_progress())


def assert_well_formed_page(page: object, vendor: str) -> None:
    assert isinstance(page, JobPage)
    for job in page.jobs:
        assert_well_formed_job(job, vendor)
    if page.next_cursor is not None:
        assert page.jobs, "a page without jobs never promises another"
        if vendor != "dashscope":
            assert page.next_cursor == page.jobs[-1].id
        else:
            assert page.next_cursor.isdigit()


def result_or_api_error(call: Callable[[], Any]) -> Any:
    """What ``call`` returns, or the ``FineTuningApiError`` it raised (checked); any other exception fails."""
    try:
        return call()
    except FineTuningApiError as error:
        well_formed_error(error)
        return error


# -- the properties ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", cases("decode"))
@PROPERTY
@given(data=st.data(), status=STATUSES, headers=HEADERS)
def test_decode_gives_a_json_object_of_a_2xx_or_an_api_error(
    examples: ExampleCounter, vendor: str, data: st.DataObject, status: int, headers: dict[str, str]
) -> None:
    dialect = DIALECTS[vendor]()
    request = data.draw(requests_of(dialect), label="request")
    body = data.draw(bodies(vendor), label="body")
    outcome = result_or_api_error(lambda: dialect.decode(request, ApiResponse(status, headers, body)))
    if not isinstance(outcome, FineTuningApiError):
        assert isinstance(outcome, dict)
        assert 200 <= status < 300
        json.dumps(outcome, allow_nan=False)
    examples()


@pytest.mark.parametrize("vendor", cases("parse_job"))
@PROPERTY
@given(data=st.data(), expect_id=st.booleans())
def test_parse_job_gives_a_well_formed_job_or_an_api_error(
    examples: ExampleCounter, vendor: str, data: st.DataObject, expect_id: bool
) -> None:
    dialect = DIALECTS[vendor]()
    payload = data.draw(job_answers(vendor), label="payload")
    job_id = VALID_JOBS[vendor]["job_id" if vendor == "dashscope" else "id"] if expect_id else None
    outcome = result_or_api_error(lambda: dialect.parse_job(payload, job_id=job_id))
    if not isinstance(outcome, FineTuningApiError):
        assert_well_formed_job(outcome, vendor)
        assert job_id is None or outcome.id == job_id
    examples()


@pytest.mark.parametrize("vendor", cases("parse_page"))
@PROPERTY
@given(data=st.data(), page_no=st.integers(1, 5))
def test_parse_page_gives_well_formed_jobs_and_cursor_or_an_api_error(
    examples: ExampleCounter, vendor: str, data: st.DataObject, page_no: int
) -> None:
    dialect = DIALECTS[vendor]()
    payload = data.draw(page_answers(vendor), label="payload")
    cursor = (str(page_no) if page_no > 1 else None) if vendor == "dashscope" else None
    outcome = result_or_api_error(lambda: dialect.parse_page(payload, cursor, PAGE_SIZE))
    if not isinstance(outcome, FineTuningApiError):
        assert_well_formed_page(outcome, vendor)
    examples()


@pytest.mark.parametrize("vendor", cases("parse_cancel"))
@PROPERTY
@given(data=st.data())
def test_parse_cancel_gives_none_or_a_well_formed_job_or_an_api_error(
    examples: ExampleCounter, vendor: str, data: st.DataObject
) -> None:
    dialect = DIALECTS[vendor]()
    payload = data.draw(envelope_answers(vendor), label="payload")
    outcome = result_or_api_error(lambda: dialect.parse_cancel(payload))
    if outcome is not None and not isinstance(outcome, FineTuningApiError):
        assert_well_formed_job(outcome, vendor)
    examples()


@pytest.mark.parametrize("vendor", cases("parse_delete"))
@PROPERTY
@given(data=st.data())
def test_parse_delete_accepts_or_raises_an_api_error(
    examples: ExampleCounter, vendor: str, data: st.DataObject
) -> None:
    dialect = DIALECTS[vendor]()
    payload = data.draw(envelope_answers(vendor), label="payload")
    outcome = result_or_api_error(lambda: dialect.parse_delete(payload))
    assert outcome is None or isinstance(outcome, FineTuningApiError)
    examples()


TEXTS = st.text() | st.binary().map(lambda raw: raw.decode("utf-8", errors="surrogateescape")) | JSON_VALUES


@pytest.mark.reliability(area="wire shapes", row="printable()", column="text")
@PROPERTY
@given(text=TEXTS, limit=st.none() | st.integers(0, 40))
def test_printable_output_never_holds_a_control_character(
    examples: ExampleCounter, text: object, limit: int | None
) -> None:
    shown = printable(text, limit)
    assert_one_printable_line(shown)
    if limit is not None:
        assert len(shown) <= limit + len(ELLIPSIS)
    source = text if isinstance(text, str) else str(text)
    if all(char.isprintable() for char in source) and (limit is None or len(source) <= limit):
        assert shown == source
    examples()


# -- the lifecycle answers: an upload's, a files page's ----------------------------------------------------------------

VALID_FILES: dict[str, dict[str, Any]] = {
    "dashscope": {"file_id": "file-ft-0123456789abcdef", "name": "train.jsonl", "size": 93, "description": "sha256:00"},
    "openai": {
        "object": "file",
        "id": "file-AF1WoRqd3aJAHsqc9NY7iL8F",
        "bytes": 93,
        "created_at": 1721764800,
        "filename": "train.jsonl",
        "purpose": "fine-tune",
        "status": "processed",
    },
    "azure": {
        "object": "file",
        "id": "file-AF1WoRqd3aJAHsqc9NY7iL8F",
        "bytes": 93,
        "created_at": 1721764800,
        "filename": "train.jsonl",
        "purpose": "fine-tune",
        "status": "processed",
    },
    "together": {
        "id": "file-3b883474-f39c-40d9-9d5a-7f97ba9eeb9f",
        "object": "file",
        "created_at": 1721764800,
        "filename": "train.jsonl",
        "bytes": 93,
        "purpose": "fine-tune",
        "FileType": "jsonl",
        "Processed": True,
    },
}


#: The lifecycle answers are smaller than a job: fewer examples cover them (and keep the suite quick).
LIFECYCLE_PROPERTY = settings(PROPERTY, max_examples=100)


def file_shaped(vendor: str) -> st.SearchStrategy[dict[str, Any]]:
    return damaged(VALID_FILES[vendor])


def upload_answers(vendor: str) -> st.SearchStrategy[Any]:
    if vendor != "dashscope":
        return file_shaped(vendor) | JSON_VALUES
    uploaded = st.lists(file_shaped(vendor) | JSON_VALUES, max_size=2)
    failed = st.lists(
        damaged({"name": "x.jsonl", "code": "InvalidFileFormat", "message": "bad"}) | JSON_VALUES, max_size=2
    )
    data = st.builds(lambda up, down: {"uploaded_files": up, "failed_uploads": down}, uploaded, failed)
    return data.flatmap(damaged).flatmap(lambda inner: damaged({"request_id": "r-1", "data": inner})) | JSON_VALUES


def files_page_answers(vendor: str) -> st.SearchStrategy[Any]:
    entries = st.lists(file_shaped(vendor) | JSON_VALUES, max_size=PAGE_SIZE + 1)
    if vendor == "dashscope":
        data = entries.flatmap(
            lambda files: damaged({"page_no": 1, "page_size": PAGE_SIZE, "total": 9, "files": files})
        )
        return data.flatmap(lambda inner: damaged({"request_id": "r-1", "data": inner})) | JSON_VALUES
    if vendor == "together":
        return entries.flatmap(lambda files: damaged({"data": files})) | JSON_VALUES
    return entries.flatmap(lambda files: damaged({"object": "list", "data": files, "has_more": True})) | JSON_VALUES


def assert_well_formed_file(remote: object) -> None:
    assert isinstance(remote, RemoteFile)
    assert validate_job_id(remote.id) == remote.id, "a file id is safe in a URL"
    assert remote.size is None or remote.size >= 0
    for text in (remote.filename, remote.description, remote.status):
        assert text is None or isinstance(text, str)


@pytest.mark.parametrize("vendor", cases("parse_upload"))
@LIFECYCLE_PROPERTY
@given(data=st.data())
def test_parse_upload_gives_one_well_formed_file_or_an_api_error(
    examples: ExampleCounter, vendor: str, data: st.DataObject
) -> None:
    dialect = DIALECTS[vendor]()
    payload = data.draw(upload_answers(vendor), label="payload")
    outcome = result_or_api_error(lambda: dialect.parse_upload(payload))
    if not isinstance(outcome, FineTuningApiError):
        assert_well_formed_file(outcome)
    examples()


@pytest.mark.parametrize("vendor", cases("parse_files_page"))
@LIFECYCLE_PROPERTY
@given(data=st.data(), page_no=st.integers(1, 5))
def test_parse_files_page_gives_well_formed_files_and_cursor_or_an_api_error(
    examples: ExampleCounter, vendor: str, data: st.DataObject, page_no: int
) -> None:
    dialect = DIALECTS[vendor]()
    payload = data.draw(files_page_answers(vendor), label="payload")
    cursor = (str(page_no) if page_no > 1 else None) if vendor == "dashscope" else None
    outcome = result_or_api_error(lambda: dialect.parse_files_page(payload, cursor, PAGE_SIZE))
    if not isinstance(outcome, FineTuningApiError):
        assert isinstance(outcome, FilePage)
        for remote in outcome.files:
            assert_well_formed_file(remote)
        if outcome.next_cursor is not None:
            assert outcome.files, "a page without files never promises another"
            expected = outcome.files[-1].id if vendor != "dashscope" else str(page_no + 1)
            assert outcome.next_cursor == expected
    examples()

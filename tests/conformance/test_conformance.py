"""The vendors' own answers, fed to their dialects: every one accepted and read right.

Each file under ``tests/conformance/<vendor>/`` is one answer a vendor documents (an OpenAPI example, an SDK's
recorded fixture, a reference page's sample), with its source and, where the published text had to be repaired or
completed, a note saying how. ``README.md`` lists them per vendor and says where no material exists.

A file is a JSON object:

- ``source``: where the answer was published (repository, path and commit, or a page's URL and date read);
- ``note``: optional, what was repaired or completed, or what the example shows;
- ``dialect``: the connection extras the dialect is built with (optional; Azure's ``api_version``);
- ``kind``: what the answer is: ``job``, ``cancel``, ``pause``, ``resume``, ``page``, ``events``, ``files``,
  ``upload``, ``delete``, ``error``, or ``statuses`` (the words of one version of a vendor's status enum);
- ``answer``: the body, as the vendor documents it (for ``error``: with ``http_status`` and optionally
  ``operation``, the request it answers: ``get`` by default, or ``create``, ``list``, ``cancel``, ...; for
  ``delete``: ``null`` with ``http_status`` where the vendor answers without a body, which then goes through the
  dialect's ``decode``);
- ``cursor``: the cursor the page was asked with (optional, ``null``);
- ``limit``: for ``events``, the entries the documented request asked for (optional; then ``expect.request`` holds
  the query parameters the dialect sends for ``cursor`` and ``limit``);
- ``expect``: what the dialect must read, field by field (see ``check_*`` below).

Every job read must have a known status (not UNKNOWN) and every event list is oldest first by the entries' own times.
Every answer but an error body (or one documented with a status of its own) first goes through the dialect's
``decode`` as the HTTP 200 answer it documents, so a success is never mistaken for an error (DashScope's success
bodies may carry ``"code": null`` or ``"code": 0``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ft.exceptions import FineTuningApiError
from airflow_provider_ft.jobs import FineTuningJob, JobEvent, JobStatus
from airflow_provider_ft.vendors import DIALECTS_BY_CONN_TYPE
from airflow_provider_ft.vendors.base import Dialect
from airflow_provider_ft.vendors.wire import ApiRequest, ApiResponse

CORPUS = Path(__file__).parent
KINDS = ("job", "cancel", "pause", "resume", "page", "events", "files", "upload", "delete", "error", "statuses")
PAGE_SIZE = 100


@dataclass(frozen=True)
class Documented:
    """One answer a vendor documents, as its corpus file gives it."""

    vendor: str
    path: Path
    spec: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.spec["kind"])

    @property
    def answer(self) -> Any:
        return self.spec["answer"]

    @property
    def expect(self) -> Mapping[str, Any]:
        return self.spec.get("expect", {})

    def dialect(self) -> Dialect:
        by_name = {dialect.name: dialect for dialect in DIALECTS_BY_CONN_TYPE.values()}
        return by_name[self.vendor](self.spec.get("dialect"))


def corpus() -> Iterator[Documented]:
    for path in sorted(CORPUS.glob("*/*.json")):
        yield Documented(path.parent.name, path, json.loads(path.read_text(encoding="utf-8")))


DOCUMENTED = list(corpus())


def job_fields(job: FineTuningJob, expect: Mapping[str, Any]) -> None:
    """Every field ``expect`` names is read as given (times as ISO 8601 text), and the status is known."""
    assert job.status is not JobStatus.UNKNOWN, f"status word {job.vendor_status!r} is not known"
    read = job.to_dict()
    for field, value in expect.items():
        assert read[field] == value, f"{field}: read {read[field]!r}, documented {value!r}"


def oldest_first(events: list[JobEvent]) -> None:
    times = [event.created_at for event in events if event.created_at is not None]
    assert times == sorted(times), "the entries are not oldest first"


def check_job(item: Documented, dialect: Dialect) -> None:
    job = dialect.parse_job(item.answer)
    job_fields(job, item.expect)


def check_call_answer(item: Documented, dialect: Dialect) -> None:
    """A cancel, pause or resume answer: the job it carries (or none where the vendor answers the call's result)."""
    parse = dialect.parse_cancel if item.kind == "cancel" else dialect.parse_job
    expect = dict(item.expect)
    carries_job = expect.pop("carries_job", True)
    job = parse(item.answer, job_id=expect.get("id"))
    if not carries_job:
        assert job is None
        return
    assert job is not None
    job_fields(job, expect)


def check_page(item: Documented, dialect: Dialect) -> None:
    page = dialect.parse_page(item.answer, item.spec.get("cursor"), PAGE_SIZE)
    expect = dict(item.expect)
    assert [job.id for job in page.jobs] == expect.pop("ids")
    assert page.next_cursor == expect.pop("next_cursor", None)
    statuses = expect.pop("statuses", None)
    for job in page.jobs:
        job_fields(job, {})
    if statuses is not None:
        assert [job.status.value for job in page.jobs] == statuses


def check_events(item: Documented, dialect: Dialect) -> None:
    """The entries, oldest first, with their messages (and, where given, cursors and figures); where ``expect``
    gives ``request``, the query the dialect sends for the documented request's ``cursor`` and ``limit``."""
    cursor = item.spec.get("cursor")
    page = dialect.parse_events(item.answer, cursor)
    oldest_first(page.events)
    expect = item.expect
    assert [event.message for event in page.events] == expect["messages"]
    assert page.next_cursor == expect.get("next_cursor")
    if "request" in expect:
        request = dialect.events_page("ftjob-documented", cursor, item.spec.get("limit", PAGE_SIZE))
        assert dict(request.params) == expect["request"]
    if "cursors" in expect:
        assert [event.cursor for event in page.events] == expect["cursors"]
    for field in ("step", "total_steps", "train_loss", "valid_loss"):
        if field in expect:
            assert [getattr(event, field) for event in page.events] == expect[field]


def check_files(item: Documented, dialect: Dialect) -> None:
    page = dialect.parse_files_page(item.answer, item.spec.get("cursor"), PAGE_SIZE)
    assert [file.id for file in page.files] == item.expect["ids"]
    assert page.next_cursor == item.expect.get("next_cursor")


def check_upload(item: Documented, dialect: Dialect) -> None:
    remote = dialect.parse_upload(item.answer)
    for field, value in item.expect.items():
        assert getattr(remote, field) == value, field


def check_delete(item: Documented, dialect: Dialect) -> None:
    payload = item.answer
    if "http_status" in item.spec:
        body = b"" if payload is None else json.dumps(payload).encode()
        payload = dialect.decode(
            dialect.delete_job("ftjob-documented"), ApiResponse(item.spec["http_status"], {}, body)
        )
    assert dialect.parse_delete(payload) is None


ERROR_REQUESTS: dict[str, Callable[[Dialect], ApiRequest]] = {
    "get": lambda dialect: dialect.get_job("ftjob-documented"),
    "list": lambda dialect: dialect.list_page(None, PAGE_SIZE, {}),
    "cancel": lambda dialect: dialect.cancel_job("ftjob-documented"),
    "delete": lambda dialect: dialect.delete_job("ftjob-documented"),
    "events": lambda dialect: dialect.events_page("ftjob-documented", None, PAGE_SIZE),
    "create": lambda dialect: ApiRequest("create", "POST", "/fine_tuning/jobs", retry_safe=False),
    "upload": lambda dialect: ApiRequest("upload", "POST", "/files", retry_safe=False),
}


def check_error(item: Documented, dialect: Dialect) -> None:
    """An error body: one typed ``FineTuningApiError`` with the documented code, status and retry verdict."""
    request = ERROR_REQUESTS[item.spec.get("operation", "get")](dialect)
    headers = {name.lower(): value for name, value in item.spec.get("headers", {}).items()}
    response = ApiResponse(item.spec["http_status"], headers, json.dumps(item.answer).encode())
    with pytest.raises(FineTuningApiError) as raised:
        dialect.decode(request, response)
    error = raised.value
    for field, value in item.expect.items():
        assert getattr(error, field) == value, f"{field}: read {getattr(error, field)!r}, documented {value!r}"


def check_statuses(item: Documented, dialect: Dialect) -> None:
    """Every word of one version of the vendor's status enum is read as ``expect.statuses`` says, none UNKNOWN
    unless the vendor's own word means that."""
    read = [dialect.job_status(word).value for word in item.answer]
    assert read == item.expect["statuses"]
    unknown = [word for word, status in zip(item.answer, read, strict=True) if status == JobStatus.UNKNOWN.value]
    assert unknown == item.expect.get("unknown", []), f"status words not known: {unknown}"


CHECKS: dict[str, Callable[[Documented, Dialect], None]] = {
    "job": check_job,
    "cancel": check_call_answer,
    "pause": check_call_answer,
    "resume": check_call_answer,
    "page": check_page,
    "events": check_events,
    "files": check_files,
    "upload": check_upload,
    "delete": check_delete,
    "error": check_error,
    "statuses": check_statuses,
}


def check_decodes_as_success(item: Documented, dialect: Dialect) -> None:
    """A success answer (a JSON object) sent with HTTP 200 is decoded as itself, not raised as an error. An answer
    documented with a status of its own (a delete's ``204`` without a body) is decoded by its check, as sent."""
    if item.kind in ("error", "statuses") or "http_status" in item.spec:
        return
    request = ERROR_REQUESTS["get"](dialect)
    assert dialect.decode(request, ApiResponse(200, {}, json.dumps(item.answer).encode())) == item.answer


@pytest.mark.parametrize("item", DOCUMENTED, ids=lambda item: f"{item.vendor}/{item.path.stem}")
def test_a_documented_answer_is_accepted_and_read_right(item: Documented) -> None:
    assert item.kind in KINDS, item.kind
    assert item.spec.get("source"), "every documented answer names its source"
    dialect = item.dialect()
    check_decodes_as_success(item, dialect)
    CHECKS[item.kind](item, dialect)


def test_every_corpus_file_is_listed_in_the_readme() -> None:
    readme = (CORPUS / "README.md").read_text(encoding="utf-8")
    missing = [
        f"{item.vendor}/{item.path.name}" for item in DOCUMENTED if f"{item.vendor}/{item.path.name}" not in readme
    ]
    assert not missing, f"not in tests/conformance/README.md: {missing}"

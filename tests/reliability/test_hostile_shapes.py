"""Wrong shapes over the wire: valid JSON (or almost) that is not the answer asked for ends in ``FineTuningApiError``.

Each case is an answer the issue found taken as success or ending in a raw ``OverflowError``, ``RecursionError`` or
``TypeError``: impossible times, deep nesting, pages of numbers, empty objects, another job's id, a redirect that
carries a job, a delete answered with ``{}``, ``has_more: "false"``. The emulator sends it (a ``body`` or ``redirect``
fault) in place of the real answer, derived from the real one, on every request of the operation; the operation
must end in a ``FineTuningApiError`` whose message says what was wrong, and ``wait_for_job`` must end with it at once
rather than poll until its timeout. ``test_dialect_properties.py`` tries arbitrary JSON on the parse functions.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from airflow_provider_ft.core import operations
from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningError
from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
from airflow_provider_ft.jobs import FineTuningJob, JobStatus
from airflow_provider_ft_emulator import Fault, FineTuningEmulator
from tests.conftest import API_KEY, CONN_TYPES, ConnectionFactory, api_url, seed_job_of
from tests.operators.conftest import FAILED, RUNNING, SUCCEEDED
from tests.reliability import lifecycle

AREA = "wrong shapes"
ALWAYS = 1_000
EXTRAS = {"timeout": 2, "max_retries": 1, "backoff_base": 0.01}
WAIT_TIMEOUT = 5.0
PATHS = {
    "dashscope": "/fine-tunes",
    "openai": "/fine_tuning/jobs",
    "azure": "/fine_tuning/jobs",
    "together": "/fine-tunes",
}
JOB_ID_FIELD = {"dashscope": "job_id", "openai": "id", "azure": "id", "together": "id"}

Answer = dict[str, Any]


def job_of(vendor: str, answer: Answer) -> Answer:
    """The job object inside a vendor's answer (DashScope wraps it in ``output``)."""
    return answer["output"] if vendor == "dashscope" else answer


def with_job_field(name: str, raw: str) -> Callable[[str, Answer], bytes]:
    """The answer with the job's ``name`` set to the raw JSON text ``raw`` (which may be NaN or Infinity)."""

    def make(vendor: str, answer: Answer) -> bytes:
        changed = copy.deepcopy(answer)
        job_of(vendor, changed)[name] = "<<raw>>"
        return json.dumps(changed).replace('"<<raw>>"', raw).encode()

    return make


def replaced_by(body: bytes) -> Callable[[str, Answer], bytes]:
    return lambda vendor, answer: body


def another_jobs_id(vendor: str, answer: Answer) -> bytes:
    changed = copy.deepcopy(answer)
    job_of(vendor, changed)[JOB_ID_FIELD[vendor]] += "x"
    return json.dumps(changed).encode()


def without_output(vendor: str, answer: Answer) -> bytes:
    return json.dumps({**answer, "output": None}).encode()


def a_page_instead(vendor: str, answer: Answer) -> bytes:
    job = job_of(vendor, answer)
    if vendor == "dashscope":
        page = {"request_id": "r-1", "output": {"page_no": 1, "page_size": 10, "total": 1, "jobs": [job]}}
        return json.dumps(page).encode()
    return json.dumps({"object": "list", "data": [job], "has_more": False}).encode()


def page_entries(value: str) -> Callable[[str, Answer], bytes]:
    def make(vendor: str, answer: Answer) -> bytes:
        body: dict[str, Any]
        if vendor == "dashscope":
            body = {"request_id": "r-1", "output": {"page_no": 1, "page_size": 10, "total": 1, "jobs": "<<raw>>"}}
        else:
            body = {"object": "list", "data": "<<raw>>", "has_more": False}
        return json.dumps(body).replace('"<<raw>>"', value).encode()

    return make


def has_more_as_text(vendor: str, answer: Answer) -> bytes:
    return json.dumps({"object": "list", "data": [job_of(vendor, answer)], "has_more": "false"}).encode()


@dataclass(frozen=True)
class Shape:
    """An answer of the wrong shape, made from the real one, and what the error must say."""

    id: str
    label: str
    make: Callable[[str, Answer], bytes]
    says: str
    vendors: tuple[str, ...] = ("dashscope", "openai")


DEEP = b"[" * 100_000 + b"]" * 100_000

JOB_SHAPES = [
    *(
        Shape(
            f"openai-created-at-{name}",
            f"OpenAI `created_at: {raw}`",
            with_job_field("created_at", raw),
            "created_at",
            vendors=("openai", "azure"),
        )
        for name, raw in [("1e20", "1e20"), ("nan", "NaN"), ("infinity", "Infinity"), ("ms", "1700000000000")]
    ),
    Shape(
        "dashscope-create-time-garbage",
        'DashScope `create_time: "yesterday"`',
        with_job_field("create_time", '"yesterday"'),
        "create_time",
        vendors=("dashscope",),
    ),
    Shape(
        "dashscope-create-time-year-55000",
        'DashScope `create_time: "55000-01-01 00:00:00"`',
        with_job_field("create_time", '"55000-01-01 00:00:00"'),
        "create_time",
        vendors=("dashscope",),
    ),
    Shape("deep-nesting", "`[` x 100000 then `]` x 100000", replaced_by(DEEP), "levels"),
    Shape("empty-object", "`{}`", replaced_by(b"{}"), "'output' is null", vendors=("dashscope",)),
    Shape("empty-object", "`{}`", replaced_by(b"{}"), "the job has no 'id'", vendors=("openai", "azure")),
    Shape("output-null", '`{"output": null}`', without_output, "'output'", vendors=("dashscope",)),
    Shape("a-page-instead", "a list page where a job was asked for", a_page_instead, "the job"),
    Shape("another-jobs-id", "another job's id", another_jobs_id, "the answer is job"),
]

#: Informational fields (see ``vendors.readers.DECISION_FIELDS``) a server fills with something unusable: the job is
#: read all the same, that field "not reported". ``says`` names the field, which must read as ``None``.
INFORMATIONAL_SHAPES = [
    Shape(
        "openai-estimated-finish-0",
        "OpenAI `estimated_finish: 0` (its spec's own example)",
        with_job_field("estimated_finish", "0"),
        "estimated_finish",
        vendors=("openai", "azure"),
    ),
    Shape(
        "openai-estimated-finish-1e17",
        "OpenAI `estimated_finish: 1e17`",
        with_job_field("estimated_finish", "1e17"),
        "estimated_finish",
        vendors=("openai", "azure"),
    ),
    Shape(
        "openai-finished-at-text",
        'OpenAI `finished_at: "soon"`',
        with_job_field("finished_at", '"soon"'),
        "finished_at",
        vendors=("openai", "azure"),
    ),
    Shape(
        "dashscope-end-time-garbage",
        'DashScope `end_time: "soon"`',
        with_job_field("end_time", '"soon"'),
        "finished_at",
        vendors=("dashscope",),
    ),
    Shape(
        "together-updated-at-garbage",
        'Together AI `updated_at: "soon"`',
        with_job_field("updated_at", '"soon"'),
        "finished_at",
        vendors=("together",),
    ),
    *(
        Shape(
            f"{vendor}-token-count-negative",
            f"`{field}: -5`",
            with_job_field(field, "-5"),
            "trained_tokens",
            vendors=(vendor,),
        )
        for vendor, field in [
            ("openai", "trained_tokens"),
            ("azure", "trained_tokens"),
            ("dashscope", "usage"),
            ("together", "token_count"),
        ]
    ),
]

PAGE_SHAPES = [
    Shape("page-of-a-number", "jobs / data is `7`", page_entries("7"), "not an array of jobs"),
    Shape("page-of-a-boolean", "jobs / data is `true`", page_entries("true"), "not an array of jobs"),
    Shape("has-more-as-text", '`"has_more": "false"`', has_more_as_text, "has_more", vendors=("openai", "azure")),
]


def real_answer(emulator: FineTuningEmulator, vendor: str, job_id: str) -> Answer:
    url = f"{api_url(emulator, vendor)}{PATHS[vendor]}/{job_id}"
    answer: Answer = requests.get(url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5).json()
    return answer


def get(hook: FineTuningHook, job_id: str) -> FineTuningJob:
    return hook.get_job(job_id)


def aget(hook: FineTuningHook, job_id: str) -> FineTuningJob:
    async def read() -> FineTuningJob:
        async with hook.async_transport() as transport:
            return await hook.aget_job(transport, job_id)

    return asyncio.run(read())


def wait(hook: FineTuningHook, job_id: str) -> FineTuningJob:
    return hook.wait_for_job(job_id, poll_interval=0.05, timeout=WAIT_TIMEOUT)


def list_all(hook: FineTuningHook, job_id: str) -> list[FineTuningJob]:
    return list(hook.list_jobs())


JOB_CALLS: dict[str, Callable[[FineTuningHook, str], Any]] = {
    "get_job": get,
    "aget_job (async)": aget,
    "wait_for_job": wait,
}


def cells(shapes: list[Shape], calls: dict[str, Callable[[FineTuningHook, str], Any]]) -> list[Any]:
    return [
        pytest.param(
            shape,
            column,
            call,
            vendor,
            id=f"{shape.id}-{column}-{vendor}",
            marks=pytest.mark.reliability(area=AREA, row=shape.id, column=column, vendor=vendor, label=shape.label),
        )
        for shape in shapes
        for column, call in calls.items()
        for vendor in shape.vendors
    ]


def check_refused(call: Callable[[], Any], says: str) -> FineTuningApiError:
    started = time.monotonic()
    with pytest.raises(FineTuningError) as raised:
        call()
    error = raised.value
    assert isinstance(error, FineTuningApiError), repr(error)
    assert says in str(error), str(error)
    assert time.monotonic() - started < WAIT_TIMEOUT, "ended at once, not by polling until the timeout"
    return error


@pytest.fixture
def hook_for(emulator: FineTuningEmulator, make_connection: ConnectionFactory) -> Callable[[str], FineTuningHook]:
    def make(vendor: str) -> FineTuningHook:
        conn_id = make_connection(f"shapes_{vendor}", CONN_TYPES[vendor], host=emulator.url(vendor), **EXTRAS)
        return FineTuningHook(conn_id, page_size=10)

    return make


@pytest.mark.parametrize(
    ("shape", "column", "call", "vendor"),
    cells(JOB_SHAPES, JOB_CALLS) + cells(PAGE_SHAPES, {"list_jobs": list_all}),
)
def test_an_answer_of_the_wrong_shape_is_an_api_error(
    emulator: FineTuningEmulator,
    hook_for: Callable[[str], FineTuningHook],
    shape: Shape,
    column: str,
    call: Callable[[FineTuningHook, str], Any],
    vendor: str,
) -> None:
    job_id = emulator.seed_job(vendor, status=RUNNING[vendor], runs_for=None)
    body = shape.make(vendor, real_answer(emulator, vendor, job_id))
    emulator.inject(Fault(kind="body", body=body, method="GET", times=ALWAYS))
    with closing(hook_for(vendor)) as hook:
        check_refused(lambda: call(hook, job_id), shape.says)
    assert any(request.fault == "body" for request in emulator.requests)


@pytest.mark.parametrize(("shape", "column", "call", "vendor"), cells(INFORMATIONAL_SHAPES, JOB_CALLS))
def test_an_unusable_informational_field_is_not_reported_and_the_job_is_read(
    emulator: FineTuningEmulator,
    hook_for: Callable[[str], FineTuningHook],
    shape: Shape,
    column: str,
    call: Callable[[FineTuningHook, str], Any],
    vendor: str,
) -> None:
    job_id = emulator.seed_job(vendor, status=SUCCEEDED[vendor], runs_for=None)
    body = shape.make(vendor, real_answer(emulator, vendor, job_id))
    emulator.inject(Fault(kind="body", body=body, method="GET", times=ALWAYS))
    with closing(hook_for(vendor)) as hook:
        job = call(hook, job_id)
    assert (job.id, job.status) == (job_id, JobStatus.SUCCEEDED)
    assert getattr(job, shape.says) is None
    assert any(request.fault == "body" for request in emulator.requests)


REDIRECT_CALLS: dict[str, Callable[[FineTuningHook, str], Any]] = {
    **JOB_CALLS,
    "cancel_job": lambda hook, job_id: hook.cancel_job(job_id),
}


def redirect_cells(columns: Iterable[str]) -> list[Any]:
    """Each redirect status, answered with a job, to each of ``columns``, on both vendors."""
    return [
        pytest.param(
            vendor,
            column,
            status,
            id=f"{status}-{column}-{vendor}",
            marks=pytest.mark.reliability(
                area=AREA, row=f"redirect-{status}", column=column, vendor=vendor, label=f"HTTP {status} with a job"
            ),
        )
        for status in (301, 302, 307, 308)
        for column in columns
        for vendor in sorted(CONN_TYPES)
    ]


@pytest.mark.parametrize(("vendor", "column", "status"), redirect_cells(sorted(REDIRECT_CALLS)))
def test_a_redirect_carrying_a_succeeded_job_is_not_success(
    emulator: FineTuningEmulator,
    hook_for: Callable[[str], FineTuningHook],
    vendor: str,
    column: str,
    status: int,
) -> None:
    job_id = emulator.seed_job(vendor, status=RUNNING[vendor], runs_for=None)
    emulator.inject(Fault(kind="redirect", variant="job", status=status, times=ALWAYS))
    with closing(hook_for(vendor)) as hook:
        error = check_refused(lambda: REDIRECT_CALLS[column](hook, job_id), "redirects are not followed")
    assert error.http_status == status
    assert not [r for r in emulator.requests if r.vendor is None], "the redirect was not followed"
    job = emulator.job(vendor, job_id)
    assert job is not None
    assert job["status"] == RUNNING[vendor], "nothing was cancelled"


@pytest.mark.reliability(
    area=AREA, row="delete-answered-empty", column="delete_job", vendor="dashscope", label="DashScope delete: `{}`"
)
def test_a_delete_answered_with_an_empty_object_is_not_success(
    emulator: FineTuningEmulator, hook_for: Callable[[str], FineTuningHook]
) -> None:
    job_id = emulator.seed_job("dashscope", status=FAILED["dashscope"], runs_for=None)
    emulator.inject(Fault(kind="body", body=b"{}", method="DELETE", times=ALWAYS))
    with closing(hook_for("dashscope")) as hook:
        check_refused(lambda: hook.delete_job(job_id), "delete")


# -- the lifecycle endpoints: an upload, the files listing, a job create ---------------------------------------------
#
# Whatever shape the answer to an upload or a create has, the call ends in one ``FineTuningApiError`` saying what was
# wrong, and never makes a second thing: a ``body`` fault does not carry the request out, so the emulator must hold
# nothing, and every send after the first must follow a look that found nothing. A files page of the wrong shape ends
# the look, and no upload follows.

UPLOAD_COLUMN = "upload_file"
LOOK_COLUMN = "upload_file's look"
CREATE_COLUMN = "submit_job"


def deep(vendor: str) -> bytes:
    return DEEP


def constant(body: bytes) -> Callable[[str], bytes]:
    return lambda vendor: body


def upload_with(changes: Callable[[str, Answer], None]) -> Callable[[str], bytes]:
    def make(vendor: str) -> bytes:
        answer = lifecycle.upload_answer(vendor, "file-uploaded0001")
        changes(vendor, answer)
        return json.dumps(answer).encode()

    return make


def unsafe_file_id(vendor: str, answer: Answer) -> None:
    if vendor != "dashscope":
        answer["id"] = "../files/x"
    else:
        answer["data"]["uploaded_files"][0]["file_id"] = "../files/x"


def two_files(vendor: str, answer: Answer) -> None:
    answer["data"]["uploaded_files"] *= 2


def refused(vendor: str, answer: Answer) -> None:
    answer["data"] = {"uploaded_files": [], "failed_uploads": [{"name": "x", "code": "Quota", "message": "no room"}]}


def files_page_of(entries: str, vendor_more: str = "true") -> Callable[[str], bytes]:
    def make(vendor: str) -> bytes:
        if vendor == "together":
            return f'{{"data": {entries}}}'.encode()
        if vendor != "dashscope":
            return f'{{"object": "list", "data": {entries}, "has_more": {vendor_more}}}'.encode()
        return f'{{"request_id": "r-1", "data": {{"total": 1, "files": {entries}}}}}'.encode()

    return make


def create_answer_of(job: str) -> Callable[[str], bytes]:
    def make(vendor: str) -> bytes:
        return (f'{{"request_id": "r-1", "output": {job}}}' if vendor == "dashscope" else job).encode()

    return make


@dataclass(frozen=True)
class LifecycleShape:
    id: str
    label: str
    make: Callable[[str], bytes]
    says: dict[str, str]
    #: the vendor clearly refused (nothing was made): sent once, never looked for or sent again
    final: bool = False


UPLOAD_SHAPES = [
    LifecycleShape(
        "empty-object",
        "`{}`",
        constant(b"{}"),
        {
            "dashscope": "the upload answer's 'data' is null",
            "openai": "the uploaded file's 'id' is null",
            "azure": "the uploaded file's 'id' is null",
            "together": "the uploaded file's 'id' is null",
        },
    ),
    LifecycleShape("deep-nesting", "`[` x 100000 then `]` x 100000", deep, {v: "levels" for v in CONN_TYPES}),
    LifecycleShape(
        "upload-unsafe-file-id",
        "a file id `../files/x`",
        upload_with(unsafe_file_id),
        {v: "usable file id" for v in CONN_TYPES},
    ),
    LifecycleShape(
        "upload-two-files",
        "DashScope: two `uploaded_files` for one file",
        upload_with(two_files),
        {"dashscope": "not one file"},
    ),
    LifecycleShape(
        "upload-refused-in-a-200",
        "DashScope: the file in `failed_uploads`, HTTP 200",
        upload_with(refused),
        {"dashscope": "DashScope refused the upload: no room"},
        final=True,
    ),
]
FILES_PAGE_SHAPES = [
    LifecycleShape(
        "empty-object",
        "`{}`",
        constant(b"{}"),
        {v: "the files page's 'data' is null" for v in CONN_TYPES},
    ),
    LifecycleShape("deep-nesting", "`[` x 100000 then `]` x 100000", deep, {v: "levels" for v in CONN_TYPES}),
    LifecycleShape(
        "files-page-of-a-number",
        "files / data is `7`",
        files_page_of("7"),
        {v: "not an array of files" for v in CONN_TYPES},
    ),
    LifecycleShape("has-more-as-text", '`"has_more": "false"`', files_page_of("[]", '"false"'), {"openai": "has_more"}),
    LifecycleShape(
        "files-unsafe-file-id",
        "a listed file id `../files/x`",
        files_page_of('[{"id": "../files/x", "file_id": "../files/x"}]'),
        {v: "usable file id" for v in CONN_TYPES},
    ),
]
CREATE_SHAPES = [
    LifecycleShape(
        "empty-object",
        "`{}`",
        constant(b"{}"),
        {
            "dashscope": "'output' is null",
            "openai": "the job has no 'id'",
            "azure": "the job has no 'id'",
            "together": "the job has no 'id'",
        },
    ),
    LifecycleShape("deep-nesting", "`[` x 100000 then `]` x 100000", deep, {v: "levels" for v in CONN_TYPES}),
    LifecycleShape(
        "json-array", "`[1, 2]`", constant(b"[1, 2]"), {v: "not a JSON object but a JSON array" for v in CONN_TYPES}
    ),
    LifecycleShape(
        "a-page-instead",
        "a list page where a job was asked for",
        constant(b'{"object": "list", "data": [], "has_more": false, "output": {"jobs": []}}'),
        {
            "dashscope": "has no 'job_id'",
            "openai": "the job has no 'id'",
            "azure": "the job has no 'id'",
            "together": "the job has no 'id'",
        },
    ),
    LifecycleShape(
        "create-unsafe-job-id",
        "a job id `../jobs/x`",
        create_answer_of('{"id": "../jobs/x", "job_id": "../jobs/x", "status": "queued"}'),
        {v: "usable job id" for v in CONN_TYPES},
    ),
]


def lifecycle_cells(shapes: list[LifecycleShape], column: str) -> list[Any]:
    return [
        pytest.param(
            shape,
            column,
            vendor,
            id=f"{shape.id}-{column}-{vendor}",
            marks=pytest.mark.reliability(area=AREA, row=shape.id, column=column, vendor=vendor, label=shape.label),
        )
        for shape in shapes
        for vendor in sorted(CONN_TYPES)
        if vendor in shape.says
    ]


def sent_only_after_a_look(emulator: FineTuningEmulator, method: str, path: str, look: str) -> int:
    """How many ``method path`` requests were sent; each after the first must follow a ``GET look`` (a look that
    found nothing), and there is one more look after the last."""
    sent = looks_since = 0
    for request in emulator.requests:
        if request.method == "GET" and request.path.rstrip("/") == look:
            looks_since += 1
        elif request.method == method and request.path.rstrip("/") == path:
            assert looks_since >= 1, "sent again without looking first"
            sent, looks_since = sent + 1, 0
    assert looks_since >= 1, "looked for after the last send"
    return sent


@pytest.mark.parametrize(
    ("shape", "column", "vendor"),
    lifecycle_cells(UPLOAD_SHAPES, UPLOAD_COLUMN) + lifecycle_cells(FILES_PAGE_SHAPES, LOOK_COLUMN),
)
def test_an_upload_or_files_page_of_the_wrong_shape_is_an_api_error_and_makes_no_file(
    emulator: FineTuningEmulator,
    hook_for: Callable[[str], FineTuningHook],
    tmp_path: Path,
    shape: LifecycleShape,
    column: str,
    vendor: str,
) -> None:
    at_the_upload = column == UPLOAD_COLUMN
    method = "POST" if at_the_upload else "GET"
    path = lifecycle.UPLOAD_PATHS[vendor] if at_the_upload else lifecycle.FILES_PATH
    emulator.inject(Fault(kind="body", body=shape.make(vendor), method=method, path=path, times=ALWAYS))
    with closing(hook_for(vendor)) as hook:
        local = hook.check_training_file(lifecycle.write_training_file(tmp_path), lifecycle.spec_for(vendor))
        error = check_refused(lambda: hook.upload_file(local, settle_delays=(0.0,)), shape.says[vendor])
        tries = hook.settings.retry.max_retries + 1
    assert API_KEY not in str(error)
    assert emulator.files(vendor) == [], "no file was made"
    if at_the_upload and shape.final:
        assert len(lifecycle.uploads(emulator)) == 1, "a clear refusal is not sent again"
        assert emulator.requests[-1] == lifecycle.uploads(emulator)[0], "nor looked for after"
    elif at_the_upload:
        upload = lifecycle.UPLOAD_PATHS[vendor].strip("^$")
        assert 1 <= sent_only_after_a_look(emulator, "POST", upload, "/files") <= tries
    else:
        assert lifecycle.uploads(emulator) == [], "no upload after a look that could not be read"
        assert len(lifecycle.file_listings(emulator)) == 1


@pytest.mark.parametrize(("shape", "column", "vendor"), lifecycle_cells(CREATE_SHAPES, CREATE_COLUMN))
def test_a_create_answer_of_the_wrong_shape_is_an_api_error_and_makes_no_second_job(
    emulator: FineTuningEmulator,
    hook_for: Callable[[str], FineTuningHook],
    shape: LifecycleShape,
    column: str,
    vendor: str,
) -> None:
    file_id = emulator.seed_file(vendor, "train.jsonl", (json.dumps(lifecycle.RECORD) + "\n").encode())
    emulator.clear_requests()
    path = lifecycle.CREATE_PATHS[vendor]
    emulator.inject(Fault(kind="body", body=shape.make(vendor), method="POST", path=path, times=ALWAYS))
    with closing(hook_for(vendor)) as hook:
        call = partial(hook.submit_job, lifecycle.spec_for(vendor, file_id), lifecycle.IDENTITY, settle_delays=(0.0,))
        error = check_refused(call, shape.says[vendor])
        tries = hook.settings.retry.max_retries + 1
    assert API_KEY not in str(error)
    assert "Gave up on the" in str(error)
    assert emulator.jobs(vendor) == [], "no job was made"
    listing = lifecycle.JOB_LISTING_PATHS[vendor]
    assert sent_only_after_a_look(emulator, "POST", listing, listing) == tries


@pytest.mark.parametrize(
    "vendor",
    [
        pytest.param(
            vendor,
            marks=pytest.mark.reliability(
                area=AREA,
                row="create-answered-empty-after-making-the-job",
                column=CREATE_COLUMN,
                vendor=vendor,
                label="`{}` to a create that made the job",
            ),
        )
        for vendor in sorted(CONN_TYPES)
    ],
)
def test_after_an_unreadable_create_answer_the_job_is_looked_for_not_made_again(
    emulator: FineTuningEmulator,
    hook_for: Callable[[str], FineTuningHook],
    monkeypatch: pytest.MonkeyPatch,
    vendor: str,
) -> None:
    # A body fault answers without carrying the create out; the job the server would have made appears while the
    # client waits to look again (its first settle delay), tagged as the create would have tagged it.
    file_id = emulator.seed_file(vendor, "train.jsonl", (json.dumps(lifecycle.RECORD) + "\n").encode())
    emulator.inject(Fault(kind="body", body=b"{}", method="POST", path=lifecycle.CREATE_PATHS[vendor], times=ALWAYS))
    made: list[str] = []

    def settle(seconds: float) -> None:
        if not made:
            made.append(seed_job_of(emulator, vendor, lifecycle.IDENTITY, model=lifecycle.MODELS[vendor]))

    monkeypatch.setattr(operations, "time", SimpleNamespace(sleep=settle))
    with closing(hook_for(vendor)) as hook:
        submission = hook.submit_job(lifecycle.spec_for(vendor, file_id), lifecycle.IDENTITY, settle_delays=(0.0,))
    assert (submission.job.id, submission.created) == (made[0], False)
    assert len(lifecycle.creates(emulator, vendor)) == 1, "the create was not sent again"
    assert len(emulator.jobs(vendor)) == 1


@pytest.mark.parametrize(("vendor", "column", "status"), redirect_cells((CREATE_COLUMN, UPLOAD_COLUMN)))
def test_a_redirected_create_or_upload_is_not_followed_and_makes_nothing(
    emulator: FineTuningEmulator,
    hook_for: Callable[[str], FineTuningHook],
    tmp_path: Path,
    vendor: str,
    column: str,
    status: int,
) -> None:
    file_id = emulator.seed_file(vendor, "seeded.jsonl", (json.dumps(lifecycle.RECORD) + "\n").encode())
    path = lifecycle.CREATE_PATHS[vendor] if column == CREATE_COLUMN else lifecycle.UPLOAD_PATHS[vendor]
    emulator.inject(Fault(kind="redirect", variant="job", status=status, method="POST", path=path, times=ALWAYS))
    with closing(hook_for(vendor)) as hook:
        if column == CREATE_COLUMN:
            call = partial(hook.submit_job, lifecycle.spec_for(vendor, file_id), lifecycle.IDENTITY, settle_delays=(0,))
        else:
            local = hook.check_training_file(lifecycle.write_training_file(tmp_path), lifecycle.spec_for(vendor))
            call = partial(hook.upload_file, local, settle_delays=(0.0,))
        error = check_refused(call, "redirects are not followed")
    assert error.http_status == status
    assert not [r for r in emulator.requests if r.vendor is None], "the redirect was not followed"
    assert emulator.jobs(vendor) == []
    assert len(emulator.files(vendor)) == 1, "only the seeded file"

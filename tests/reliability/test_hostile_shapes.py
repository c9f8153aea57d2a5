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
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from airflow_provider_ft.emulator import Fault, FineTuningEmulator
from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningError
from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
from airflow_provider_ft.jobs import FineTuningJob
from tests.conftest import API_KEY, CONN_TYPES, ConnectionFactory
from tests.operators.conftest import FAILED, RUNNING

AREA = "wrong shapes"
ALWAYS = 1_000
EXTRAS = {"timeout": 2, "max_retries": 1, "backoff_base": 0.01}
WAIT_TIMEOUT = 5.0
PATHS = {"dashscope": "/fine-tunes", "openai": "/fine_tuning/jobs"}
JOB_ID_FIELD = {"dashscope": "job_id", "openai": "id"}

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
            vendors=("openai",),
        )
        for name, raw in [("1e20", "1e20"), ("nan", "NaN"), ("infinity", "Infinity"), ("ms", "1700000000000")]
    ),
    Shape(
        "openai-estimated-finish-1e17",
        "OpenAI `estimated_finish: 1e17`",
        with_job_field("estimated_finish", "1e17"),
        "estimated_finish",
        vendors=("openai",),
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
    Shape("empty-object", "`{}`", replaced_by(b"{}"), "the job has no 'id'", vendors=("openai",)),
    Shape("output-null", '`{"output": null}`', without_output, "'output'", vendors=("dashscope",)),
    Shape("a-page-instead", "a list page where a job was asked for", a_page_instead, "the job"),
    Shape("another-jobs-id", "another job's id", another_jobs_id, "the answer is job"),
]

PAGE_SHAPES = [
    Shape("page-of-a-number", "jobs / data is `7`", page_entries("7"), "not an array of jobs"),
    Shape("page-of-a-boolean", "jobs / data is `true`", page_entries("true"), "not an array of jobs"),
    Shape("has-more-as-text", '`"has_more": "false"`', has_more_as_text, "has_more", vendors=("openai",)),
]


def real_answer(emulator: FineTuningEmulator, vendor: str, job_id: str) -> Answer:
    url = f"{emulator.url(vendor)}{PATHS[vendor]}/{job_id}"
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


REDIRECT_CALLS: dict[str, Callable[[FineTuningHook, str], Any]] = {
    **JOB_CALLS,
    "cancel_job": lambda hook, job_id: hook.cancel_job(job_id),
}


@pytest.mark.parametrize(
    ("vendor", "column", "status"),
    [
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
        for column in sorted(REDIRECT_CALLS)
        for vendor in sorted(CONN_TYPES)
    ],
)
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

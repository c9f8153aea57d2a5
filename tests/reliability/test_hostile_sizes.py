"""Sizes: a gzip bomb or a huge answer is refused at ``max_response_bytes``, in bounded memory, off the event loop.

Each case runs on both vendors, through the blocking hook (``get_job``, and ``list_jobs`` for a huge page) and
``aget_job``, with ``max_response_bytes`` set to 1 MiB so that the memory bound is clear:

- a gzip bomb (1 GiB inflated from about 1 MiB), a huge job and a huge page (50 MiB each) end in one
  ``FineTuningApiError`` naming ``max_response_bytes``, after reading little more than the cap;
- a huge (50 MiB) plain-text 500 ends in one retryable ``FineTuningApiError`` whose message quotes a short snippet;
- the peak of memory allocated during each blocking call (``tracemalloc``, every thread of the process: the
  emulator's too) stays below ``MEMORY_FACTOR`` times the cap;
- a normal answer compressed with gzip or deflate still decodes (the control).

While ``aget_job`` reads a gzip bomb or a huge job, a ticker on the same event loop records how late each of its
sleeps wakes: the worst lag stays far below what a blocked loop shows. Measured figures (peaks, worst lags, durations)
go to ``user_properties`` for the reliability report.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ft.exceptions import (
    BodyTooLarge,
    FineTuningApiError,
    FineTuningError,
    FineTuningTransportError,
    MalformedAnswerError,
)
from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
from airflow_provider_ft.jobs import JobStatus
from airflow_provider_ft.transport import ClientSettings
from airflow_provider_ft_emulator import Fault, FineTuningEmulator
from airflow_provider_ft_emulator.faults import BOMB_SIZE
from airflow_provider_ft_emulator.floods import gzip_bomb
from tests.conftest import API_KEY, CONN_TYPES, ConnectionFactory
from tests.operators.conftest import RUNNING
from tests.reliability import lifecycle

VENDORS = ("dashscope", "openai", "azure", "together")
AREA = "sizes"
ALWAYS = 1_000
MiB = 1024**2
#: ``max_response_bytes`` of these cases: far below the floods, and a clear unit for the memory bound.
CAP = 1 * MiB
EXTRAS: dict[str, float] = {"timeout": 2.0, "max_retries": 1, "backoff_base": 0.01, "max_response_bytes": CAP}
#: Peak memory of a blocking call may reach this many times the cap (the body, a decompression step, buffers).
MEMORY_FACTOR = 4
#: Longest an error answer's message may be: it quotes a snippet of the body, never the body.
MESSAGE_CHARS = 1000
SLACK_SECONDS = 2.0
PAGE_SIZE = 5

GET, AGET, LIST = "get", "aget_job", "list"


def request_bound(settings: ClientSettings) -> float:
    """Every attempt spent its whole deadline, with the longest backoffs between them, plus slack."""
    policy = settings.retry
    backoffs = sum(
        min(policy.backoff_base * 2.0**retry, policy.backoff_max) * (1 + policy.jitter)
        for retry in range(policy.max_retries)
    )
    return (policy.max_retries + 1) * settings.attempt_seconds + backoffs + SLACK_SECONDS


@pytest.fixture(scope="module", autouse=True)
def built_bomb() -> None:
    """Build (and cache) the emulator's bomb before any measurement: its making is the server's cost, not ours."""
    gzip_bomb(BOMB_SIZE)


# -- the floods -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flood:
    """One oversized answer, and the one error it must end in.

    :param refused: ``True``: refused at the cap (``BodyTooLarge``, HTTP 200, not retried); ``False``: an error
        answer read up to its first 64 KiB (HTTP 500, retried, a short message)
    """

    id: str
    label: str
    kind: str
    variant: str
    refused: bool
    operations: tuple[str, ...]

    def fault(self) -> Fault:
        return Fault(kind=self.kind, variant=self.variant, method="GET", times=ALWAYS)

    def expect(self) -> str:
        if self.refused:
            return "`FineTuningApiError` naming `max_response_bytes`"
        return "`FineTuningApiError` (HTTP 500), short message"


FLOODS = [
    Flood("gzip-bomb", "gzip bomb, 1 GiB inflated", "gzip", "bomb", True, (GET, AGET)),
    Flood("huge-job", "a 50 MiB job", "huge", "job", True, (GET, AGET)),
    Flood("huge-page", "a 50 MiB page of jobs", "huge", "page", True, (GET, AGET, LIST)),
    Flood("huge-error-text", "HTTP 500 with 50 MiB of plain text", "huge", "error_text", False, (GET, AGET, LIST)),
]


def check_error(error: BaseException, flood: Flood, settings: ClientSettings) -> None:
    text = str(error)
    assert API_KEY not in text
    assert API_KEY not in repr(error)
    assert len(text) < MESSAGE_CHARS, f"a {len(text)}-character message quotes too much of the body"
    assert isinstance(error, FineTuningApiError)
    assert not isinstance(error, FineTuningTransportError), f"the answer arrived, it was refused: {error!r}"
    if flood.refused:
        assert type(error) is BodyTooLarge, f"expected BodyTooLarge, got {error!r}"
        assert f"max_response_bytes={settings.max_response_bytes}" in text
        assert (error.http_status, error.retryable, error.attempts) == (200, False, 1), "a refused answer is final"
    else:
        assert type(error) is FineTuningApiError, f"expected FineTuningApiError, got {error!r}"
        assert "upstream error: xxx" in text, "the message quotes the start of the body"
        assert (error.http_status, error.retryable) == (500, True)
        assert error.attempts == settings.retry.max_retries + 1


def flood_cases() -> list[Any]:
    params = []
    for flood in FLOODS:
        for operation in flood.operations:
            for vendor in VENDORS:
                mark = pytest.mark.reliability(
                    area=AREA, row=flood.id, column=operation, vendor=vendor, label=flood.label, expect=flood.expect()
                )
                params.append(pytest.param(flood, operation, vendor, id=f"{operation}-{flood.id}-{vendor}", marks=mark))
    return params


@dataclass
class Flooded:
    emulator: FineTuningEmulator
    vendor: str
    conn_id: str
    job_id: str

    def hook(self) -> FineTuningHook:
        return FineTuningHook(self.conn_id, page_size=PAGE_SIZE)

    def check_requests(self, attempts: int, fault: str) -> None:
        sent = self.emulator.requests
        assert len(sent) == attempts, [(request.method, request.path, request.status) for request in sent]
        assert {request.fault for request in sent} == {fault}


@pytest.fixture
def make_flooded(emulator: FineTuningEmulator, make_connection: ConnectionFactory) -> Callable[..., Flooded]:
    def make(vendor: str, fault: Fault | None, **extras: float) -> Flooded:
        conn_id = make_connection(
            f"ft_sizes_{vendor}", CONN_TYPES[vendor], host=emulator.url(vendor), **{**EXTRAS, **extras}
        )
        job_id = emulator.seed_job(vendor, status=RUNNING[vendor], runs_for=None)
        if fault is not None:
            emulator.inject(fault)
        return Flooded(emulator, vendor, conn_id, job_id)

    return make


@dataclass
class Peak:
    bytes: int = 0


@contextmanager
def peak_memory() -> Iterator[Peak]:
    """The most memory allocated at once (above what was allocated before) while the block ran, in all threads."""
    started_here = not tracemalloc.is_tracing()
    if started_here:
        tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    peak = Peak()
    try:
        yield peak
    finally:
        peak.bytes = max(tracemalloc.get_traced_memory()[1] - baseline, 0)
        if started_here:
            tracemalloc.stop()


def record(request: pytest.FixtureRequest, **figures: float) -> None:
    for name, value in figures.items():
        request.node.user_properties.append((name, round(value, 4)))


@pytest.mark.parametrize(("flood", "operation", "vendor"), [c for c in flood_cases() if c.values[1] != AGET])
def test_flood_blocking(
    request: pytest.FixtureRequest, make_flooded: Callable[..., Flooded], flood: Flood, operation: str, vendor: str
) -> None:
    case = make_flooded(vendor, flood.fault())
    hook = case.hook()
    settings = hook.settings
    hook.transport  # noqa: B018 - the HTTP session is built before the clock and the memory count start
    bound = request_bound(settings)
    call: Callable[[], object] = (
        (lambda: list(hook.list_jobs())) if operation == LIST else (lambda: hook.get_job(case.job_id))
    )
    try:
        with peak_memory() as peak:
            started = time.monotonic()
            with pytest.raises(FineTuningError) as raised:
                call()
            elapsed = time.monotonic() - started
    finally:
        hook.close()
    record(request, seconds=elapsed, bound_seconds=bound, peak_mib=peak.bytes / MiB, cap_mib=CAP / MiB)
    check_error(raised.value, flood, settings)
    assert elapsed <= bound, f"took {elapsed:.3f} s, the configuration allows {bound:.3f} s"
    limit = MEMORY_FACTOR * settings.max_response_bytes
    assert peak.bytes < limit, f"peak {peak.bytes / MiB:.1f} MiB while reading, above {limit / MiB:g} MiB"
    case.check_requests(1 if flood.refused else settings.retry.max_retries + 1, flood.kind)


@pytest.mark.parametrize(("flood", "operation", "vendor"), [c for c in flood_cases() if c.values[1] == AGET])
async def test_flood_aget_job(
    request: pytest.FixtureRequest, make_flooded: Callable[..., Flooded], flood: Flood, operation: str, vendor: str
) -> None:
    case = make_flooded(vendor, flood.fault())
    hook = case.hook()
    error: BaseException | None = None
    async with hook.async_transport() as transport:
        settings = hook.settings
        bound = request_bound(settings)
        started = time.monotonic()
        try:
            job = await hook.aget_job(transport, case.job_id)
        except FineTuningError as raised:
            error = raised
        else:
            pytest.fail(f"an oversized answer was accepted: {job!r}")
        elapsed = time.monotonic() - started
    record(request, seconds=elapsed, bound_seconds=bound)
    assert error is not None
    check_error(error, flood, settings)
    assert elapsed <= bound, f"took {elapsed:.3f} s, the configuration allows {bound:.3f} s"
    case.check_requests(1 if flood.refused else settings.retry.max_retries + 1, flood.kind)


@pytest.mark.parametrize(
    "vendor",
    [
        pytest.param(
            vendor,
            marks=pytest.mark.reliability(
                area=AREA,
                row="gzip-bomb-default-cap",
                column=GET,
                vendor=vendor,
                label="gzip bomb, 1 GiB inflated, default `max_response_bytes` (8 MiB)",
                expect="`FineTuningApiError` naming `max_response_bytes`",
            ),
        )
        for vendor in VENDORS
    ],
)
def test_gzip_bomb_under_the_default_cap(
    request: pytest.FixtureRequest, emulator: FineTuningEmulator, make_connection: ConnectionFactory, vendor: str
) -> None:
    conn_id = make_connection(
        f"ft_sizes_default_{vendor}", CONN_TYPES[vendor], host=emulator.url(vendor), max_retries=0
    )
    job_id = emulator.seed_job(vendor, status=RUNNING[vendor], runs_for=None)
    emulator.inject(Fault(kind="gzip", variant="bomb", method="GET", times=ALWAYS))
    hook = FineTuningHook(conn_id)
    settings = hook.settings
    assert settings.max_response_bytes == 8 * MiB, "the documented default"
    hook.transport  # noqa: B018 - built before the clock and the memory count start
    try:
        with peak_memory() as peak:
            started = time.monotonic()
            with pytest.raises(FineTuningError) as raised:
                hook.get_job(job_id)
            elapsed = time.monotonic() - started
    finally:
        hook.close()
    bound = request_bound(settings)
    record(request, seconds=elapsed, bound_seconds=bound, peak_mib=peak.bytes / MiB, cap_mib=8.0)
    check_error(raised.value, FLOODS[0], settings)
    assert "max_response_bytes=8388608" in str(raised.value)
    assert elapsed <= bound
    assert peak.bytes < MEMORY_FACTOR * settings.max_response_bytes


# -- the control: compressed normal answers still decode --------------------------------------------------------------


def control_cases(operation: str) -> list[Any]:
    return [
        pytest.param(
            variant,
            vendor,
            id=f"{operation}-{variant}-{vendor}",
            marks=pytest.mark.reliability(
                area=AREA,
                row=f"{variant}-normal-answer",
                column=operation,
                vendor=vendor,
                label=f"a normal answer sent with `Content-Encoding: {variant}` (control)",
                expect="succeeds",
            ),
        )
        for variant in ("gzip", "deflate")
        for vendor in VENDORS
    ]


@pytest.mark.parametrize(("variant", "vendor"), control_cases(GET))
def test_compressed_answer_decodes(make_flooded: Callable[..., Flooded], variant: str, vendor: str) -> None:
    case = make_flooded(vendor, Fault(kind="gzip", variant=variant, method="GET", times=ALWAYS))
    hook = case.hook()
    try:
        job = hook.get_job(case.job_id)
    finally:
        hook.close()
    assert (job.id, job.status) == (case.job_id, JobStatus.RUNNING)
    case.check_requests(1, "gzip")


@pytest.mark.parametrize(("variant", "vendor"), control_cases(AGET))
async def test_compressed_answer_decodes_async(make_flooded: Callable[..., Flooded], variant: str, vendor: str) -> None:
    case = make_flooded(vendor, Fault(kind="gzip", variant=variant, method="GET", times=ALWAYS))
    hook = case.hook()
    async with hook.async_transport() as transport:
        job = await hook.aget_job(transport, case.job_id)
    assert (job.id, job.status) == (case.job_id, JobStatus.RUNNING)
    case.check_requests(1, "gzip")


# -- the event loop keeps turning -------------------------------------------------------------------------------------

TICK = 0.002
#: A loop blocked while a body is inflated or decoded would lag by the whole read; the issue's target is 50 ms.
MAX_LAG = 0.25


@dataclass(frozen=True)
class LagCase:
    """An answer ``aget_job`` reads while the ticker runs, under a cap (default: 8 MiB), and the error it ends in."""

    id: str
    label: str
    fault: Fault
    error: type[FineTuningApiError]
    says: str
    cap: int | None = None


LAG_CASES = [
    LagCase(
        "gzip-bomb",
        "gzip bomb, 1 GiB inflated, inflated up to the default cap",
        Fault(kind="gzip", variant="bomb", method="GET", times=ALWAYS),
        BodyTooLarge,
        "max_response_bytes=8388608",
    ),
    LagCase(
        "gzip-bomb-32mib-cap",
        "gzip bomb, 1 GiB inflated, inflated up to a 32 MiB cap",
        Fault(kind="gzip", variant="bomb", method="GET", times=ALWAYS),
        BodyTooLarge,
        f"max_response_bytes={32 * MiB}",
        cap=32 * MiB,
    ),
    LagCase(
        "huge-job",
        "a 50 MiB job, read up to the default cap",
        Fault(kind="huge", variant="job", method="GET", times=ALWAYS),
        BodyTooLarge,
        "max_response_bytes=8388608",
    ),
    LagCase(
        "large-job-within-cap",
        "a 6 MiB answer within the cap, decoded in a worker thread (another job's: refused)",
        Fault(kind="huge", variant="job", method="GET", times=ALWAYS, size=6 * MiB),
        MalformedAnswerError,
        "asked for job",
    ),
]


@dataclass
class Ticks:
    lags: list[float]
    during_call: int

    @property
    def worst(self) -> float:
        return max(self.lags)


async def ticking_while(call: Callable[[], Awaitable[object]]) -> tuple[BaseException | None, Ticks, float]:
    """Run ``call`` while a ticker sleeps ``TICK`` at a time on the same loop; its error, the ticks, the seconds."""
    lags: list[float] = []
    woke: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(TICK)
            after = time.perf_counter()
            lags.append(after - before - TICK)
            woke.append(after)

    # As in tests/triggers/test_job_trigger.py: a full collection of the test process's objects can hold the loop
    # for longer than the reading does; freeze what exists now, so that only the call's own objects are collected.
    gc.collect()
    gc.freeze()
    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(TICK * 2)  # the ticker runs before the call starts
    error: BaseException | None = None
    started = time.perf_counter()
    try:
        await call()
    except FineTuningError as raised:
        error = raised
    finally:
        ended = time.perf_counter()
        done.set()
        await ticking
        gc.unfreeze()
    during = sum(1 for moment in woke if started < moment <= ended)
    return error, Ticks(lags, during), ended - started


@pytest.mark.parametrize(
    ("case", "vendor"),
    [
        pytest.param(
            case,
            vendor,
            id=f"{case.id}-{vendor}",
            marks=pytest.mark.reliability(
                area=AREA,
                row=f"loop-lag-{case.id}",
                column="aget_job loop lag",
                vendor=vendor,
                label=case.label,
                expect=f"`{case.error.__name__}`, event loop lag < {MAX_LAG * 1000:g} ms",
            ),
        )
        for case in LAG_CASES
        for vendor in VENDORS
    ],
)
async def test_reading_a_flood_never_blocks_the_event_loop(
    request: pytest.FixtureRequest,
    emulator: FineTuningEmulator,
    make_connection: ConnectionFactory,
    case: LagCase,
    vendor: str,
) -> None:
    extras = {} if case.cap is None else {"max_response_bytes": case.cap}
    conn_id = make_connection(
        f"ft_lag_{vendor}", CONN_TYPES[vendor], host=emulator.url(vendor), max_retries=0, **extras
    )
    job_id = emulator.seed_job(vendor, status=RUNNING[vendor], runs_for=None)
    emulator.inject(case.fault)
    hook = FineTuningHook(conn_id)
    async with hook.async_transport() as transport:
        bound = request_bound(hook.settings)
        error, ticks, elapsed = await ticking_while(lambda: hook.aget_job(transport, job_id))
    record(
        request,
        seconds=elapsed,
        bound_seconds=bound,
        worst_lag_ms=ticks.worst * 1000,
        ticks_during_call=ticks.during_call,
    )
    assert type(error) is case.error, f"expected {case.error.__name__}, got {error!r}"
    assert case.says in str(error)
    assert API_KEY not in str(error)
    assert elapsed <= bound
    assert ticks.during_call >= 1, f"the ticker never woke during the {elapsed * 1000:.1f} ms call"
    assert ticks.worst < MAX_LAG, f"the event loop stalled for {ticks.worst * 1000:.1f} ms"
    assert emulator.requests[0].fault == case.fault.kind


# -- the lifecycle endpoints: a create, an upload, the files listing ------------------------------------------------
#
# A flood in answer to a create or an upload is refused at ``max_response_bytes`` with the memory peak bounded; it
# may have made the thing, so it is looked for before each new send, and nothing is made twice (these faults do not
# carry the request out: the emulator must hold nothing). A flood in answer to the files listing ends the look, and
# no upload follows.

LIFECYCLE_FLOODS = [flood for flood in FLOODS if flood.id in ("gzip-bomb", "huge-job")]
LIFECYCLE_CALLS = {"submit_job": "POST create", "upload_file": "POST /files", "upload_file's look": "GET /files"}


def lifecycle_flood_cases() -> list[Any]:
    return [
        pytest.param(
            flood,
            column,
            vendor,
            id=f"{column}-{flood.id}-{vendor}",
            marks=pytest.mark.reliability(
                area=AREA,
                row=f"{flood.id}-lifecycle",
                column=column,
                vendor=vendor,
                label=f"{flood.label}, to a create, an upload or the files listing",
                expect="`FineTuningApiError` naming `max_response_bytes`; nothing made twice, no upload after the look",
            ),
        )
        for flood in LIFECYCLE_FLOODS
        for column in LIFECYCLE_CALLS
        for vendor in VENDORS
    ]


@pytest.mark.parametrize(("flood", "column", "vendor"), lifecycle_flood_cases())
def test_flood_lifecycle(
    request: pytest.FixtureRequest,
    emulator: FineTuningEmulator,
    make_connection: ConnectionFactory,
    tmp_path: Path,
    flood: Flood,
    column: str,
    vendor: str,
) -> None:
    conn_id = make_connection(f"ft_sizes_{vendor}", CONN_TYPES[vendor], host=emulator.url(vendor), **EXTRAS)
    file_id = emulator.seed_file(vendor, "seeded.jsonl", (json.dumps(lifecycle.RECORD) + "\n").encode())
    method, path = {
        "submit_job": ("POST", lifecycle.CREATE_PATHS[vendor]),
        "upload_file": ("POST", lifecycle.UPLOAD_PATHS[vendor]),
        "upload_file's look": ("GET", lifecycle.FILES_PATH),
    }[column]
    emulator.inject(Fault(kind=flood.kind, variant=flood.variant, method=method, path=path, times=ALWAYS))
    hook = FineTuningHook(conn_id)
    settings = hook.settings
    hook.transport  # noqa: B018 - the HTTP session is built before the memory count starts
    local = hook.check_training_file(lifecycle.write_training_file(tmp_path), lifecycle.spec_for(vendor))
    call: Callable[[], object]
    if column == "submit_job":
        call = partial(hook.submit_job, lifecycle.spec_for(vendor, file_id), lifecycle.IDENTITY, settle_delays=(0.0,))
    else:
        call = partial(hook.upload_file, local, settle_delays=(0.0,))
    try:
        with peak_memory() as peak, pytest.raises(FineTuningError) as raised:
            call()
    finally:
        hook.close()
    record(request, peak_mib=peak.bytes / MiB, cap_mib=CAP / MiB)
    error = raised.value
    text = str(error)
    assert isinstance(error, FineTuningApiError), repr(error)
    assert f"max_response_bytes={settings.max_response_bytes}" in text
    assert API_KEY not in text
    assert len(text) < MESSAGE_CHARS
    limit = MEMORY_FACTOR * settings.max_response_bytes
    assert peak.bytes < limit, f"peak {peak.bytes / MiB:.1f} MiB while reading, above {limit / MiB:g} MiB"
    tries = settings.retry.max_retries + 1
    flooded = [r for r in emulator.requests if r.fault == flood.kind]
    assert emulator.jobs(vendor) == []
    assert len(emulator.files(vendor)) == 1, "only the seeded file"
    if column == "upload_file's look":
        assert len(flooded) == 1
        assert lifecycle.uploads(emulator) == [], "no upload after a look that could not be read"
    else:
        assert len(flooded) == tries, "sent again only after a look found nothing, at most max_retries + 1 times"

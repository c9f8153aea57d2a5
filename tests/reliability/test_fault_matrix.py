"""Fault matrix: every operation x vendor x fault ends in success or in exactly one typed error, in bounded time.

The matrix is data: ``OPERATIONS`` (what the provider does) and ``FAULTS`` (what the wire does to it); one test per
cell. Each cell sets small timeouts and backoffs through the connection's extras and asserts the elapsed time against
a bound computed from that configuration (``request_budget``), never from how fast this machine is.

A fault hits the requests of the HTTP method the operation is about: GET for get, list, sensor poke and trigger
poll; POST for cancel and for the cancels of a cleanup; DELETE for delete. A listing is faulted from its second page
on, once the first page was read. ``tests/hooks/test_faults.py`` pins finer points of these faults on ``get_job``
(attempt counts, 4xx never retried).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningError, FineTuningTransportError
from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
from airflow_provider_ft.jobs import JobStatus
from airflow_provider_ft.operators.fine_tuning import CLEANUP_SUMMARY_XCOM_KEY, CleanupFineTuningJobsOperator
from airflow_provider_ft.sensors.fine_tuning import FineTuningJobSensor
from airflow_provider_ft.transport import ClientSettings
from airflow_provider_ft.triggers.fine_tuning import FineTuningJobTrigger
from airflow_provider_ft_emulator import Fault, FineTuningEmulator
from airflow_provider_ft_emulator.faults import CLASSIC_FAULT_KINDS, HOSTILE_FAULT_KINDS
from tests.conftest import API_KEY, CONN_TYPES, ConnectionFactory
from tests.operators.conftest import CANCELLED, FAILED, RUNNING, SUCCEEDED, Run, status_of
from tests.reliability.conftest import single_event

VENDORS = ("dashscope", "openai", "azure", "together")
MOUNTS = {
    "dashscope": "/dashscope/api/v1",
    "openai": "/openai/v1",
    "azure": "/azure/openai",
    "together": "/together/v1",
}
#: Real retry behaviour, only faster: every case times out, backs off and obeys Retry-After as in production.
EXTRAS: dict[str, float] = {"timeout": 0.4, "max_retries": 2, "backoff_base": 0.01, "retry_after_max": 1.0}
ATTEMPTS = int(EXTRAS["max_retries"]) + 1
ALWAYS = 1_000
#: Cases that wait out every timeout: fewer and shorter attempts keep them quick, the bound follows.
ALWAYS_SILENT = {"timeout": 0.25, "max_retries": 1}
LIST_JOBS, PAGE_SIZE = 5, 2
CLEANUP_JOBS = 2
STALE = timedelta(hours=30)
#: Added to every computed time bound: thread start-up, the emulator's own work, Airflow's first imports.
SLACK_SECONDS = 2.0


# -- time bounds ---------------------------------------------------------------------------------------------------


def request_budget(settings: ClientSettings) -> float:
    """Longest one request (all its attempts) may take under ``settings``, computed from the configuration only.

    Each attempt may spend the connect and the read timeout; between attempts it waits at most the larger of the
    ``Retry-After`` cap and that retry's backoff with full jitter. This is tighter than
    ``RetryPolicy.longest_total_wait()`` (which assumes the longest backoff on every retry), and never above it.
    """
    policy = settings.retry
    waits = sum(
        max(policy.retry_after_max, min(policy.backoff_base * 2.0**retry, policy.backoff_max) * (1 + policy.jitter))
        for retry in range(policy.max_retries)
    )
    assert waits <= policy.longest_total_wait()
    return (policy.max_retries + 1) * 2 * settings.timeout + waits


# -- how a case must end ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """Success (``error`` is None) or exactly one error of this type, with these details where given."""

    error: type[FineTuningError] | None = None
    http_status: int | None = None
    retryable: bool | None = None
    says: str = ""
    retryable_if_read: bool = False

    def for_method(self, method: str) -> Outcome:
        """This outcome for a request of ``method``: with ``retryable_if_read``, retryable only for a GET."""
        if not self.retryable_if_read:
            return self
        return dataclasses.replace(self, retryable=method == "GET", retryable_if_read=False)

    def describe(self) -> str:
        if self.error is None:
            return "succeeds"
        status = f" (HTTP {self.http_status})" if self.http_status else ""
        return f"`{self.error.__name__}`{status}"


SUCCESS = Outcome()


def check_error(error: BaseException, expected: Outcome) -> None:
    assert expected.error is not None, f"expected success, got {error!r}"
    assert type(error) is expected.error, f"expected {expected.error.__name__}, got {error!r}"
    if expected.http_status is not None:
        assert isinstance(error, FineTuningApiError)
        assert error.http_status == expected.http_status
    if expected.retryable is not None:
        assert isinstance(error, FineTuningApiError)
        assert error.retryable is expected.retryable
    assert expected.says in str(error)
    assert API_KEY not in str(error)


# -- the faults ---------------------------------------------------------------------------------------------------

FaultMaker = Callable[[str], list[Fault]]


@dataclass(frozen=True)
class FaultCase:
    """One way the wire misbehaves, and how every operation must come out of it.

    :param faults: the emulator faults for requests of an HTTP method; ``None`` points the connection at a server
        that accepts connections and never answers
    :param extras: connection extras on top of ``EXTRAS``
    :param min_wait: seconds the operation must have waited (a ``Retry-After`` obeyed)
    :param known_bug: reason of a strict xfail: a bug of the package this case shows
    """

    id: str
    label: str
    outcome: Outcome
    faults: FaultMaker | None
    extras: Mapping[str, float] = field(default_factory=dict)
    min_wait: float = 0.0
    vendors: tuple[str, ...] = VENDORS
    known_bug: str | None = None


def status(code: int, headers: Mapping[str, str] | None = None, times: int = 1) -> FaultMaker:
    return lambda method: [Fault(kind="status", status=code, method=method, headers=dict(headers or {}), times=times)]


def misbehave(kind: str, times: int = 1, **options: Any) -> FaultMaker:
    return lambda method: [Fault(kind=kind, method=method, times=times, **options)]


def retry_after_date(seconds_ahead: float) -> FaultMaker:
    def make(method: str) -> list[Fault]:
        date = format_datetime(datetime.now(UTC) + timedelta(seconds=seconds_ahead), usegmt=True)
        return [Fault(kind="status", status=429, method=method, headers={"Retry-After": date})]

    return make


FAULTS = [
    FaultCase(
        "429-retry-after-seconds", "429 with `Retry-After: 1`", SUCCESS, status(429, {"Retry-After": "1"}), min_wait=1.0
    ),
    FaultCase(
        "429-retry-after-http-date", "429 with `Retry-After: <HTTP date 1 s ahead>`", SUCCESS, retry_after_date(1)
    ),
    FaultCase(
        "429-retry-after-ms",
        "429 with `retry-after-ms: 200`",
        SUCCESS,
        status(429, {"retry-after-ms": "200"}),
        min_wait=0.2,
    ),
    FaultCase(
        "429-retry-after-above-cap",
        "429 with `Retry-After: 3600`, cap `retry_after_max` 0.3 s",
        SUCCESS,
        status(429, {"Retry-After": "3600"}),
        extras={"retry_after_max": 0.3},
        min_wait=0.3,
    ),
    FaultCase(
        "429-retry-after-nan",
        "429 with `Retry-After: nan` (garbage)",
        SUCCESS,
        status(429, {"Retry-After": "nan"}),
        extras={"max_retries": 1, "retry_after_max": 0.1},
    ),
    FaultCase(
        "5xx-burst-within-budget",
        f"503 on {ATTEMPTS - 1} attempts of {ATTEMPTS}",
        SUCCESS,
        status(503, times=ATTEMPTS - 1),
    ),
    FaultCase(
        "5xx-burst-beyond-budget",
        "500 on every attempt",
        Outcome(FineTuningApiError, 500, retryable=True, says="HTTP 500"),
        status(500, times=ALWAYS),
    ),
    FaultCase(
        "hang-once", "no answer within the read timeout, once", SUCCESS, misbehave("hang"), extras={"timeout": 0.3}
    ),
    FaultCase(
        "hang-always",
        "no answer within the read timeout, every attempt",
        Outcome(FineTuningTransportError, 0, retryable=True, says="Timeout"),
        misbehave("hang", times=ALWAYS),
        extras=ALWAYS_SILENT,
    ),
    FaultCase(
        "never-answers",
        "server accepts the connection, never reads or answers",
        Outcome(FineTuningTransportError, 0, retryable=True, says="Timeout"),
        None,
        extras=ALWAYS_SILENT,
    ),
    FaultCase("connection-dropped", "connection dropped before any answer, once", SUCCESS, misbehave("drop")),
    FaultCase(
        "drop-mid-body", "connection dropped halfway through the body, once", SUCCESS, misbehave("drop_mid_body")
    ),
    FaultCase(
        "html-body",
        "502 with an HTML proxy page, every attempt",
        Outcome(FineTuningApiError, 502, retryable=True, says="Bad Gateway"),
        misbehave("html", times=ALWAYS, status=502),
    ),
    FaultCase(
        "truncated-json",
        "200 with truncated JSON",
        Outcome(FineTuningApiError, 200, says="not a JSON object", retryable_if_read=True),
        misbehave("truncated", times=ALWAYS),
    ),
    FaultCase(
        "empty-body",
        "200 with an empty body",
        Outcome(FineTuningApiError, 200, says="<empty>", retryable_if_read=True),
        misbehave("empty", times=ALWAYS),
    ),
    FaultCase(
        "dashscope-200-error-once",
        "DashScope HTTP 200 with `code: InternalError`, once",
        SUCCESS,
        misbehave("dashscope_200_error", vendor="dashscope"),
        vendors=("dashscope",),
    ),
    FaultCase(
        "dashscope-200-error-always",
        "DashScope HTTP 200 with `code: InternalError`, every attempt",
        Outcome(FineTuningApiError, 200, retryable=True, says="code InternalError"),
        misbehave("dashscope_200_error", times=ALWAYS, vendor="dashscope"),
        vendors=("dashscope",),
    ),
    FaultCase(
        "response-lost",
        "server does the work, the answer is lost, the client retries",
        SUCCESS,
        misbehave("lose_response"),
    ),
]


# -- the operations -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """Something the provider does over the wire.

    :param method: the HTTP method of the requests its faults hit
    :param requests: requests it sends at most, each with its own retries (for the time bound)
    """

    id: str
    name: str
    method: str
    requests: int
    vendors: tuple[str, ...] = VENDORS
    blocking: bool = True


GET = Operation("get", "get", "GET", 1)
LIST = Operation("list", "list (3 pages)", "GET", 3)
CANCEL = Operation("cancel", "cancel", "POST", 2)
DELETE = Operation("delete", "delete", "DELETE", 1, vendors=("dashscope", "azure", "together"))
SENSOR = Operation("sensor-poke", "sensor poke", "GET", 1)
TRIGGER = Operation("trigger-poll", "trigger poll", "GET", 1, blocking=False)
CLEANUP = Operation("cleanup", f"cleanup ({CLEANUP_JOBS} jobs)", "POST", 1 + 2 * CLEANUP_JOBS)
OPERATIONS = [GET, LIST, CANCEL, DELETE, SENSOR, CLEANUP, TRIGGER]

RAISED = object()


@dataclass
class Scenario:
    """One cell of the matrix: an emulator, a connection configured for the case, and the checks."""

    emulator: FineTuningEmulator
    operation: Operation
    vendor: str
    case: FaultCase
    conn_id: str

    @property
    def succeeds(self) -> bool:
        return self.case.outcome.error is None

    @property
    def outcome(self) -> Outcome:
        """The case's outcome for the method of this operation (reads may retry what writes may not)."""
        return self.case.outcome.for_method(self.operation.method)

    @cached_property
    def hook(self) -> FineTuningHook:
        return FineTuningHook(self.conn_id, page_size=PAGE_SIZE)

    @cached_property
    def bound(self) -> float:
        return self.operation.requests * request_budget(self.hook.settings) + SLACK_SECONDS

    def inject(self) -> None:
        for fault in self.case.faults(self.operation.method) if self.case.faults else []:
            self.emulator.inject(fault)

    def check_time(self, started: float) -> None:
        elapsed = time.monotonic() - started
        assert elapsed >= self.case.min_wait, f"took {elapsed:.2f} s, the server asked for {self.case.min_wait} s"
        assert elapsed <= self.bound, f"took {elapsed:.2f} s, the configuration allows {self.bound:.2f} s"

    def run(self, call: Callable[[], Any], expected: Outcome | None = None) -> Any:
        """``call()`` on the clock: its result, or ``RAISED`` once the one expected typed error was checked."""
        expected = self.outcome if expected is None else expected
        self.bound  # noqa: B018 - computed before the clock starts
        started = time.monotonic()
        try:
            result = call()
        except FineTuningError as error:
            self.check_time(started)
            check_error(error, expected)
            return RAISED
        self.check_time(started)
        assert expected.error is None, f"expected {expected.describe()}, got {result!r}"
        return result

    def seed(self, status: Mapping[str, str], **options: Any) -> str:
        return self.emulator.seed_job(self.vendor, status=status[self.vendor], runs_for=None, **options)


def run_get(s: Scenario) -> None:
    job_id = s.seed(RUNNING)
    s.inject()
    job = s.run(lambda: s.hook.get_job(job_id))
    if s.succeeds:
        assert (job.id, job.status) == (job_id, JobStatus.RUNNING)


def run_list(s: Scenario) -> None:
    seeded = {s.seed(RUNNING, age=timedelta(hours=n + 1)) for n in range(LIST_JOBS)}
    pages = s.hook.list_jobs()
    # Paged: the faults hit the pages after the first. Unpaged (one answer holds every job): they hit that answer.
    paged = s.case.faults and s.hook.dialect.jobs_paged
    first_page = [next(pages) for _ in range(PAGE_SIZE)] if paged else []
    s.inject()
    jobs = s.run(lambda: first_page + list(pages))
    if s.succeeds:
        ids = [job.id for job in jobs]
        assert len(ids) == LIST_JOBS, "no job lost or listed twice"
        assert set(ids) == seeded


def run_cancel(s: Scenario) -> None:
    job_id = s.seed(RUNNING)
    s.inject()
    job = s.run(lambda: s.hook.cancel_job(job_id))
    if s.succeeds:
        assert job.status is JobStatus.CANCELLED
    expected = CANCELLED if s.succeeds else RUNNING
    assert status_of(s.emulator, s.vendor, job_id) == expected[s.vendor]


def run_delete(s: Scenario) -> None:
    job_id = s.seed(FAILED)
    s.inject()
    s.run(lambda: s.hook.delete_job(job_id))
    assert (s.emulator.job(s.vendor, job_id) is None) is s.succeeds


def run_sensor_poke(s: Scenario) -> None:
    job_id = s.seed(SUCCEEDED)
    s.inject()
    # The sensor's contract: an error the vendor may recover from is logged and checked again at the next poke.
    transient = bool(s.outcome.retryable)
    sensor = FineTuningJobSensor(task_id="wait", job_id=job_id, conn_id=s.conn_id, poke_interval=0.05, deferrable=False)
    try:
        result = s.run(lambda: sensor.poke({}), SUCCESS if transient else None)
    finally:
        sensor.hook.close()
    if result is not RAISED:
        assert result.is_done is not transient
        if not transient:
            assert result.xcom_value["id"] == job_id


def run_cleanup(s: Scenario) -> None:
    jobs = {s.seed(RUNNING, age=STALE) for _ in range(CLEANUP_JOBS)}
    s.inject()
    run = Run()
    operator = CleanupFineTuningJobsOperator(
        task_id="cleanup", conn_id=s.conn_id, older_than=timedelta(hours=6), concurrency=CLEANUP_JOBS
    )
    per_job = s.case.faults is not None  # a server that never answers fails the listing instead
    expected = s.outcome
    if not s.succeeds and per_job:
        expected = Outcome(FineTuningError, says=f"Could not cancel {CLEANUP_JOBS} of {CLEANUP_JOBS}")
    s.run(lambda: run.execute(operator), expected)
    summary: dict[str, Any] | None = run.ti.xcoms.get(CLEANUP_SUMMARY_XCOM_KEY)
    if s.succeeds:
        assert summary is not None
        assert set(summary["acted_ids"]) == jobs
    elif per_job:
        assert summary is not None
        assert set(summary["failures"]) == jobs, "every job was tried and reported"
        assert all(s.case.outcome.says in message for message in summary["failures"].values())
    else:
        assert summary is None
    expected_status = CANCELLED if s.succeeds else RUNNING
    assert {status_of(s.emulator, s.vendor, job_id) for job_id in jobs} == {expected_status[s.vendor]}


async def run_trigger_poll(s: Scenario) -> None:
    job_id = s.seed(SUCCEEDED)
    s.inject()
    # One failed poll (after the transport's retries) ends the wait, so that the trigger's error is observable.
    trigger = FineTuningJobTrigger(s.conn_id, job_id, poll_interval=0.05, max_consecutive_errors=1)
    s.bound  # noqa: B018 - computed before the clock starts
    started = time.monotonic()
    async with asyncio.timeout(s.bound):
        event = await single_event(trigger)
    s.check_time(started)
    expected = s.outcome
    if expected.error is None:
        assert (event["status"], event["job"]["id"]) == ("success", job_id)
        return
    assert event["status"] == "error"
    error = event["error"]
    assert error["type"] == expected.error.__name__
    assert error["http_status"] == expected.http_status
    assert error["retryable"] is expected.retryable
    assert expected.says in event["message"]


RUNNERS: dict[str, Callable[[Scenario], None]] = {
    GET.id: run_get,
    LIST.id: run_list,
    CANCEL.id: run_cancel,
    DELETE.id: run_delete,
    SENSOR.id: run_sensor_poke,
    CLEANUP.id: run_cleanup,
}


def cells(operations: list[Operation]) -> list[Any]:
    params = []
    for operation in operations:
        for case in FAULTS:
            for vendor in (v for v in VENDORS if v in operation.vendors and v in case.vendors):
                marks = [
                    pytest.mark.reliability(
                        area="faults",
                        row=case.id,
                        label=case.label,
                        expect=case.outcome.describe(),
                        column=operation.name,
                        vendor=vendor,
                    )
                ]
                if case.known_bug:
                    marks.append(pytest.mark.xfail(strict=True, reason=case.known_bug))
                params.append(
                    pytest.param(operation, vendor, case, id=f"{operation.id}-{vendor}-{case.id}", marks=marks)
                )
    return params


@pytest.fixture
def make_scenario(
    request: pytest.FixtureRequest, emulator: FineTuningEmulator, make_connection: ConnectionFactory
) -> Callable[[Operation, str, FaultCase], Scenario]:
    def make(operation: Operation, vendor: str, case: FaultCase) -> Scenario:
        if case.faults is None:
            host = f"http://127.0.0.1:{request.getfixturevalue('silent_server')}{MOUNTS[vendor]}"
        else:
            host = emulator.url(vendor)
        conn_id = make_connection(f"ft_faults_{vendor}", CONN_TYPES[vendor], host=host, **{**EXTRAS, **case.extras})
        return Scenario(emulator, operation, vendor, case, conn_id)

    return make


@pytest.mark.parametrize(("operation", "vendor", "case"), cells([op for op in OPERATIONS if op.blocking]))
def test_fault(
    make_scenario: Callable[[Operation, str, FaultCase], Scenario], operation: Operation, vendor: str, case: FaultCase
) -> None:
    scenario = make_scenario(operation, vendor, case)
    try:
        RUNNERS[operation.id](scenario)
    finally:
        scenario.hook.close()


@pytest.mark.parametrize(("operation", "vendor", "case"), cells([TRIGGER]))
async def test_fault_in_trigger(
    make_scenario: Callable[[Operation, str, FaultCase], Scenario], operation: Operation, vendor: str, case: FaultCase
) -> None:
    await run_trigger_poll(make_scenario(operation, vendor, case))


@pytest.mark.reliability(area="checks", row="every fault kind of a flaky network is in the matrix")
def test_the_matrix_uses_every_fault_kind_of_the_emulator() -> None:
    # The hostile kinds (HOSTILE_FAULT_KINDS) have their own suites: test_hostile_*.py.
    used = {fault.kind for case in FAULTS if case.faults for fault in case.faults("GET")}
    assert used == CLASSIC_FAULT_KINDS - {"latency"}, "latency only slows an answer down; every other kind is a fault"


@pytest.mark.reliability(area="checks", row="every fault kind of a hostile server has a suite")
def test_every_hostile_fault_kind_is_tried_by_a_hostile_suite() -> None:
    suites = "".join(path.read_text() for path in Path(__file__).parent.glob("test_hostile_*.py"))
    untried = sorted(kind for kind in HOSTILE_FAULT_KINDS if f'"{kind}"' not in suites)
    assert untried == [], f"no test_hostile_*.py injects {untried}"

"""Deadlines: a server that drips its answer, or asks to wait past the caller's deadline, never stalls a task.

Two hostile behaviours, each on both vendors, through the blocking hook, ``aget_job`` and a trigger poll:

- ``drip``: the answer comes a piece at a time. Each attempt has a total deadline (``2 x timeout``: connect plus
  the whole answer), so a drip whose every piece arrives well within the read timeout is cut at that deadline, and
  an answer that stops short of its ``Content-Length`` at the read timeout. The call ends in one
  ``FineTuningTransportError`` no later than every attempt's deadline plus the backoffs between them, and (for a
  drip slower than the deadline) not before each attempt spent its whole deadline.
- ``Retry-After: 30`` on every answer (cap ``retry_after_max`` 60): the hook obeys it only within the caller's
  deadline, so ``wait_for_job(timeout=1)``, ``get_job(deadline=now + 1)`` and a trigger with a 1 s deadline end
  in about a second, not after 30 s of waiting (or 12 s, as ``wait_for_job`` did before waits were cut at the
  deadline).

Bounds are computed from the connection's configuration (``ClientSettings``) plus a fixed slack, never from how
fast this machine is.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ft.exceptions import (
    FineTuningApiError,
    FineTuningError,
    FineTuningTimeout,
    FineTuningTransportError,
)
from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
from airflow_provider_ft.transport import ClientSettings
from airflow_provider_ft.triggers.fine_tuning import FineTuningJobTrigger
from airflow_provider_ft_emulator import Fault, FineTuningEmulator
from tests.conftest import API_KEY, CONN_TYPES, ConnectionFactory
from tests.operators.conftest import RUNNING
from tests.reliability import lifecycle
from tests.reliability.conftest import single_event

VENDORS = ("dashscope", "openai", "azure")
AREA = "deadlines"
ALWAYS = 1_000
#: Seconds of connect and read timeout: an attempt's whole answer must arrive within twice that.
TIMEOUT = 0.2
#: A drip piece every this many seconds: a fifth of the read timeout, so that no single read times out and only
#: the attempt's total deadline can end the answer.
SLOW_PIECE = TIMEOUT / 5
#: Header lines added to a dripped head, so that the head alone takes several deadlines to arrive.
PADDING_HEADERS = {f"x-drip-padding-{index:02d}": "." for index in range(40)}
#: Added to every computed upper bound: thread start-up, the emulator's own work, a noisy shared machine.
SLACK_SECONDS = 2.0
#: Taken off every computed lower bound: clock granularity (the bound itself is exact, not a guess of speed).
EARLY_SECONDS = 0.02


# -- bounds from the configuration ------------------------------------------------------------------------------------


def backoff_budget(settings: ClientSettings) -> float:
    """Longest the waits between all attempts of one request may take when the server asks for none."""
    policy = settings.retry
    return sum(
        min(policy.backoff_base * 2.0**retry, policy.backoff_max) * (1 + policy.jitter)
        for retry in range(policy.max_retries)
    )


def attempts_of(settings: ClientSettings) -> int:
    return settings.retry.max_retries + 1


def upper_bound(settings: ClientSettings) -> float:
    """``(max_retries + 1) x 2 x timeout + backoff + slack``: every attempt spent its whole deadline."""
    return attempts_of(settings) * settings.attempt_seconds + backoff_budget(settings) + SLACK_SECONDS


def check_error(error: BaseException, expected: type[FineTuningError], says: str) -> None:
    assert type(error) is expected, f"expected {expected.__name__}, got {error!r}"
    assert says in str(error), f"{says!r} not in {str(error)!r}"
    assert API_KEY not in str(error)
    assert API_KEY not in repr(error)


# -- drips ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drip:
    """One way of dripping an answer, and when an attempt under it must end.

    :param lower: the shortest an attempt can last, in units of the settings (``attempt_seconds`` for a drip
        that only the total deadline ends, ``timeout`` for an answer cut at a read timeout)
    :param says: a fragment of the transport error's message
    :param reason: a fragment of the transport error's ``reason``
    :param retries: the ``max_retries`` it is tried with
    """

    id: str
    label: str
    variant: str
    interval: float
    lower: Callable[[ClientSettings], float]
    says: str
    reason: str
    headers: Mapping[str, str] = field(default_factory=dict)
    retries: tuple[int, ...] = (0, 1)

    def fault(self) -> Fault:
        return Fault(
            kind="drip",
            variant=self.variant,
            method="GET",
            interval=self.interval,
            headers=dict(self.headers),
            times=ALWAYS,
        )

    def check_time(self, settings: ClientSettings, elapsed: float) -> None:
        shortest = attempts_of(settings) * self.lower(settings) - EARLY_SECONDS
        longest = upper_bound(settings)
        assert elapsed >= shortest, f"ended after {elapsed:.3f} s, before its attempts could ({shortest:.3f} s)"
        assert elapsed <= longest, f"took {elapsed:.3f} s, the configuration allows {longest:.3f} s"


#: How the transport says an attempt's total deadline ended the answer, and a read timed out.
DEADLINE_SAYS, DEADLINE_REASON = "the answer was not complete within", "deadline"
TIMED_OUT = "Timeout"
DRIPS = [
    Drip(
        "drip-body",
        f"body one byte every {SLOW_PIECE:g} s (each within the read timeout)",
        variant="body",
        interval=SLOW_PIECE,
        lower=lambda s: s.attempt_seconds,
        says=DEADLINE_SAYS,
        reason=DEADLINE_REASON,
    ),
    Drip(
        "drip-headers",
        f"head (padded with {len(PADDING_HEADERS)} header lines) one line every {SLOW_PIECE:g} s",
        variant="headers",
        interval=SLOW_PIECE,
        lower=lambda s: s.attempt_seconds,
        says=DEADLINE_SAYS,
        reason=DEADLINE_REASON,
        headers=PADDING_HEADERS,
    ),
    Drip(
        "drip-content-length",
        "body 1 KiB short of its Content-Length, then silence",
        variant="content_length",
        interval=SLOW_PIECE,
        lower=lambda s: s.timeout,
        says=TIMED_OUT,
        reason=TIMED_OUT,
    ),
    Drip(
        "drip-body-stalled",
        f"body one byte every {4 * TIMEOUT:g} s (past the read timeout)",
        variant="body",
        interval=4 * TIMEOUT,
        lower=lambda s: s.timeout,
        says=TIMED_OUT,
        reason=TIMED_OUT,
        retries=(0,),
    ),
]


@dataclass
class DripScenario:
    emulator: FineTuningEmulator
    vendor: str
    drip: Drip
    conn_id: str
    job_id: str = ""

    @property
    def hook(self) -> FineTuningHook:
        return FineTuningHook(self.conn_id)

    def arm(self) -> None:
        self.job_id = self.emulator.seed_job(self.vendor, status=RUNNING[self.vendor], runs_for=None)
        self.emulator.inject(self.drip.fault())

    def check_attempts(self, settings: ClientSettings) -> None:
        sent = [request for request in self.emulator.requests if request.method == "GET"]
        assert len(sent) == attempts_of(settings), "one request per attempt, every attempt dripped"
        assert {request.fault for request in sent} == {"drip"}


def drip_cases(columns: tuple[str, ...]) -> list[Any]:
    params = []
    for column in columns:
        for drip in DRIPS:
            for retries in drip.retries:
                for vendor in VENDORS:
                    mark = pytest.mark.reliability(
                        area=AREA,
                        row=f"{drip.id}-retries-{retries}",
                        column=column,
                        vendor=vendor,
                        label=f"{drip.label}, max_retries {retries}",
                        expect=f"`FineTuningTransportError` within {retries + 1} x 2 x timeout + backoff",
                    )
                    params.append(
                        pytest.param(drip, retries, vendor, id=f"{column}-{drip.id}-r{retries}-{vendor}", marks=mark)
                    )
    return params


@pytest.fixture
def make_drip(
    emulator: FineTuningEmulator, make_connection: ConnectionFactory
) -> Callable[[Drip, int, str], DripScenario]:
    def make(drip: Drip, retries: int, vendor: str) -> DripScenario:
        conn_id = make_connection(
            f"ft_drip_{vendor}",
            CONN_TYPES[vendor],
            host=emulator.url(vendor),
            timeout=TIMEOUT,
            max_retries=retries,
            backoff_base=0.01,
        )
        scenario = DripScenario(emulator, vendor, drip, conn_id)
        scenario.arm()
        return scenario

    return make


def record_seconds(request: pytest.FixtureRequest, elapsed: float, bound: float) -> None:
    """Keep the figures for the report: how long the call took, and the bound it was held to."""
    request.node.user_properties.append(("seconds", round(elapsed, 3)))
    request.node.user_properties.append(("bound_seconds", round(bound, 3)))


def check_dripped(
    request: pytest.FixtureRequest,
    scenario: DripScenario,
    settings: ClientSettings,
    error: BaseException,
    elapsed: float,
) -> None:
    """A dripped answer ended in one transport error, for the reason the drip causes, after every attempt."""
    drip = scenario.drip
    record_seconds(request, elapsed, upper_bound(settings))
    check_error(error, FineTuningTransportError, drip.says)
    assert isinstance(error, FineTuningTransportError)
    assert drip.reason in error.reason
    assert error.attempts == attempts_of(settings)
    drip.check_time(settings, elapsed)
    scenario.check_attempts(settings)


@pytest.mark.parametrize(("drip", "retries", "vendor"), drip_cases(("get",)))
def test_drip_get(
    request: pytest.FixtureRequest,
    make_drip: Callable[[Drip, int, str], DripScenario],
    drip: Drip,
    retries: int,
    vendor: str,
) -> None:
    scenario = make_drip(drip, retries, vendor)
    hook = scenario.hook
    settings = hook.settings
    hook.transport  # noqa: B018 - the HTTP session is built before the clock starts
    started = time.monotonic()
    try:
        with pytest.raises(FineTuningError) as raised:
            hook.get_job(scenario.job_id)
        elapsed = time.monotonic() - started
    finally:
        hook.close()
    check_dripped(request, scenario, settings, raised.value, elapsed)


@pytest.mark.parametrize(("drip", "retries", "vendor"), drip_cases(("aget_job",)))
async def test_drip_aget_job(
    request: pytest.FixtureRequest,
    make_drip: Callable[[Drip, int, str], DripScenario],
    drip: Drip,
    retries: int,
    vendor: str,
) -> None:
    scenario = make_drip(drip, retries, vendor)
    hook = scenario.hook
    error: BaseException | None = None
    async with hook.async_transport() as transport:
        settings = hook.settings
        started = time.monotonic()
        try:
            job = await hook.aget_job(transport, scenario.job_id)
        except FineTuningError as raised:
            error = raised
        else:
            pytest.fail(f"a dripped answer was accepted: {job!r}")
        elapsed = time.monotonic() - started
    assert error is not None
    check_dripped(request, scenario, settings, error, elapsed)


@pytest.mark.parametrize(("drip", "retries", "vendor"), drip_cases(("trigger poll",)))
async def test_drip_trigger_poll(
    request: pytest.FixtureRequest,
    make_drip: Callable[[Drip, int, str], DripScenario],
    drip: Drip,
    retries: int,
    vendor: str,
) -> None:
    scenario = make_drip(drip, retries, vendor)
    settings = scenario.hook.settings
    # One failed poll (after the transport's retries) ends the wait, so that the transport's error is observable.
    trigger = FineTuningJobTrigger(scenario.conn_id, scenario.job_id, poll_interval=0.05, max_consecutive_errors=1)
    started = time.monotonic()
    async with asyncio.timeout(upper_bound(settings) + SLACK_SECONDS):
        event = await single_event(trigger)
    elapsed = time.monotonic() - started
    record_seconds(request, elapsed, upper_bound(settings))
    assert event["status"] == "error", event
    assert event["error"]["type"] == FineTuningTransportError.__name__
    assert event["error"]["retryable"] is True
    assert drip.says in event["message"]
    assert API_KEY not in json.dumps(event)
    drip.check_time(settings, elapsed)
    scenario.check_attempts(settings)


# -- Retry-After past the caller's deadline ---------------------------------------------------------------------------

#: What the server asks for on every answer, and the cap that lets it (the hook would wait the whole 30 s).
RETRY_AFTER = 30.0
RETRY_AFTER_EXTRAS: dict[str, float] = {
    "timeout": 0.5,
    "max_retries": 3,
    "backoff_base": 0.01,
    "retry_after_max": 60.0,
}
#: The caller's patience, in seconds.
PATIENCE = 1.0


def retry_after_case(column: str, vendor: str, expect: str) -> Any:
    return pytest.param(
        vendor,
        id=vendor,
        marks=pytest.mark.reliability(
            area=AREA,
            row="retry-after-past-deadline",
            column=column,
            vendor=vendor,
            label=f"429 with `Retry-After: {RETRY_AFTER:g}` on every answer, cap 60 s, caller's deadline 1 s",
            expect=expect,
        ),
    )


@dataclass
class RateLimited:
    emulator: FineTuningEmulator
    vendor: str
    conn_id: str
    job_id: str

    @property
    def hook(self) -> FineTuningHook:
        return FineTuningHook(self.conn_id)

    def bound(self, settings: ClientSettings) -> float:
        """The caller's patience, plus the one last look an attempt may take after it, plus slack."""
        return PATIENCE + settings.attempt_seconds + SLACK_SECONDS

    def polls(self) -> int:
        return sum(1 for request in self.emulator.requests if request.method == "GET" and request.status == 429)


@pytest.fixture
def make_rate_limited(emulator: FineTuningEmulator, make_connection: ConnectionFactory) -> Callable[[str], RateLimited]:
    def make(vendor: str) -> RateLimited:
        conn_id = make_connection(
            f"ft_retry_after_{vendor}", CONN_TYPES[vendor], host=emulator.url(vendor), **RETRY_AFTER_EXTRAS
        )
        job_id = emulator.seed_job(vendor, status=RUNNING[vendor], runs_for=None)
        emulator.inject(
            Fault(kind="status", status=429, method="GET", headers={"Retry-After": f"{RETRY_AFTER:g}"}, times=ALWAYS)
        )
        return RateLimited(emulator, vendor, conn_id, job_id)

    return make


def check_rate_limited(error: BaseException) -> None:
    check_error(error, FineTuningApiError, "HTTP 429")
    assert isinstance(error, FineTuningApiError)
    assert error.http_status == 429
    assert error.rate_limited is True
    assert error.retry_after == RETRY_AFTER


def timed(request: pytest.FixtureRequest, started: float, bound: float) -> float:
    elapsed = time.monotonic() - started
    record_seconds(request, elapsed, bound)
    assert elapsed <= bound, f"took {elapsed:.3f} s, the caller allowed {PATIENCE:g} s (bound {bound:.3f} s)"
    return elapsed


@pytest.mark.parametrize(
    "vendor", [retry_after_case("wait_for_job", v, "`FineTuningTimeout` after the timeout") for v in VENDORS]
)
def test_wait_for_job_ends_at_its_timeout_despite_retry_after(
    request: pytest.FixtureRequest, make_rate_limited: Callable[[str], RateLimited], vendor: str
) -> None:
    case = make_rate_limited(vendor)
    hook = case.hook
    bound = case.bound(hook.settings)
    started = time.monotonic()
    try:
        with pytest.raises(FineTuningError) as raised:
            hook.wait_for_job(case.job_id, poll_interval=0.1, timeout=PATIENCE)
    finally:
        hook.close()
    elapsed = timed(request, started, bound)
    check_error(raised.value, FineTuningTimeout, f"within {PATIENCE:g} s")
    assert elapsed >= PATIENCE - 0.1 - EARLY_SECONDS, "it gives up when the next poll would pass the timeout"
    assert case.polls() == 1, "after the 429 the account is paused: the later polls are held back, not sent"


@pytest.mark.parametrize("vendor", [retry_after_case("get", v, "`FineTuningApiError` (HTTP 429)") for v in VENDORS])
def test_get_job_gives_up_on_a_retry_after_past_its_deadline(
    request: pytest.FixtureRequest, make_rate_limited: Callable[[str], RateLimited], vendor: str
) -> None:
    case = make_rate_limited(vendor)
    hook = case.hook
    bound = case.bound(hook.settings)
    started = time.monotonic()
    try:
        with pytest.raises(FineTuningError) as raised:
            hook.get_job(case.job_id, deadline=time.monotonic() + PATIENCE)
    finally:
        hook.close()
    timed(request, started, bound)
    check_rate_limited(raised.value)
    assert case.polls() == 1, "a wait that would end past the deadline is not started"


@pytest.mark.parametrize(
    "vendor", [retry_after_case("aget_job", v, "`FineTuningApiError` (HTTP 429)") for v in VENDORS]
)
async def test_aget_job_gives_up_on_a_retry_after_past_its_deadline(
    request: pytest.FixtureRequest, make_rate_limited: Callable[[str], RateLimited], vendor: str
) -> None:
    case = make_rate_limited(vendor)
    hook = case.hook
    error: BaseException | None = None
    async with hook.async_transport() as transport:
        bound = case.bound(hook.settings)
        started = time.monotonic()
        try:
            await hook.aget_job(transport, case.job_id, deadline=time.monotonic() + PATIENCE)
        except FineTuningError as raised:
            error = raised
    timed(request, started, bound)
    assert error is not None, "a rate-limited read was accepted"
    check_rate_limited(error)
    assert case.polls() == 1, "a wait that would end past the deadline is not started"


@pytest.mark.parametrize("vendor", [retry_after_case("trigger", v, "one `timeout` event") for v in VENDORS])
async def test_trigger_fires_its_timeout_despite_retry_after(
    request: pytest.FixtureRequest, make_rate_limited: Callable[[str], RateLimited], vendor: str
) -> None:
    case = make_rate_limited(vendor)
    bound = case.bound(case.hook.settings)
    # No max_consecutive_errors: rate limits only slow polling down, the deadline ends it.
    trigger = FineTuningJobTrigger(case.conn_id, case.job_id, poll_interval=0.1, deadline=time.time() + PATIENCE)
    started = time.monotonic()
    event = await single_event(trigger)
    elapsed = timed(request, started, bound)
    assert event["status"] == "timeout", event
    assert event["job"] is None, "no poll could read the job"
    assert "did not reach a terminal state before the deadline" in event["message"]
    assert API_KEY not in json.dumps(event)
    assert elapsed >= PATIENCE - EARLY_SECONDS, "the timeout event comes at the deadline, not before"
    assert case.polls() == 1, "after the 429 the account is paused: the later polls are held back, not sent"


# -- the lifecycle endpoints: a dripped answer to a create or an upload, and to the files listing --------------------
#
# A drip carries the request out, then sends its answer too slowly: the create (or upload) made its job (or file),
# and the client cannot know. The attempt ends at its deadline, and the thing is looked for and found: the call
# succeeds with what the lost answer made, sent once. A dripped files listing ends the look, and no upload follows.

LIFECYCLE_DRIPS = [drip for drip in DRIPS if drip.id in ("drip-body", "drip-content-length")]
LOOK = "upload_file's look"
LIFECYCLE_COLUMNS = ("submit_job", "upload_file", LOOK)


def lifecycle_drip_cases() -> list[Any]:
    return [
        pytest.param(
            drip,
            column,
            vendor,
            id=f"{column}-{drip.id}-{vendor}",
            marks=pytest.mark.reliability(
                area=AREA,
                row=f"{drip.id}-{'look' if column == LOOK else 'made'}",
                column=column,
                vendor=vendor,
                label=(
                    f"{drip.label}, max_retries 0, to the files listing"
                    if column == LOOK
                    else f"{drip.label}, max_retries 0, to a create or upload that was carried out"
                ),
                expect=(
                    "`FineTuningTransportError`, no upload"
                    if column == LOOK
                    else "success: found by the look after it, made once, sent once"
                ),
            ),
        )
        for drip in LIFECYCLE_DRIPS
        for column in LIFECYCLE_COLUMNS
        for vendor in VENDORS
    ]


@pytest.mark.parametrize(("drip", "column", "vendor"), lifecycle_drip_cases())
def test_drip_lifecycle(
    emulator: FineTuningEmulator,
    make_connection: ConnectionFactory,
    tmp_path: Path,
    drip: Drip,
    column: str,
    vendor: str,
) -> None:
    conn_id = make_connection(
        f"ft_drip_{vendor}", CONN_TYPES[vendor], host=emulator.url(vendor), timeout=TIMEOUT, max_retries=0
    )
    file_id = emulator.seed_file(vendor, "seeded.jsonl", (json.dumps(lifecycle.RECORD) + "\n").encode())
    method, path = {
        "submit_job": ("POST", lifecycle.CREATE_PATHS[vendor]),
        "upload_file": ("POST", lifecycle.FILES_PATH),
        "upload_file's look": ("GET", lifecycle.FILES_PATH),
    }[column]
    emulator.inject(
        Fault(kind="drip", variant=drip.variant, interval=drip.interval, method=method, path=path, headers=drip.headers)
    )
    with closing(FineTuningHook(conn_id)) as hook:
        local = hook.check_training_file(lifecycle.write_training_file(tmp_path), lifecycle.spec_for(vendor))
        if column == "upload_file's look":
            with pytest.raises(FineTuningError) as raised:
                hook.upload_file(local, settle_delays=(0.0,))
            check_error(raised.value, FineTuningTransportError, drip.says)
            assert lifecycle.uploads(emulator) == [], "no upload after a look that could not be read"
            assert len(emulator.files(vendor)) == 1, "only the seeded file"
            return
        if column == "submit_job":
            submission = hook.submit_job(lifecycle.spec_for(vendor, file_id), lifecycle.IDENTITY, settle_delays=(0.0,))
            made, created = submission.job.id, submission.created
            sent = lifecycle.creates(emulator, vendor)
            stored = [job["id" if vendor != "dashscope" else "job_id"] for job in emulator.jobs(vendor)]
        else:
            remote, created = hook.upload_file(local, settle_delays=(0.0,))
            made = remote.id
            sent = lifecycle.uploads(emulator)
            stored = [file["id" if vendor != "dashscope" else "file_id"] for file in emulator.files(vendor)]
            stored.remove(file_id)
    assert [request.fault for request in sent] == ["drip"], "sent once; its dripped answer never repeated it"
    assert stored == [made], "exactly one made, and the call ended with it"
    assert not created, "found by the look after the lost answer"

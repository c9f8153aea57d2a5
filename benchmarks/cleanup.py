"""Benchmark 3: cleanup of 10,000 jobs by ``CleanupFineTuningJobsOperator`` against a sequential loop, and a
throttle episode.

Vendor: OpenAI (its cancel answers with the job). Before each scenario the emulator (own
process) is emptied and seeded with N running jobs created two days ago, and every call gets 20 ms of injected
latency (``Fault(kind="latency", delay=0.02)``). Each scenario is timed end to end (listing every job, selecting
the stale ones, cancelling them); afterwards the emulator's job list is checked: every seeded job must be
cancelled. Connections are set through ``AIRFLOW_CONN_*`` variables in a throwaway ``AIRFLOW_HOME``.

Throughput, 10,000 jobs (the operator: ``action="cancel"``, ``older_than=1 day``, ``max_jobs=N``, its ``execute``
called directly with a minimal context ``{"ti": <object with xcom_push>}``; it lists 100 jobs a page, the most
the vendors take, and the baseline lists with the same page size):

- the operator at concurrency 8, run first in the process (after an untimed warm-up on 10 jobs), with the growth
  of the process's resident memory during ``execute`` (peak minus before, sampled every 10 ms from
  ``/proc/self/statm``);
- the operator at its default ``concurrency``;
- sequential baseline: ``hook.list_jobs()``, ``select_stale_jobs`` with the same criteria, then ``hook.cancel_job``
  for one job after the other, with one hook (``hook.cancel_job`` reads the job, then cancels it: two calls);
- the same loop with the operator's own cancel of a listed job (the cancel request alone, one call: the listing
  has just shown the job unfinished), which separates what concurrency gains from what the saved read gains;
- the operator at concurrency 8 once more, under ``tracemalloc``: the peak of Python allocations during
  ``execute`` over what was allocated before (its time is slowed by the tracing and is not compared).

Throttle episode, 2,000 jobs, the operator at concurrency 8: some seconds into the run (2 s) the server starts
answering every request with HTTP 429 ``Retry-After: 10`` (``Fault(kind="status", status=429, headers=...,
times=MANY, delay=0.02)``, after clearing the latency fault so that the 429 comes first), and 30 s later the
faults are cleared and the latency fault injected again. Reported: failed jobs, time lost (the run's duration
minus the same run's without the episode) against the episode's length, and the requests the server received
during the episode. Run three ways: without the episode; with it, as shipped (every hook of an account shares one
``RateGate``: ``transport.ratelimit.gate_for``); with it, "today's" (``gate_for`` patched, in this process only, to
give each hook a private ``RateGate()``, so a 429 answered to one worker does not hold back the others). This
replaces the earlier scenario with a 429 (``Retry-After: 1``) on every 10th call.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import inspect
import os
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from benchmarks._common import allow_bytecode_cache, prepare_airflow_home, ratio
from benchmarks._emulator import EmulatorProcess
from benchmarks._report import Section, Table, Target, bench_main

if TYPE_CHECKING:
    from airflow.sdk import Context

VENDOR = "openai"
CONN_ID = "ft_bench_cleanup"
LATENCY = 0.02
OLDER_THAN = timedelta(days=1)
TARGET_SPEEDUP = 7.0
TARGET_MEMORY_MB = 100.0
MANY = 10**9
MB = 1024 * 1024
RATELIMIT_MODULE = "airflow_provider_ft.transport.ratelimit"


@dataclass(frozen=True)
class Episode:
    """A throttle episode: every request answered 429 for ``seconds``, starting ``start`` seconds into a run."""

    start: float
    seconds: float
    retry_after: int


@dataclass
class Outcome:
    """One scenario's result."""

    name: str
    seconds: float
    acted: int
    failed: int
    skipped: int
    cancelled_on_server: int
    requests: int
    rate_limited: int
    connections: int
    memory: dict[str, float] = field(default_factory=dict)
    episode_requests: int | None = None


class RecordingTI:
    """The part of a task instance the operator's ``execute`` uses."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


# -- memory --------------------------------------------------------------------------------------------------


def resident_bytes() -> int | None:
    """This process's resident set size now (Linux ``/proc/self/statm``), or ``None`` where that is unknown."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


@contextlib.contextmanager
def rss_growth(found: dict[str, float], interval: float = 0.01) -> Iterator[None]:
    """Store in ``found["rss_mb"]`` how far the resident set grew above its size at entry, sampled every
    ``interval`` seconds by a thread of its own."""
    gc.collect()
    before = resident_bytes()
    if before is None:
        yield
        return
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(interval):
            peak = max(peak, resident_bytes() or 0)

    sampler = threading.Thread(target=sample, name="rss-sampler", daemon=True)
    sampler.start()
    try:
        yield
    finally:
        done.set()
        sampler.join()
        peak = max(peak, resident_bytes() or 0)
        found["rss_mb"] = (peak - before) / MB


@contextlib.contextmanager
def traced_growth(found: dict[str, float]) -> Iterator[None]:
    """Store in ``found["traced_mb"]`` the peak of Python allocations above those at entry (``tracemalloc``)."""
    gc.collect()
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        yield
        _, peak = tracemalloc.get_traced_memory()
        found["traced_mb"] = (peak - start) / MB
    finally:
        tracemalloc.stop()


# -- the contenders ------------------------------------------------------------------------------------------


def sequential(conn_id: str, *, operators_cancel: bool = False) -> dict[str, int]:
    """The baseline: list, select like the operator, then cancel one job after the other with one hook:
    ``hook.cancel_job`` (a read, then the cancel), or with ``operators_cancel`` the operator's own cancel of a
    listed job (the cancel alone)."""
    from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
    from airflow_provider_ft.operators import cleanup
    from airflow_provider_ft.operators._cleanup import DEFAULT_STATUSES, CleanupCriteria, select_stale_jobs

    hook = FineTuningHook(conn_id, page_size=cleanup.LIST_PAGE_SIZE)
    criteria = CleanupCriteria(statuses=DEFAULT_STATUSES["cancel"], older_than=OLDER_THAN)
    stale = select_stale_jobs(hook.list_jobs(), criteria, datetime.now(UTC)).matched
    failed = 0
    for job in stale:
        try:
            if operators_cancel:
                outcome = cleanup._cancel(hook, job.id)
                failed += outcome.kind != "acted"
            else:
                hook.cancel_job(job.id)
        except Exception:
            failed += 1
    hook.close()
    return {"acted": len(stale) - failed, "failed": failed, "skipped": 0}


def operator(
    conn_id: str,
    concurrency: int | None,
    jobs: int,
    memory: Callable[[dict[str, float]], contextlib.AbstractContextManager[None]] | None = None,
    found: dict[str, float] | None = None,
) -> dict[str, int]:
    """``execute`` of the operator; with ``memory``, inside that context (which writes into ``found``)."""
    from airflow_provider_ft.operators.cleanup import CleanupFineTuningJobsOperator

    options: dict[str, Any] = {} if concurrency is None else {"concurrency": concurrency}
    task = CleanupFineTuningJobsOperator(
        task_id=f"cleanup_{concurrency}", conn_id=conn_id, older_than=OLDER_THAN, max_jobs=jobs, **options
    )
    ti = RecordingTI()
    measuring = memory(found if found is not None else {}) if memory else contextlib.nullcontext()
    try:
        with measuring:
            summary = task.execute(cast("Context", {"ti": ti}))
    except Exception as error:  # it fails the task when a job failed, after pushing the summary
        print(f"operator raised: {error}")
        summary = ti.xcom.get("cleanup_summary") or {"acted": 0, "failed": jobs, "skipped": 0}
    return {key: int(summary[key]) for key in ("acted", "failed", "skipped")}


def default_concurrency() -> int:
    from airflow_provider_ft.operators.cleanup import CleanupFineTuningJobsOperator

    return int(inspect.signature(CleanupFineTuningJobsOperator.__init__).parameters["concurrency"].default)


# -- "today's": one gate per hook ------------------------------------------------------------------------------


def ratelimit_module() -> ModuleType | None:
    """``airflow_provider_ft.transport.ratelimit``, or ``None`` while it does not exist."""
    try:
        return importlib.import_module(RATELIMIT_MODULE)
    except ImportError:
        return None


@contextlib.contextmanager
def private_gates() -> Iterator[None]:
    """``gate_for`` patched so that each hook gets a ``RateGate()`` of its own (no sharing), in this process only:
    in ``_ratelimit`` and in every module of the package that imported the name itself."""
    module = ratelimit_module()
    if module is None:
        raise RuntimeError(f"{RATELIMIT_MODULE} does not exist yet")
    original = module.gate_for
    rate_gate = module.RateGate

    def private_gate(settings: object) -> object:
        return rate_gate()

    holders = [module] + [
        found
        for name, found in list(sys.modules.items())
        if name.startswith("airflow_provider_ft.") and getattr(found, "gate_for", None) is original
    ]
    for holder in holders:
        holder.gate_for = private_gate  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for holder in holders:
            holder.gate_for = original  # type: ignore[attr-defined]


# -- scenarios -------------------------------------------------------------------------------------------------


class EpisodeDriver:
    """Starts and ends a throttle episode on the emulator from a thread of its own, while the main thread runs.

    Only this thread talks to the emulator process until ``join`` returns.
    """

    def __init__(self, emulator: EmulatorProcess, episode: Episode) -> None:
        self.emulator = emulator
        self.episode = episode
        self.requests_during = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._drive, name="throttle-episode", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self._thread.join()
        if self.error is not None:
            raise RuntimeError(f"the throttle episode failed: {self.error}") from self.error

    def _drive(self) -> None:
        try:
            time.sleep(self.episode.start)
            self.emulator.clear_faults()
            self.emulator.inject(
                "status",
                status=429,
                headers={"Retry-After": str(self.episode.retry_after)},
                times=MANY,
                delay=LATENCY,
            )
            before = self.emulator.request_count()
            time.sleep(self.episode.seconds)
            self.emulator.clear_faults()
            self.emulator.inject("latency", delay=LATENCY, times=MANY)
            self.requests_during = self.emulator.request_count() - before
        except BaseException as error:
            self.error = error


def scenario(
    emulator: EmulatorProcess,
    name: str,
    jobs: int,
    action: Callable[[], dict[str, int]],
    episode: Episode | None = None,
    memory: dict[str, float] | None = None,
) -> Outcome:
    emulator.reset()
    emulator.seed_jobs(VENDOR, jobs, status="running", age=2 * 86400, runs_for=None)
    emulator.inject("latency", delay=LATENCY, times=MANY)
    opened = emulator.connections_opened()
    driver = EpisodeDriver(emulator, episode) if episode else None
    started = time.perf_counter()
    if driver:
        driver.start()
    counts = action()
    seconds = time.perf_counter() - started
    if driver:
        driver.join()
    statuses = emulator.status_counts()
    cancelled = sum(1 for job in emulator.jobs(VENDOR) if job["status"] == "cancelled")
    print(f"{name}: {seconds:.2f} s, {counts}, cancelled on server {cancelled}, statuses {statuses}, {memory}")
    return Outcome(
        name,
        seconds,
        counts["acted"],
        counts["failed"],
        counts["skipped"],
        cancelled,
        sum(statuses.values()),
        statuses.get("429", 0),
        emulator.connections_opened() - opened,
        memory=dict(memory or {}),
        episode_requests=driver.requests_during if driver else None,
    )


def outcomes_table(outcomes: list[Outcome], jobs: int, baseline: Outcome) -> Table:
    table = Table(
        f"{jobs:,} stale OpenAI jobs, 20 ms latency per call",
        [
            "Scenario",
            "Seconds",
            "Jobs/s",
            "Speed-up vs sequential",
            "Acted",
            "Failed",
            "Skipped",
            "Cancelled on server",
            "Requests",
            "TCP connections",
            "Memory growth during execute",
        ],
    )
    for found in outcomes:
        table.add(
            found.name,
            f"{found.seconds:.2f}",
            f"{jobs / found.seconds:.0f}",
            ratio(baseline.seconds / found.seconds),
            found.acted,
            found.failed,
            found.skipped,
            found.cancelled_on_server,
            found.requests,
            found.connections,
            describe_memory(found.memory) or "-",
        )
    return table


def describe_memory(memory: dict[str, float]) -> str:
    parts = []
    if "traced_mb" in memory:
        parts.append(f"tracemalloc peak {memory['traced_mb']:.1f} MB")
    if "rss_mb" in memory:
        parts.append(f"RSS +{memory['rss_mb']:.1f} MB")
    return ", ".join(parts)


def episode_table(outcomes: list[Outcome], jobs: int, episode: Episode, calm: Outcome) -> Table:
    table = Table(
        f"Throttle episode: {jobs:,} stale OpenAI jobs, concurrency 8, every request answered 429 "
        f"(Retry-After: {episode.retry_after}) for {episode.seconds:g} s from {episode.start:g} s into the run",
        [
            "Scenario",
            "Seconds",
            "Time lost vs no episode",
            "Episode",
            "Requests during the episode",
            "429s",
            "Requests",
            "Acted",
            "Failed",
            "Skipped",
            "Cancelled on server",
        ],
    )
    for found in outcomes:
        lost = "-" if found is calm else f"{found.seconds - calm.seconds:.1f} s"
        table.add(
            found.name,
            f"{found.seconds:.2f}",
            lost,
            "-" if found.episode_requests is None else f"{episode.seconds:g} s",
            "-" if found.episode_requests is None else found.episode_requests,
            found.rate_limited,
            found.requests,
            found.acted,
            found.failed,
            found.skipped,
            found.cancelled_on_server,
        )
    return table


def run(smoke: bool) -> Section:
    allow_bytecode_cache()
    prepare_airflow_home()
    jobs, throttled_jobs = (100, 100) if smoke else (10_000, 2_000)
    episode = (
        Episode(start=0.3, seconds=2.0, retry_after=1) if smoke else Episode(start=2.0, seconds=30.0, retry_after=10)
    )
    section = Section("cleanup", "3. Cleanup: 10,000 jobs vs a sequential loop, and a throttle episode", __doc__ or "")
    default = default_concurrency()
    # Imports off the clock of the first scenario.
    import airflow_provider_ft.hooks.fine_tuning
    import airflow_provider_ft.operators.cleanup  # noqa: F401

    with EmulatorProcess() as emulator:
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = emulator.connection_uri(VENDOR)
        # Warm-up, untimed: the first connection read and log set-up stay off the clock and the memory figures.
        scenario(emulator, "warm-up (not reported)", 10, lambda: operator(CONN_ID, 8, 10))
        rss: dict[str, float] = {}
        traced: dict[str, float] = {}
        eight = scenario(
            emulator, "operator, concurrency 8", jobs, lambda: operator(CONN_ID, 8, jobs, rss_growth, rss), memory=rss
        )
        default_run = scenario(
            emulator, f"operator, default concurrency ({default})", jobs, lambda: operator(CONN_ID, None, jobs)
        )
        sequential_run = scenario(emulator, "sequential hook.cancel_job loop", jobs, lambda: sequential(CONN_ID))
        one_call = scenario(
            emulator,
            "sequential loop with the operator's cancel (one call per job)",
            jobs,
            lambda: sequential(CONN_ID, operators_cancel=True),
        )
        traced_run = scenario(
            emulator,
            "operator, concurrency 8, under tracemalloc (memory only)",
            jobs,
            lambda: operator(CONN_ID, 8, jobs, traced_growth, traced),
            memory=traced,
        )
        throughput = [sequential_run, one_call, default_run, eight, traced_run]
        section.tables.append(outcomes_table(throughput, jobs, sequential_run))
        add_throughput_targets(section, throughput, jobs)
        add_episode(section, emulator, throttled_jobs, episode)
    if smoke:
        section.notes.append(
            f"Smoke mode: {jobs} jobs instead of 10,000; the episode: {throttled_jobs} jobs, {episode.seconds:g} s of "
            f"429 with Retry-After {episode.retry_after} from {episode.start:g} s."
        )
    return section


def add_throughput_targets(section: Section, outcomes: list[Outcome], jobs: int) -> None:
    sequential_run, one_call, default_run, eight, traced_run = outcomes
    speedup = sequential_run.seconds / eight.seconds
    section.targets.append(
        Target(
            f"Concurrency 8 vs sequential, {jobs:,} jobs",
            f"{ratio(speedup)} ({sequential_run.seconds:.1f} s -> {eight.seconds:.1f} s)",
            f">= {TARGET_SPEEDUP:.0f}x",
            speedup >= TARGET_SPEEDUP,
            "" if speedup >= TARGET_SPEEDUP else "the listing's pages come one after the other; client CPU on 2 cores",
        )
    )
    section.notes.append(
        f"Of the speed-up, concurrency alone (the sequential loop with the operator's one-call cancel vs the "
        f"operator at 8): {ratio(one_call.seconds / eight.seconds)}; the rest is the read before each cancel that "
        f"the operator does not send ({sequential_run.requests} requests in the `hook.cancel_job` loop, "
        f"{eight.requests} by the operator)."
    )
    for found in (one_call, default_run, eight, traced_run):
        clean = found.failed == 0 and found.cancelled_on_server == jobs
        section.targets.append(
            Target(
                f"Zero failed jobs: {found.name}",
                f"failed {found.failed}, cancelled on server {found.cancelled_on_server}/{jobs}",
                "0 failed, all cancelled",
                clean,
            )
        )
    memory = {**eight.memory, **traced_run.memory}
    growth = max(memory.values(), default=float("nan"))
    section.targets.append(
        Target(
            f"Memory growth during the operator's execute, {jobs:,} jobs",
            describe_memory(memory) or "not measured",
            f"< {TARGET_MEMORY_MB:.0f} MB",
            bool(memory) and growth < TARGET_MEMORY_MB,
            "" if bool(memory) and growth < TARGET_MEMORY_MB else "see the memory column",
        )
    )


def add_episode(section: Section, emulator: EmulatorProcess, jobs: int, episode: Episode) -> None:
    calm = scenario(emulator, "operator, concurrency 8, no episode", jobs, lambda: operator(CONN_ID, 8, jobs))
    outcomes = [calm]
    ours = scenario(
        emulator, "ours: one RateGate per account", jobs, lambda: operator(CONN_ID, 8, jobs), episode=episode
    )
    outcomes.append(ours)
    if ratelimit_module() is None:
        section.notes.append(
            f"{RATELIMIT_MODULE} does not exist in this tree yet: the episode ran once, as shipped, with no "
            '"today\'s" comparison.'
        )
    else:

        def todays() -> dict[str, int]:
            with private_gates():
                return operator(CONN_ID, 8, jobs)

        outcomes.append(scenario(emulator, "today's: a RateGate per hook", jobs, todays, episode=episode))
    section.tables.append(episode_table(outcomes, jobs, episode, calm))
    for found in outcomes[1:]:
        clean = found.failed == 0 and found.cancelled_on_server == jobs
        lost = found.seconds - calm.seconds
        section.targets.append(
            Target(
                f"Throttle episode, {found.name}: zero failed jobs",
                f"failed {found.failed}, cancelled on server {found.cancelled_on_server}/{jobs}; time lost "
                f"{lost:.1f} s for a {episode.seconds:g} s episode; {found.episode_requests} requests during it",
                "0 failed, all cancelled",
                clean,
            )
        )


if __name__ == "__main__":
    raise SystemExit(bench_main(run))

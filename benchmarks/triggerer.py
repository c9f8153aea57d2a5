"""Benchmark 4: triggerer scale (issue 13): 5,000 ``FineTuningJobTrigger`` runs in one event loop, a throttle
episode, and triggers that wait for the same jobs.

The emulator serves in its own process and delays every answer: 200 ms for every 4th request, 100 ms for every
3rd of the others, 50 ms for the rest (mean 100 ms). Each scenario runs in a fresh Python process (so that its
peak RSS and its CPU are its own): it imports everything, says it is ready, and only then does the parent empty the
emulator, seed the jobs (so that job lifetimes count from the start of the waiting, not from the imports) and hand
it the job ids. All its waiters then start in the same loop iteration, next to a ticker coroutine that sleeps
10 ms and records how late it wakes up (the event-loop lag). Two triggers are compared in every part, measured in
the same run:

- *shipped*: ``airflow_provider_ft.triggers.fine_tuning.FineTuningJobTrigger`` as the package has it now;
- *today's*: the trigger and the asyncio transport as they were at commit b8e40c2, frozen in
  ``benchmarks/_baseline`` (one ``httpx.AsyncClient`` per trigger, each trigger polling on its own from the
  moment it starts, retries and ``Retry-After`` waits per request).

Parts:

1. Loop lag: N triggers (default arguments but ``poll_interval``; ``log_events`` on, as users get it), one job
   each, the jobs finishing spread over a window after seeding. Also two baselines that use the blocking hook
   (``requests``), one hook per waiter: ``asyncio.to_thread(hook.get_job)`` in the loop's default executor, and
   ``hook.get_job`` called straight inside ``async def`` (the pattern some official triggers use), which stalls
   the whole loop on every call and so runs under a short time cap, reporting how far it got. Reported:
   completions, event-loop lag (per tick and over time, see the notes), peak RSS, requests (job GETs and event
   GETs) and TCP connections the emulator saw, this process's CPU per request, CPython's garbage collections
   (``gc.callbacks``: full collections, time in all collections, the longest one) and the worst second of the run
   (lag, CPU used, polls started, time in garbage collection) to show what limits the lag. Two diagnostic
   scenarios size what the collector costs (they are not the verdict): the shipped trigger with ``gc.freeze()``
   after the imports and setup, just before the waiters start (full collections then skip everything that existed
   before), and with ``gc.disable()`` at the same point.
2. Client choice (``_httpx_study``, its own process, against a trivial loopback server): CPU per request and wall
   time of raw asyncio streams, an ``httpx.AsyncClient`` per task, one shared client with and without a
   semaphore, and a pool of single-connection clients, at 8 and 32 concurrent tasks.
3. Throttle episode: N triggers polling every few seconds; some seconds in, the emulator answers every request
   with 429 and ``Retry-After`` for a while (faults cleared and latency re-injected after). Requests the emulator
   received during the episode (and how many were 429), and for each trigger the time from the episode's end to
   its first successful poll (recorded by wrapping ``FineTuningHook.apoll_job`` in the scenario process), and the
   garbage collections as in part 1. The jobs finish after the episode.
4. Coalesced polls: triggers that wait for the same jobs (several per job): job GETs and event GETs the emulator
   received in each poll interval.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks._common import allow_bytecode_cache, median, percentile, prepare_airflow_home
from benchmarks._emulator import EmulatorProcess, Tally
from benchmarks._report import Section, Table, Target, bench_main

VENDOR = "openai"
CONN_ID = "ft_bench_triggerer"
TICK = 0.01
MANY = 10**9
READY = "ready"
TARGET_LAG_MS = 50.0
TARGET_RSS_MB = 400.0
SCENARIOS = {
    "shipped": "FineTuningJobTrigger as shipped",
    "today": "today's trigger (b8e40c2 copy)",
    "to_thread": "baseline: asyncio.to_thread(hook.get_job)",
    "blocking": "baseline: blocking hook.get_job inside async def",
    "frozen": "diagnostic: shipped, heap frozen at start",
    "nogc": "diagnostic: shipped, gc disabled",
}
TRIGGERS = ("shipped", "today")
#: Diagnostic scenarios: the shipped trigger with the garbage collector changed just before the waiters start.
GC_MODES = {"frozen": "gc.freeze()", "nogc": "gc.disable()"}


@dataclass(frozen=True)
class LagPlan:
    """Part 1: N triggers, one job each."""

    waiters: int
    poll_interval: float
    finish_from: float
    finish_to: float
    cap: float
    blocking_cap: float


@dataclass(frozen=True)
class ThrottlePlan:
    """Part 3: the 429 episode (times from the moment the waiters start)."""

    waiters: int
    poll_interval: float
    episode_start: float
    episode_seconds: float
    retry_after: float
    finish_after_episode: float
    cap: float

    @property
    def episode_end(self) -> float:
        return self.episode_start + self.episode_seconds


@dataclass(frozen=True)
class CoalescePlan:
    """Part 4: several triggers per job."""

    jobs: int
    per_job: int
    poll_interval: float
    intervals: int
    cap: float


@dataclass(frozen=True)
class Plan:
    lag: LagPlan
    throttle: ThrottlePlan
    coalesce: CoalescePlan


FULL = Plan(
    lag=LagPlan(waiters=5000, poll_interval=30.0, finish_from=45.0, finish_to=90.0, cap=240.0, blocking_cap=30.0),
    throttle=ThrottlePlan(
        waiters=1000,
        poll_interval=5.0,
        episode_start=10.0,
        episode_seconds=30.0,
        retry_after=10,
        finish_after_episode=20.0,
        cap=150.0,
    ),
    coalesce=CoalescePlan(jobs=10, per_job=10, poll_interval=5.0, intervals=4, cap=90.0),
)
SMOKE = Plan(
    lag=LagPlan(waiters=40, poll_interval=0.3, finish_from=0.5, finish_to=1.0, cap=15.0, blocking_cap=0.5),
    throttle=ThrottlePlan(
        waiters=20,
        poll_interval=0.3,
        episode_start=0.3,
        episode_seconds=1.0,
        retry_after=0.5,
        finish_after_episode=0.5,
        cap=15.0,
    ),
    coalesce=CoalescePlan(jobs=2, per_job=5, poll_interval=0.3, intervals=3, cap=15.0),
)


@dataclass
class Result:
    """What one scenario's process measured (and, after ``parent_*``, what the emulator saw)."""

    part: str
    scenario: str
    waiters: int
    completed: int
    capped: int
    errors: int
    seconds: float
    completion_p50: float
    completion_max: float
    lag_p50_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    lag_time_p99_ms: float
    stalled_seconds: float
    cpu_seconds: float
    ticks: int
    rss_start_mb: float
    rss_peak_mb: float
    polls_ok: int
    polls_failed: int
    worst_second: dict[str, float]
    successes: list[tuple[str, float]] = field(default_factory=list)
    first_error: str = ""
    started_at: float = 0.0
    requests: int = 0
    job_gets: int = 0
    event_gets: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    connections: int = 0
    log_lines: int = 0
    gc_collections: dict[str, int] = field(default_factory=dict)
    gc_seconds: float = 0.0
    gc_longest_ms: float = 0.0
    gc_objects: int = 0

    @property
    def gc_full(self) -> int:
        return self.gc_collections.get("2", 0)

    @property
    def cpu_ms_per_request(self) -> float:
        return self.cpu_seconds / max(self.requests, 1) * 1e3


# -- the scenario process ----------------------------------------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_weighted_percentile(lags: list[float], fraction: float) -> float:
    """The lag a look at a random moment of the run would see: each tick weighted by how long it lasted.

    A stalled loop records one late tick per stall however long the stall, so per-tick percentiles hide stalls.
    """
    ticks = sorted((lag, TICK + lag) for lag in lags)
    total = sum(length for _, length in ticks)
    seen = 0.0
    for lag, length in ticks:
        seen += length
        if seen >= fraction * total:
            return lag
    return ticks[-1][0] if ticks else float("nan")


class GcLog:
    """Times every collection of CPython's garbage collector (``gc.callbacks``, "start" to "stop")."""

    def __init__(self) -> None:
        self.collections: dict[str, int] = {}
        self.spans: list[tuple[float, float]] = []  # (start, seconds) of every collection
        self.longest = 0.0
        self.longest_full = 0.0  # the longest generation-2 (full) collection
        self.full_spans: list[tuple[float, float]] = []  # (start, seconds) of every full collection
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._started = now
            return
        seconds = now - self._started
        generation = str(info["generation"])
        self.collections[generation] = self.collections.get(generation, 0) + 1
        self.spans.append((self._started, seconds))
        self.longest = max(self.longest, seconds)
        if generation == "2":
            self.longest_full = max(self.longest_full, seconds)
            self.full_spans.append((self._started, seconds))

    @property
    def seconds(self) -> float:
        return sum(seconds for _, seconds in self.spans)

    @contextmanager
    def recording(self) -> Iterator[None]:
        gc.callbacks.append(self)
        try:
            yield
        finally:
            gc.callbacks.remove(self)


def tracked_objects() -> int:
    """Objects the garbage collector tracks, the frozen ones (which full collections skip) included."""
    return len(gc.get_objects()) + gc.get_freeze_count()


class PollLog:
    """Wraps ``FineTuningHook.apoll_job`` (which both triggers call once per poll) to record every poll."""

    def __init__(self, keep_successes: bool) -> None:
        self.keep_successes = keep_successes
        self.ok = 0
        self.failed = 0
        self.started: list[float] = []
        self.successes: list[tuple[str, float]] = []

    def install(self) -> None:
        from airflow_provider_ft.hooks.fine_tuning import FineTuningHook

        original = FineTuningHook.apoll_job
        record = self

        async def apoll_job(hook: FineTuningHook, transport: Any, job_id: str, **kwargs: Any) -> Any:
            record.started.append(time.perf_counter())
            polled = await original(hook, transport, job_id, **kwargs)
            if isinstance(polled, Exception):
                record.failed += 1
            else:
                record.ok += 1
                if record.keep_successes:
                    record.successes.append((job_id, time.monotonic()))
            return polled

        FineTuningHook.apoll_job = apoll_job  # type: ignore[method-assign,assignment]


def waiter_factory(scenario: str, poll: float, deadline: float, polls: PollLog) -> Callable[[str], Awaitable[str]]:
    """A coroutine function that waits for one job the way ``scenario`` says; it returns how it ended."""
    from airflow_provider_ft.hooks.fine_tuning import FineTuningHook

    if scenario in TRIGGERS or scenario in GC_MODES:
        if scenario != "today":
            from airflow_provider_ft.triggers.fine_tuning import FineTuningJobTrigger as Shipped

            trigger_class: Any = Shipped
        else:
            from benchmarks._baseline.trigger import FineTuningJobTrigger as Today

            trigger_class = Today

        async def trigger(job_id: str) -> str:
            async for event in trigger_class(CONN_ID, job_id, poll_interval=poll).run():
                status = str(event.payload["status"])
                return status if status != "success" else "success"
            return "no event"

        return trigger

    async def polling(job_id: str) -> str:
        hook = FineTuningHook(CONN_ID)
        try:
            while time.monotonic() < deadline:
                polls.started.append(time.perf_counter())
                if scenario == "to_thread":
                    job = await asyncio.to_thread(hook.get_job, job_id)
                else:
                    job = hook.get_job(job_id)  # blocks the loop: the point of this baseline
                polls.ok += 1
                if job.is_terminal:
                    return "success"
                await asyncio.sleep(poll)
            return "capped"
        finally:
            hook.close()

    return polling


def machine_busy_seconds() -> float:
    """CPU seconds all cores of the machine have been busy since boot (``/proc/stat``; NaN elsewhere)."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


Tick = tuple[float, float, float, float]


async def ticker(ticks: list[Tick], stop: asyncio.Event) -> None:
    """Record (when, lag, process CPU, machine CPU) of every 10 ms sleep until ``stop``."""
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(TICK)
        now = time.perf_counter()
        ticks.append((now, now - started - TICK, time.process_time(), machine_busy_seconds()))


def worst_second(
    ticks: list[Tick],
    polls: list[float],
    started: float,
    cpu_started: tuple[float, float],
    gcs: list[tuple[float, float]],
) -> dict[str, float]:
    """The 1-second window (ending at a tick) with the most lag: its lag, the CPU used, the polls started and the
    time spent in garbage collections (the parts of ``gcs``, (start, seconds) spans, inside the window)."""
    best: dict[str, float] = {"at": float("nan"), "lag_s": 0.0, "cpu_s": 0.0, "polls": 0.0}
    low = 0
    ordered = sorted(polls)
    for high, (now, _, cpu, machine) in enumerate(ticks):
        while ticks[low][0] < now - 1.0:
            low += 1
        lag = sum(tick[1] for tick in ticks[low : high + 1])
        if lag > best["lag_s"]:
            since = ticks[low - 1] if low else (started, 0.0, *cpu_started)
            window_start = since[0]
            started_polls = sum(1 for poll in ordered if window_start <= poll <= now)
            best = {
                "at": window_start - started,
                "lag_s": lag,
                "cpu_s": cpu - since[2],
                "machine_cpu_s": machine - since[3],
                "wall_s": now - window_start,
                "polls": float(started_polls),
                "gc_s": sum(max(min(at + length, now) - max(at, window_start), 0.0) for at, length in gcs if at <= now),
            }
    return best


async def run_waiters(part: str, scenario: str, job_ids: list[str], poll: float, cap: float, polls: PollLog) -> Result:
    deadline = time.monotonic() + cap
    wait = waiter_factory(scenario, poll, deadline, polls)
    ticks: list[Tick] = []
    finished: list[float] = []
    objects: list[int] = []
    stop = asyncio.Event()
    gcs = GcLog()
    if scenario == "frozen":
        gc.freeze()  # everything imported and set up so far is left out of every collection from now on
    elif scenario == "nogc":
        gc.disable()
    rss_start = rss_mb()
    started, cpu_started, started_at = time.perf_counter(), time.process_time(), time.monotonic()
    machine_started = machine_busy_seconds()
    tick = asyncio.create_task(ticker(ticks, stop))

    async def one(job_id: str) -> str:
        try:
            async with asyncio.timeout_at(asyncio.get_running_loop().time() + cap):
                outcome = await wait(job_id)
        except TimeoutError:
            return "capped"
        except Exception as error:
            return f"error: {type(error).__name__}: {error}"
        finished.append(time.perf_counter() - started)
        if not objects:  # mid-run: the first waiter done, every other trigger still alive
            objects.append(tracked_objects())
        return outcome

    with gcs.recording():
        outcomes = await asyncio.gather(*(one(job_id) for job_id in job_ids))
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    stop.set()
    await tick
    if not objects:
        objects.append(tracked_objects())
    lags = [tick[1] for tick in ticks]
    errors = [outcome for outcome in outcomes if outcome not in ("success", "capped")]
    return Result(
        part=part,
        scenario=scenario,
        waiters=len(job_ids),
        completed=sum(outcome == "success" for outcome in outcomes),
        capped=sum(outcome == "capped" for outcome in outcomes),
        errors=len(errors),
        seconds=seconds,
        completion_p50=median(finished),
        completion_max=max(finished, default=float("nan")),
        lag_p50_ms=percentile(lags, 0.5) * 1e3,
        lag_p99_ms=percentile(lags, 0.99) * 1e3,
        lag_max_ms=max(lags, default=float("nan")) * 1e3,
        lag_time_p99_ms=time_weighted_percentile(lags, 0.99) * 1e3,
        stalled_seconds=sum(lag for lag in lags if lag > TARGET_LAG_MS / 1e3),
        cpu_seconds=cpu_seconds,
        ticks=len(lags),
        rss_start_mb=rss_start,
        rss_peak_mb=peak_rss_mb(),
        polls_ok=polls.ok,
        polls_failed=polls.failed,
        worst_second=worst_second(ticks, polls.started, started, (cpu_started, machine_started), gcs.spans)
        if ticks
        else {},
        successes=polls.successes,
        first_error=errors[0][:300] if errors else "",
        started_at=started_at,
        gc_collections=gcs.collections,
        gc_seconds=gcs.seconds,
        gc_longest_ms=gcs.longest * 1e3,
        gc_objects=objects[0],
    )


def scenario_main(argv: list[str]) -> int:
    """A scenario process: import, say ``ready`` on stdout, read the job ids from stdin, wait, write the result."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.triggerer --scenario")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), required=True)
    parser.add_argument("--part", required=True)
    parser.add_argument("--poll", type=float, required=True)
    parser.add_argument("--cap", type=float, required=True)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    out = sys.stdout
    sys.stdout = sys.stderr  # only the handshake goes to the pipe
    # Everything imported before the clock starts.
    import airflow_provider_ft.hooks.fine_tuning
    import airflow_provider_ft.triggers.fine_tuning  # noqa: F401
    import benchmarks._baseline.trigger  # noqa: F401

    polls = PollLog(keep_successes=args.part == "throttle")
    polls.install()
    out.write(READY + "\n")
    out.flush()
    line = sys.stdin.readline()
    if not line.strip():
        return 0  # the parent gave up before handing over the job ids
    job_ids = json.loads(line)
    result = asyncio.run(run_waiters(args.part, args.scenario, job_ids, args.poll, args.cap, polls))
    args.result.write_text(json.dumps(asdict(result)))
    return 0


# -- the parent ------------------------------------------------------------------------------------------------


def inject_latency(emulator: EmulatorProcess) -> None:
    emulator.inject("latency", delay=0.2, every=4, times=MANY)
    emulator.inject("latency", delay=0.1, every=3, times=MANY)
    emulator.inject("latency", delay=0.05, times=MANY)


def seed_spread(emulator: EmulatorProcess, count: int, finish_from: float, finish_to: float) -> list[str]:
    """``count`` running jobs in ten groups finishing evenly from ``finish_from`` to ``finish_to`` s from now."""
    groups = 10
    ids: list[str] = []
    for group in range(groups):
        runs_for = finish_from + (finish_to - finish_from) * group / (groups - 1)
        size = count // groups + (1 if group < count % groups else 0)
        if size:
            ids += emulator.seed_jobs(VENDOR, size, status="running", runs_for=runs_for)
    return ids


@dataclass
class Running:
    """A scenario process that has been handed its job ids."""

    process: subprocess.Popen[str]
    result_file: Path
    cap: float
    go: float
    tally_start: int
    connections_start: int


def spawn(part: str, scenario: str, poll: float, cap: float, workdir: Path) -> subprocess.Popen[str]:
    """Start a scenario process (it imports, says it is ready and waits for its job ids)."""
    result_file = workdir / f"{part}.{scenario}.result.json"
    command = [sys.executable, "-m", "benchmarks.triggerer", "--scenario", scenario, "--part", part]
    command += ["--poll", str(poll), "--cap", str(cap), "--result", str(result_file)]
    with open(workdir / f"{part}.{scenario}.log", "w") as log:
        return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)


@contextmanager
def scenario_process(
    emulator: EmulatorProcess, part: str, scenario: str, poll: float, cap: float, workdir: Path
) -> Iterator[Callable[[list[str]], Running]]:
    """A ready scenario process; the function it yields hands it its job ids (seed them just before)."""
    result_file = workdir / f"{part}.{scenario}.result.json"
    process = spawn(part, scenario, poll, cap, workdir)
    stdin, stdout = process.stdin, process.stdout
    assert stdin is not None
    assert stdout is not None
    try:
        if stdout.readline().strip() != READY:
            process.wait(timeout=30)
            raise RuntimeError(f"{part}/{scenario} did not start (exit {process.returncode}); see its log")

        def go(job_ids: list[str]) -> Running:
            running = Running(process, result_file, cap, 0.0, emulator.tally(0).end, emulator.connections_opened())
            stdin.write(json.dumps(job_ids) + "\n")
            stdin.flush()
            running.go = time.monotonic()
            return running

        yield go
    finally:
        stdin.close()  # a process never handed its ids reads an end of file and exits
        try:
            process.wait(timeout=cap + 120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        stdout.close()


def finish(emulator: EmulatorProcess, running: Running) -> Result:
    """Wait for the scenario process; its result with the emulator's counts since it started."""
    code = running.process.wait(timeout=running.cap + 120)
    if code != 0:
        raise RuntimeError(f"scenario process exited {code}; see its log in {running.result_file.parent}")
    result = Result(**json.loads(running.result_file.read_text()))
    result.successes = [(job_id, at) for job_id, at in result.successes]
    seen = emulator.tally(running.tally_start)
    result.requests, result.job_gets, result.event_gets = seen.requests, seen.job_gets, seen.event_gets
    result.statuses = seen.statuses
    result.connections = emulator.connections_opened() - running.connections_start
    log_file = running.result_file.with_suffix("").with_suffix(".log")
    with open(log_file, "rb") as log:
        result.log_lines = sum(1 for _ in log)
    print(f"{result.part}/{result.scenario}: {short(result)}", flush=True)
    return result


def short(result: Result) -> str:
    fields = asdict(result)
    fields.pop("successes")
    return json.dumps(fields)


def run_lag(emulator: EmulatorProcess, scenario: str, plan: LagPlan, workdir: Path) -> Result:
    cap = plan.blocking_cap if scenario == "blocking" else plan.cap
    with scenario_process(emulator, "lag", scenario, plan.poll_interval, cap, workdir) as go:
        emulator.reset()
        inject_latency(emulator)
        running = go(seed_spread(emulator, plan.waiters, plan.finish_from, plan.finish_to))
        return finish(emulator, running)


@dataclass
class Episode:
    """What the emulator saw during a throttle episode, and when it ended (``time.monotonic()``)."""

    seen: Tally
    ended: float


def run_throttle(emulator: EmulatorProcess, scenario: str, plan: ThrottlePlan, workdir: Path) -> tuple[Result, Episode]:
    with scenario_process(emulator, "throttle", scenario, plan.poll_interval, plan.cap, workdir) as go:
        emulator.reset()
        inject_latency(emulator)
        finish_at = plan.episode_end + plan.finish_after_episode
        running = go(seed_spread(emulator, plan.waiters, finish_at, finish_at + plan.poll_interval))
        time.sleep(max(running.go + plan.episode_start - time.monotonic(), 0.0))
        emulator.clear_faults()
        headers = {"Retry-After": f"{plan.retry_after:g}"}
        emulator.inject("status", status=429, headers=headers, delay=0.05, times=MANY)
        start = emulator.tally(0).end
        time.sleep(max(running.go + plan.episode_end - time.monotonic(), 0.0))
        emulator.clear_faults()
        ended, end = time.monotonic(), emulator.tally(0).end
        inject_latency(emulator)
        time.sleep(min(1.0, plan.poll_interval))  # the requests still in flight at the end get their answer
        seen = emulator.tally(start, end)
        return finish(emulator, running), Episode(seen, ended)


def run_coalesce(
    emulator: EmulatorProcess, scenario: str, plan: CoalescePlan, workdir: Path
) -> tuple[Result, list[Tally]]:
    with scenario_process(emulator, "coalesce", scenario, plan.poll_interval, plan.cap, workdir) as go:
        emulator.reset()
        inject_latency(emulator)
        runs_for = (plan.intervals + 0.5) * plan.poll_interval
        jobs = emulator.seed_jobs(VENDOR, plan.jobs, status="running", runs_for=runs_for)
        running = go([job for job in jobs for _ in range(plan.per_job)])
        intervals: list[Tally] = []
        mark = running.tally_start
        for index in range(1, plan.intervals + 1):
            time.sleep(max(running.go + index * plan.poll_interval - time.monotonic(), 0.0))
            intervals.append(emulator.tally(mark))
            mark = intervals[-1].end
        return finish(emulator, running), intervals


# -- the report --------------------------------------------------------------------------------------------------


def per_request(result: Result) -> str:
    return f"{result.cpu_ms_per_request:.2f}"


def gc_cells(result: Result) -> tuple[str, str]:
    """The GC columns: full collections (of all collections), and seconds in GC (the longest one)."""
    total = sum(result.gc_collections.values())
    return f"{result.gc_full} (of {total})", f"{result.gc_seconds:.2f} ({result.gc_longest_ms:.0f})"


def done(result: Result) -> str:
    text = f"{result.completed}/{result.waiters}"
    extra = [f"{result.capped} capped"] if result.capped else []
    extra += [f"{result.errors} errors"] if result.errors else []
    return text + (f" ({', '.join(extra)})" if extra else "")


def lag_table(results: list[Result]) -> Table:
    table = Table(
        "Part 1, loop lag: scenarios (one fresh process each; lag from a 10 ms ticker)",
        [
            "Scenario",
            "Completed",
            "Wall s",
            "Done p50 / max s",
            "Lag p50 / p99 ms (per tick)",
            "Lag p99 ms (over time)",
            "Lag max ms",
            f"Loop late > {TARGET_LAG_MS:.0f} ms, s",
            "Peak RSS MB (start)",
            "Requests (job / event GETs)",
            "TCP conns",
            "Client CPU ms per request",
            "Log lines",
            "GC: full collections",
            "GC s (longest ms)",
            "Worst second: lag s / CPU s / polls started",
        ],
    )
    for found in results:
        worst = found.worst_second
        table.add(
            SCENARIOS[found.scenario],
            done(found),
            f"{found.seconds:.1f}",
            f"{found.completion_p50:.1f} / {found.completion_max:.1f}",
            f"{found.lag_p50_ms:.1f} / {found.lag_p99_ms:.0f}",
            f"{found.lag_time_p99_ms:.0f}",
            f"{found.lag_max_ms:.0f}",
            f"{found.stalled_seconds:.1f}",
            f"{found.rss_peak_mb:.0f} ({found.rss_start_mb:.0f})",
            f"{found.requests} ({found.job_gets} / {found.event_gets})",
            found.connections,
            per_request(found),
            found.log_lines,
            *gc_cells(found),
            f"{worst.get('lag_s', 0):.2f} / {worst.get('cpu_s', 0):.2f} / {worst.get('polls', 0):.0f} "
            f"(at {worst.get('at', float('nan')):.0f} s)",
        )
    return table


def lag_text(found: Result) -> str:
    return (
        f"{found.lag_time_p99_ms:.0f} ms over time (per tick {found.lag_p99_ms:.0f} ms, max {found.lag_max_ms:.0f} "
        f"ms, late > {TARGET_LAG_MS:.0f} ms for {found.stalled_seconds:.1f} s of {found.seconds:.0f} s)"
    )


def gc_text(found: Result) -> str:
    return (
        f"{found.gc_full} in the run, longest {found.gc_longest_ms:.0f} ms, {found.gc_seconds:.1f} s in all "
        f"(the process holds ~{found.gc_objects:,} tracked objects)"
    )


def cpu_text(found: Result) -> str:
    """The worst second of the run (its lag, CPU and the GC in it) and the CPU per request."""
    worst = found.worst_second
    if not worst:
        return "no ticks recorded"
    wall = worst.get("wall_s", 1.0) or 1.0
    return (
        f"in the worst second (from {worst['at']:.1f} s after the start) the loop was late for "
        f"{worst['lag_s']:.2f} s, {worst.get('gc_s', 0.0):.2f} s of it in garbage collections, and the process used "
        f"{worst['cpu_s']:.2f} s of CPU in {wall:.2f} s ({worst['cpu_s'] / wall:.0%} of one core; the machine's "
        f"{os.cpu_count()} cores were busy {worst.get('machine_cpu_s', float('nan')):.2f} s, the emulator's and "
        f"other processes' included), {worst['polls']:.0f} polls starting in it; "
        f"{found.cpu_ms_per_request:.2f} ms of CPU per request over the run"
    )


def lag_limit(found: Result, frozen: Result | None, nogc: Result | None) -> str:
    """What the run's figures say limits the shipped trigger's lag: the full collections, sized by the two
    diagnostics (the same trigger with the heap frozen at start and with gc disabled), or else the CPU."""
    sized = ""
    if frozen is not None and nogc is not None:
        sized = (
            f"; with the heap frozen at start the p99 is {frozen.lag_time_p99_ms:.0f} ms, with gc disabled "
            f"{nogc.lag_time_p99_ms:.0f} ms"
        )
    gc_bound = nogc is not None and (
        nogc.lag_time_p99_ms < TARGET_LAG_MS or nogc.lag_time_p99_ms <= 0.5 * found.lag_time_p99_ms
    )
    if gc_bound:
        text = (
            f"CPython's full garbage collections: {gc_text(found)}{sized} (a deployment can freeze the triggerer's "
            "heap after start with `gc.freeze()`; a provider must not do that for the process it shares, see the "
            f"notes); the rest: {cpu_text(found)}"
        )
    else:
        text = f"CPU: {cpu_text(found)}; full garbage collections: {gc_text(found)}{sized}"
    if found.requests and found.connections >= 0.5 * found.requests:
        text += f"; {found.connections} TCP connections for {found.requests} requests"
    return text


def add_lag_targets(section: Section, by_name: dict[str, Result]) -> None:
    ours, today = by_name["shipped"], by_name["today"]
    lag_ok = ours.lag_time_p99_ms < TARGET_LAG_MS
    rss_ok = ours.rss_peak_mb < TARGET_RSS_MB
    all_done = ours.completed == ours.waiters
    section.targets += [
        Target(
            f"1. All {ours.waiters} triggers complete",
            f"shipped {done(ours)}; today's {done(today)}",
            "all",
            all_done,
            "" if all_done else f"{ours.capped} hit the cap, {ours.errors} errors; first: {ours.first_error}",
        ),
        Target(
            "1. Event-loop lag p99 (over time)",
            f"shipped {lag_text(ours)}; today's {lag_text(today)}",
            f"< {TARGET_LAG_MS:.0f} ms",
            lag_ok,
            "" if lag_ok else lag_limit(ours, by_name.get("frozen"), by_name.get("nogc")),
        ),
        Target(
            "1. Peak RSS",
            f"shipped {ours.rss_peak_mb:.0f} MB; today's {today.rss_peak_mb:.0f} MB",
            f"< {TARGET_RSS_MB:.0f} MB",
            rss_ok,
            ""
            if rss_ok
            else f"{ours.rss_start_mb:.0f} MB before the triggers started, then "
            f"{(ours.rss_peak_mb - ours.rss_start_mb) / max(ours.waiters, 1) * 1024:.0f} KB per trigger",
        ),
    ]


#: Connections one account has in one event loop (``_shared.POOL_SIZE``), for the texts.
POOL_CONNECTIONS = 32


def recovery(result: Result, ended: float) -> list[float]:
    """Per trigger, seconds from the episode's end to its first successful poll after it (missing: none)."""
    first: dict[str, float] = {}
    for job_id, at in result.successes:
        if at >= ended and job_id not in first:
            first[job_id] = at - ended
    return sorted(first.values())


def throttle_rows(results: dict[str, tuple[Result, Episode]], plan: ThrottlePlan) -> tuple[Table, list[Target]]:
    table = Table(
        f"Part 3, throttle episode: {plan.waiters} triggers, poll {plan.poll_interval:g} s; every request answered "
        f"429 Retry-After: {plan.retry_after:g} from {plan.episode_start:g} s to {plan.episode_end:g} s",
        [
            "Trigger",
            "Completed",
            "Requests in the episode (429)",
            "Per trigger",
            "Recovered (first good poll after the end)",
            "Recovery p50 / max s",
            "Polls ok / failed (whole run)",
            "Requests (whole run)",
            "GC: full collections",
            "GC s (longest ms)",
        ],
    )
    measured: dict[str, tuple[int, int, list[float]]] = {}
    for name, (result, episode) in results.items():
        times = recovery(result, episode.ended)
        limited = episode.seen.statuses.get("429", 0)
        measured[name] = (episode.seen.requests, limited, times)
        table.add(
            SCENARIOS[name],
            done(result),
            f"{episode.seen.requests} ({limited})",
            f"{episode.seen.requests / max(result.waiters, 1):.2f}",
            f"{len(times)}/{result.waiters}",
            f"{median(times):.1f} / {max(times, default=float('nan')):.1f}",
            f"{result.polls_ok} / {result.polls_failed}",
            result.requests,
            *gc_cells(result),
        )
    ours, today = measured["shipped"], measured["today"]
    waiters = results["shipped"][0].waiters
    requests_ok = ours[0] <= waiters
    late = [seconds for seconds in ours[2] if seconds > plan.retry_after]
    recovered_ok = len(ours[2]) == waiters and not late

    def recovered(found: tuple[int, int, list[float]]) -> str:
        return f"p50 {median(found[2]):.1f} s, max {max(found[2], default=float('nan')):.1f} s ({len(found[2])} seen)"

    targets = [
        Target(
            "3. Requests during the throttle episode",
            f"shipped {ours[0]} ({ours[1]} answered 429, {ours[0] / waiters:.2f} per trigger); today's {today[0]} "
            f"({today[1]} answered 429, {today[0] / waiters:.2f} per trigger)",
            f"<= {waiters} (one per trigger)",
            requests_ok,
            ""
            if requests_ok
            else f"{ours[0] / waiters:.2f} requests per trigger in {plan.episode_seconds:g} s of 429s: the triggers "
            f"went on sending after the first 429 (one Retry-After is {plan.retry_after:g} s, so about "
            f"{plan.episode_seconds / plan.retry_after:.0f} waits fit in the episode)",
        ),
        Target(
            "3. Recovery: every trigger's first good poll after the episode",
            f"shipped {recovered(ours)}; today's {recovered(today)}",
            f"every trigger within {plan.retry_after:g} s",
            recovered_ok,
            ""
            if recovered_ok
            else f"{len(late)} triggers later than {plan.retry_after:g} s, "
            f"{waiters - len(ours[2])} with no good poll after it: {recovery_limit(ours[2], plan)}",
        ),
    ]
    return table, targets


def recovery_limit(times: list[float], plan: ThrottlePlan) -> str:
    """What the recovery times say: when the account's last pause ended, and how long the others took after."""
    if not times:
        return "no trigger polled successfully after the episode"
    first, last = min(times), max(times)
    return (
        f"the first good poll came {first:.1f} s after the episode's end, so the account's last pause (a probe "
        f"obeys Retry-After: {plan.retry_after:g}, and a 429 came shortly before the end) lasted until then; the "
        f"other triggers followed over {last - first:.1f} s, their polls and event reads queued through the "
        f"account's {POOL_CONNECTIONS} connections"
    )


def coalesce_limit(job_gets: list[int], plan: CoalescePlan) -> str:
    """Why more than one GET per job came in an interval, from the counts of the run."""
    over = [(index, count) for index, count in enumerate(job_gets, start=1) if count > plan.jobs]
    return (
        f"shipped job GETs per interval {job_gets} for {plan.jobs * plan.per_job} triggers on {plan.jobs} jobs; "
        f"over {plan.jobs} in interval(s) {', '.join(str(index) for index, _ in over)}: a shared answer is reused "
        "for 0.9 of the poll interval (no trigger sees one older than its own polling would), so a job is read "
        "again after 0.9 of an interval and two reads of one job can fall in one interval; in the first, each "
        "job's first reader keeps no answer until a second reader has come (answers are kept only for keys read "
        "by several triggers), so most jobs are read twice"
    )


def coalesce_rows(results: dict[str, tuple[Result, list[Tally]]], plan: CoalescePlan) -> tuple[Table, list[Target]]:
    heads = [f"interval {index}" for index in range(1, plan.intervals + 1)]
    table = Table(
        f"Part 4, coalesced polls: {plan.jobs * plan.per_job} triggers on {plan.jobs} jobs, poll "
        f"{plan.poll_interval:g} s: job GETs (event GETs) the emulator received per interval",
        ["Trigger", "Completed", *heads, "Polls the triggers made (whole run)", "Requests (whole run)"],
    )
    worst: dict[str, int] = {}
    for name, (result, intervals) in results.items():
        worst[name] = max((tally.job_gets for tally in intervals[1:] or intervals), default=0)
        table.add(
            SCENARIOS[name],
            done(result),
            *(f"{tally.job_gets} ({tally.event_gets})" for tally in intervals),
            result.polls_ok + result.polls_failed,
            result.requests,
        )
    ok = worst["shipped"] <= plan.jobs
    shipped_intervals = results["shipped"][1]
    target = Target(
        "4. Job GETs per poll interval, several triggers per job",
        f"shipped at most {worst['shipped']} per interval after the first; today's at most {worst['today']}",
        f"<= {plan.jobs} (one per job)",
        ok,
        "" if ok else coalesce_limit([tally.job_gets for tally in shipped_intervals], plan),
    )
    return table, [target]


def add_notes(section: Section, by_name: dict[str, Result], plan: Plan) -> None:
    blocking, ours, today = by_name["blocking"], by_name["shipped"], by_name["today"]
    lag = plan.lag
    section.notes.append(
        f"Blocking baseline: {blocking.polls_ok} polls in its {lag.blocking_cap:g} s cap, so one round of "
        f"{lag.waiters} polls would take about {lag.waiters * lag.blocking_cap / max(blocking.polls_ok, 1):.0f} s "
        f"during which the loop serves nothing else (max lag {blocking.lag_max_ms / 1e3:.1f} s)."
    )
    to_thread = by_name["to_thread"]
    section.notes.append(
        f"`asyncio.to_thread` baseline: {done(to_thread)} in {to_thread.seconds:.0f} s (last done at "
        f"{to_thread.completion_max:.0f} s): the loop's default executor has {min(32, (os.cpu_count() or 1) + 4)} "
        "threads here, so the blocking polls queue behind each other; the loop itself stays responsive."
    )
    section.notes.append(
        f"Shipped vs today's trigger, part 1: {ours.requests} requests ({ours.job_gets} job GETs, {ours.event_gets} "
        f"event GETs) over {ours.connections} TCP connections vs {today.requests} ({today.job_gets} / "
        f"{today.event_gets}) over {today.connections}; {ours.polls_ok} polls read a job vs {today.polls_ok}; "
        f"client CPU {ours.cpu_seconds:.1f} s vs {today.cpu_seconds:.1f} s."
    )
    section.notes.append(
        "Lag is given per tick and over time: a loop stalled for 2 s records a single late tick, so the per-tick "
        "p99 can look fine while the loop was frozen; the verdict uses the p99 over time (each tick weighted by "
        "its length), which a stall cannot hide. The worst second is the 1 s window of ticks with the most lag."
    )
    frozen, nogc = by_name.get("frozen"), by_name.get("nogc")
    if frozen is not None and nogc is not None:
        section.notes.append(
            f"Garbage collection (the two diagnostic rows size it; they are not the verdict): the shipped trigger's "
            f"process ran {ours.gc_full} full (generation 2) collections, longest {ours.gc_longest_ms:.0f} ms, "
            f"{ours.gc_seconds:.1f} s in all collections, with ~{ours.gc_objects:,} objects tracked (Airflow's and "
            f"the libraries' modules plus every trigger's); each full collection scans all of them while the loop "
            f"waits. With `gc.freeze()` once imports and setup were done: {frozen.gc_full} full collections, longest "
            f"{frozen.gc_longest_ms:.0f} ms, lag p99 {frozen.lag_time_p99_ms:.0f} ms over time; with `gc.disable()`: "
            f"{nogc.lag_time_p99_ms:.0f} ms (shipped {ours.lag_time_p99_ms:.0f} ms). A deployment can freeze the "
            "triggerer's heap once it has started (`gc.freeze()`, as Instagram does for its servers and Airflow's "
            "own processes do before forking in places), so that collections scan only what came after. A provider "
            "must not do that (nor disable or tune the collector) for the process it shares with Airflow and every "
            "other trigger: the collector is the deployment's to set."
        )
    section.notes.append(
        f"Logging: as in a triggerer, Airflow's own log configuration writes the triggers' INFO lines (progress, "
        f"events, rate-limit waits) to stderr, here a file: {ours.log_lines} lines for the shipped trigger, "
        f"{today.log_lines} for today's (Log lines column); their formatting and writing is part of the CPU."
    )


def run(smoke: bool) -> Section:
    from benchmarks import _httpx_study

    allow_bytecode_cache()
    prepare_airflow_home()
    plan = SMOKE if smoke else FULL
    workdir = Path(os.environ["FT_BENCH_AIRFLOW_HOME"]) / "triggerer"
    workdir.mkdir(exist_ok=True)
    section = Section("triggerer", "4. Triggerer scale: 5,000 triggers in one event loop", __doc__ or "")
    lag, throttle, coalesce = plan.lag, plan.throttle, plan.coalesce
    section.method += (
        f"\n\nThis run: part 1 {lag.waiters} triggers, poll interval {lag.poll_interval:g} s, jobs finish "
        f"{lag.finish_from:g}-{lag.finish_to:g} s after the start, cap {lag.cap:g} s (blocking baseline "
        f"{lag.blocking_cap:g} s; diagnostics with the collector frozen or disabled); part 3 {throttle.waiters} "
        f"triggers, poll {throttle.poll_interval:g} s, 429s from "
        f"{throttle.episode_start:g} to {throttle.episode_end:g} s, jobs finish "
        f"{throttle.finish_after_episode:g}-{throttle.finish_after_episode + throttle.poll_interval:g} s after; "
        f"part 4 {coalesce.per_job} triggers on each of {coalesce.jobs} jobs, poll {coalesce.poll_interval:g} s, "
        f"{coalesce.intervals} intervals."
    )
    with EmulatorProcess() as emulator:
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = emulator.connection_uri(VENDOR)
        lagged = [run_lag(emulator, scenario, lag, workdir) for scenario in SCENARIOS]
        throttled = {name: run_throttle(emulator, name, throttle, workdir) for name in TRIGGERS}
        coalesced = {name: run_coalesce(emulator, name, coalesce, workdir) for name in TRIGGERS}
    by_name = {found.scenario: found for found in lagged}
    add_lag_targets(section, by_name)
    section.tables.append(lag_table(lagged))
    throttle_table, throttle_targets = throttle_rows(throttled, throttle)
    coalesce_table, coalesce_targets = coalesce_rows(coalesced, coalesce)
    section.targets += throttle_targets + coalesce_targets
    section.tables += [throttle_table, coalesce_table]
    add_notes(section, by_name, plan)
    tables, findings = _httpx_study.run_in_child(smoke, workdir)
    section.tables += tables
    section.notes += findings
    if smoke:
        section.notes.append("Smoke mode: tiny sizes and short intervals; the targets are for the full run.")
    return section


if __name__ == "__main__":
    if "--scenario" in sys.argv:
        raise SystemExit(scenario_main(sys.argv[1:]))
    raise SystemExit(bench_main(run))

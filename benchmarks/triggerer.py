"""Benchmark 4: triggerer scale, 1,000 ``FineTuningJobTrigger`` runs at once in one event loop.

The emulator serves in its own process. Before each scenario it is emptied and seeded with N running OpenAI jobs
that finish 20 to 40 s later (ten groups, spread evenly), and it delays every answer: 200 ms for every 4th
request, 100 ms for every 3rd of the others, 50 ms for the rest (mean 100 ms). Each scenario runs in a fresh
Python process (so that its peak RSS is its own) with one asyncio loop holding N waiters started at once, plus a
ticker coroutine that sleeps 10 ms and records how late it wakes up (the event-loop lag). Scenarios:

- ``FineTuningJobTrigger`` as shipped: ``trigger.run()`` until its event (its ``AsyncTransport`` gives every
  ``httpx.AsyncClient`` one process-wide ``ssl.SSLContext``, since commit 9cf2942);
- the same with a new SSLContext per client, as httpx does by default and as the code did before 9cf2942
  (``_transport._shared_ssl_context`` replaced by ``httpx.create_ssl_context`` in the benchmark process only),
  to show what sharing the context is worth;
- two diagnostics of the shipped trigger, to size what limits its lag: with ``httpx.Limits(keepalive_expiry=2 x
  poll interval)`` (httpx's default of 5 s closes the connection between polls), and with the waiters' starts
  spread evenly over one poll interval (as triggers reach a real triggerer) instead of all in one loop iteration;
- baseline ``asyncio.to_thread(hook.get_job)``: the blocking hook (requests) in the loop's default executor;
- baseline blocking ``hook.get_job`` called straight inside ``async def`` (the pattern some official triggers
  use). It cannot finish in any reasonable time (each call stalls the whole loop), so it runs under a time cap and
  reports how far it got.

Every waiter polls its job every ``poll_interval`` seconds, each with its own client (a trigger's own
``httpx.AsyncClient``; for the baselines its own hook and ``requests.Session``). Reported: completions, wall
time, event-loop lag p50/p99/max over all ticks and p99 over time (see the notes), peak RSS (``ru_maxrss``) and
RSS before the waiters started, requests and TCP connections seen by the emulator, and this process's CPU time
per request. A separate study against a trivial loopback server
(``_httpx_study``) explains where the shipped trigger's time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks._common import allow_bytecode_cache, median, percentile, prepare_airflow_home
from benchmarks._emulator import EmulatorProcess
from benchmarks._report import Section, Table, Target, bench_main

VENDOR = "openai"
CONN_ID = "ft_bench_triggerer"
TICK = 0.01
MANY = 10**9
TARGET_LAG_MS = 100.0
TARGET_RSS_MB = 300.0
SCENARIOS = {
    "trigger": "FineTuningJobTrigger as shipped (one shared SSLContext)",
    "trigger_own_ssl": "FineTuningJobTrigger, an SSLContext per client (httpx default; before 9cf2942)",
    "trigger_keepalive": "diagnostic: shipped + keepalive_expiry 2x poll interval",
    "trigger_staggered": "diagnostic: shipped, starts spread over one poll interval",
    "to_thread": "baseline: asyncio.to_thread(hook.get_job)",
    "blocking": "baseline: blocking hook.get_job inside async def",
}


@dataclass(frozen=True)
class Plan:
    """Sizes of one run of this benchmark."""

    waiters: int
    poll_interval: float
    finish_from: float
    finish_to: float
    cap: float
    blocking_cap: float


FULL = Plan(waiters=1000, poll_interval=5.0, finish_from=20.0, finish_to=40.0, cap=180.0, blocking_cap=30.0)
# Jobs must outlive the scenario process's start (~3 s of imports) or every waiter polls once.
SMOKE = Plan(waiters=50, poll_interval=0.5, finish_from=4.0, finish_to=5.0, cap=20.0, blocking_cap=3.0)


@dataclass
class Result:
    """What one scenario's process measured."""

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
    requests: int = 0
    connections: int = 0
    first_error: str = ""


# -- the scenario process ----------------------------------------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def own_ssl_context_per_client() -> None:
    """Give every ``AsyncTransport`` a new SSLContext, as httpx does by default (the code before commit 9cf2942)."""
    import httpx

    from airflow_provider_ft.hooks import _transport

    _transport._shared_ssl_context = httpx.create_ssl_context  # type: ignore[assignment]


def keep_connections_between_polls(poll: float) -> None:
    """Give every ``httpx.AsyncClient`` without explicit ``limits`` a keep-alive longer than the poll interval."""
    import httpx

    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=2 * poll)
    original = httpx.AsyncClient.__init__

    def init(self: httpx.AsyncClient, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("limits", limits)
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    httpx.AsyncClient.__init__ = init  # type: ignore[method-assign]


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


def waiter_factory(scenario: str, poll: float, deadline: float) -> Callable[[str], Awaitable[str]]:
    """A coroutine function that waits for one job the way ``scenario`` says; it returns how it ended."""
    from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
    from airflow_provider_ft.triggers.fine_tuning import FineTuningJobTrigger

    async def trigger(job_id: str) -> str:
        async for event in FineTuningJobTrigger(CONN_ID, job_id, poll_interval=poll).run():
            return str(event.payload["status"])
        return "no event"

    async def polling(job_id: str) -> str:
        hook = FineTuningHook(CONN_ID)
        while time.monotonic() < deadline:
            if scenario == "to_thread":
                job = await asyncio.to_thread(hook.get_job, job_id)
            else:
                job = hook.get_job(job_id)  # blocks the loop: the point of this baseline
            if job.is_terminal:
                hook.close()
                return "success"
            await asyncio.sleep(poll)
        hook.close()
        return "capped"

    return trigger if scenario.startswith("trigger") else polling


async def ticker(lags: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(TICK)
        lags.append(time.perf_counter() - started - TICK)


async def run_waiters(scenario: str, job_ids: list[str], poll: float, cap: float) -> Result:
    deadline = time.monotonic() + cap
    wait = waiter_factory(scenario, poll, deadline)
    lags: list[float] = []
    finished: list[float] = []
    stop = asyncio.Event()
    tick = asyncio.create_task(ticker(lags, stop))
    await asyncio.sleep(0.05)
    rss_start = rss_mb()
    started, cpu_started = time.perf_counter(), time.process_time()

    async def one(index: int, job_id: str) -> str:
        try:
            async with asyncio.timeout_at(asyncio.get_running_loop().time() + cap):
                if scenario == "trigger_staggered":  # as triggers reach a real triggerer: not all at once
                    await asyncio.sleep(poll * index / len(job_ids))
                outcome = await wait(job_id)
        except TimeoutError:
            return "capped"
        except Exception as error:
            return f"error: {type(error).__name__}: {error}"
        finished.append(time.perf_counter() - started)
        return outcome

    outcomes = await asyncio.gather(*(one(index, job_id) for index, job_id in enumerate(job_ids)))
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    stop.set()
    await tick
    errors = [outcome for outcome in outcomes if outcome not in ("success", "capped")]
    return Result(
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
        first_error=errors[0][:300] if errors else "",
    )


def scenario_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.triggerer --scenario")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), required=True)
    parser.add_argument("--ids", type=Path, required=True)
    parser.add_argument("--poll", type=float, required=True)
    parser.add_argument("--cap", type=float, required=True)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    job_ids = json.loads(args.ids.read_text())
    import airflow_provider_ft.hooks.fine_tuning
    import airflow_provider_ft.triggers.fine_tuning  # noqa: F401 - imported before the clock starts

    if args.scenario == "trigger_own_ssl":
        own_ssl_context_per_client()
    if args.scenario == "trigger_keepalive":
        keep_connections_between_polls(args.poll)
    result = asyncio.run(run_waiters(args.scenario, job_ids, args.poll, args.cap))
    args.result.write_text(json.dumps(asdict(result)))
    return 0


# -- the parent ------------------------------------------------------------------------------------------------


def seed(emulator: EmulatorProcess, plan: Plan) -> list[str]:
    emulator.reset()
    groups = 10
    ids: list[str] = []
    for group in range(groups):
        runs_for = plan.finish_from + (plan.finish_to - plan.finish_from) * group / (groups - 1)
        count = plan.waiters // groups + (1 if group < plan.waiters % groups else 0)
        ids += emulator.seed_jobs(VENDOR, count, status="running", runs_for=runs_for)
    emulator.inject("latency", delay=0.2, every=4, times=MANY)
    emulator.inject("latency", delay=0.1, every=3, times=MANY)
    emulator.inject("latency", delay=0.05, times=MANY)
    return ids


def run_scenario(emulator: EmulatorProcess, scenario: str, plan: Plan, workdir: Path) -> Result:
    ids_file, result_file = workdir / f"{scenario}.ids.json", workdir / f"{scenario}.result.json"
    ids_file.write_text(json.dumps(seed(emulator, plan)))
    cap = plan.blocking_cap if scenario == "blocking" else plan.cap
    command = [sys.executable, "-m", "benchmarks.triggerer", "--scenario", scenario, "--ids", str(ids_file)]
    command += ["--poll", str(plan.poll_interval), "--cap", str(cap), "--result", str(result_file)]
    opened = emulator.connections_opened()
    with open(workdir / f"{scenario}.log", "w") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True, timeout=cap + 300)
    result = Result(**json.loads(result_file.read_text()))
    result.requests = emulator.request_count()
    result.connections = emulator.connections_opened() - opened
    print(f"{scenario}: {result}")
    return result


def results_table(results: list[Result]) -> Table:
    table = Table(
        "Scenarios (one fresh process each; lag from a 10 ms ticker)",
        [
            "Scenario",
            "Completed",
            "Wall s",
            "Done p50 / max s",
            "Lag p50 ms (per tick)",
            "Lag p99 ms (per tick)",
            "Lag p99 ms (over time)",
            "Lag max ms",
            "Loop stalled > 100 ms, s",
            "Peak RSS MB (start)",
            "Requests",
            "TCP conns",
            "Client CPU ms per request",
        ],
    )
    for found in results:
        table.add(
            SCENARIOS[found.scenario],
            f"{found.completed}/{found.waiters}" + (f" ({found.capped} capped)" if found.capped else ""),
            f"{found.seconds:.1f}",
            f"{found.completion_p50:.1f} / {found.completion_max:.1f}",
            f"{found.lag_p50_ms:.1f}",
            f"{found.lag_p99_ms:.0f}",
            f"{found.lag_time_p99_ms:.0f}",
            f"{found.lag_max_ms:.0f}",
            f"{found.stalled_seconds:.1f}",
            f"{found.rss_peak_mb:.0f} ({found.rss_start_mb:.0f})",
            found.requests,
            found.connections,
            f"{found.cpu_seconds / max(found.requests, 1) * 1e3:.2f}",
        )
    return table


def lag_text(found: Result) -> str:
    return (
        f"{found.lag_time_p99_ms:.0f} ms over time (per tick {found.lag_p99_ms:.0f} ms; max {found.lag_max_ms:.0f} "
        f"ms; stalled {found.stalled_seconds:.1f} s of {found.seconds:.1f} s)"
    )


def add_targets(section: Section, ours: Result) -> None:
    lag_ok = ours.lag_time_p99_ms < TARGET_LAG_MS
    rss_ok = ours.rss_peak_mb < TARGET_RSS_MB
    section.targets += [
        Target(
            f"All {ours.waiters} triggers complete",
            f"{ours.completed}/{ours.waiters}",
            "all",
            ours.completed == ours.waiters,
        ),
        Target(
            "Event-loop lag p99",
            lag_text(ours),
            f"< {TARGET_LAG_MS:.0f} ms",
            lag_ok,
            ""
            if lag_ok
            else "client CPU per poll (httpx/httpcore/h11, tenacity, logging: CPU column"
            + (", plus a new TCP connection per poll" if ours.connections >= 0.9 * ours.requests else "")
            + ") x polls that fall due together, as all waiters start in the same loop iteration; the diagnostic "
            "with starts spread over one poll interval (as triggers reach a real triggerer) sizes that part",
        ),
        Target("Peak RSS", f"{ours.rss_peak_mb:.0f} MB", f"< {TARGET_RSS_MB:.0f} MB", rss_ok),
    ]


def add_notes(section: Section, results: list[Result], plan: Plan) -> None:
    by_name = {found.scenario: found for found in results}
    blocking, ours, own = by_name["blocking"], by_name["trigger"], by_name["trigger_own_ssl"]
    section.notes.append(
        f"Blocking baseline: {blocking.requests} polls in its {plan.blocking_cap:g} s cap, so one round of "
        f"{plan.waiters} polls would take about {plan.waiters * plan.blocking_cap / max(blocking.requests, 1):.0f} s "
        f"during which the loop serves nothing else (max lag {blocking.lag_max_ms / 1e3:.1f} s)."
    )
    for name, what in (
        ("trigger_keepalive", "keeping connections open between polls"),
        ("trigger_staggered", "starting the waiters over one poll interval instead of at once"),
    ):
        found = by_name[name]
        section.notes.append(
            f"Diagnostic, {what}: lag p99 over time {found.lag_time_p99_ms:.0f} ms (shipped {ours.lag_time_p99_ms:.0f}"
            f" ms), stalled {found.stalled_seconds:.1f} s (shipped {ours.stalled_seconds:.1f} s), client CPU "
            f"{found.cpu_seconds / max(found.requests, 1) * 1e3:.2f} ms per request (shipped "
            f"{ours.cpu_seconds / max(ours.requests, 1) * 1e3:.2f} ms), {found.connections} TCP connections for "
            f"{found.requests} requests."
        )
    section.notes.append(
        "Lag is given per tick (as asked) and over time: a loop stalled for 18 s records a single late tick, so the "
        "per-tick p99 can look fine while the loop was frozen for a third of the run; the verdicts use the p99 over "
        "time (each tick weighted by its length), which a stall cannot hide."
    )
    section.notes.append(
        f"What the shared SSLContext is worth: with a context per client the same {own.waiters} triggers reach "
        f"peak RSS {own.rss_peak_mb:.0f} MB (shipped: {ours.rss_peak_mb:.0f} MB), lag p99 over time "
        f"{own.lag_time_p99_ms:.0f} ms (shipped: {ours.lag_time_p99_ms:.0f} ms), longest stall "
        f"{own.lag_max_ms / 1e3:.1f} s (shipped: {ours.lag_max_ms / 1e3:.1f} s)."
    )
    if ours.connections >= 0.9 * ours.requests and plan.poll_interval >= 5:
        section.notes.append(
            f"Finding (package code): with a {plan.poll_interval:g} s poll interval the triggers opened "
            f"{ours.connections} TCP connections for {ours.requests} requests: no keep-alive reuse between polls, "
            "because httpx closes idle connections after `keepalive_expiry` = 5 s (its default `Limits`) and "
            "`AsyncTransport` does not set `limits`. The trigger's default poll interval is 60 s, so against the "
            "real HTTPS APIs every poll pays a new TCP and TLS handshake. Options: accept it (60 s idle connections "
            "are often closed by servers anyway), or pass `limits=httpx.Limits(keepalive_expiry=...)` a little above "
            "the poll interval when it is short. (With the 0.5 s poll of the smoke run the same code reuses one "
            "connection per trigger.)"
        )


def run(smoke: bool) -> Section:
    from benchmarks import _httpx_study

    allow_bytecode_cache()
    prepare_airflow_home()
    plan = SMOKE if smoke else FULL
    workdir = Path(os.environ["FT_BENCH_AIRFLOW_HOME"]) / "triggerer"
    workdir.mkdir(exist_ok=True)
    section = Section("triggerer", "4. Triggerer scale: 1,000 triggers in one event loop", __doc__ or "")
    section.method += (
        f"\n\nThis run: {plan.waiters} waiters, poll interval {plan.poll_interval:g} s, jobs finish "
        f"{plan.finish_from:g}-{plan.finish_to:g} s after seeding, cap {plan.cap:g} s "
        f"(blocking baseline {plan.blocking_cap:g} s)."
    )
    with EmulatorProcess() as emulator:
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = emulator.connection_uri(VENDOR)
        results = [run_scenario(emulator, scenario, plan, workdir) for scenario in SCENARIOS]
    section.tables.append(results_table(results))
    add_targets(section, results[0])
    add_notes(section, results, plan)
    section.tables += _httpx_study.run_in_child(smoke, workdir)
    section.notes += _httpx_study.FINDINGS
    if smoke:
        section.notes.append(f"Smoke mode: {plan.waiters} waiters instead of 1,000; targets are for the full run.")
    return section


if __name__ == "__main__":
    if "--scenario" in sys.argv:
        raise SystemExit(scenario_main(sys.argv[1:]))
    raise SystemExit(bench_main(run))

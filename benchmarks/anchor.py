"""Benchmark 7: the lightest tenant of a triggerer (issue 26): N ``FineTuningJobTrigger`` in one event loop against
N of Airflow's own cheapest trigger, ``DateTimeTrigger`` (it only sleeps until a moment).

Each kind runs in a fresh Python process of its own (a scenario process, as in benchmark 4), N triggers of one kind
started in the same loop iteration next to the 10 ms ticker of benchmark 4, which records how late every sleep wakes
up (the event-loop lag). Both processes import the same modules (Airflow's ``DateTimeTrigger`` and our trigger and
hook), so they differ only in the triggers they run. Nothing touches the garbage collector's settings (no
``gc.freeze``, ``gc.disable`` or thresholds): the collector runs as a triggerer's does.

- *DateTimeTrigger*: ``airflow.triggers.temporal.DateTimeTrigger`` (in Airflow 3 an alias of
  ``airflow.providers.standard.triggers.temporal.DateTimeTrigger``), ``moment`` spread evenly over the window in
  which our triggers see their jobs end (4 to 5 poll intervals after the start), ``end_from_trigger`` off. It runs
  as Airflow ships it: sleeps of 10 s, then of 1 s, logging a line at each.
- *ours*: ``FineTuningJobTrigger`` exactly as ``FineTuningJobSensor`` builds it when it defers
  (``triggers.events.defer_watching``) with the sensor's defaults: ``poll_interval=5`` (``poke_interval``), a
  ``deadline`` 7 days away (``[sensors] default_timeout``), ``log_events=True``, ``events_after=None``,
  ``cancel_on_kill=False``, ``cancel_on_timeout=False``, no cost guards. One OpenAI connection for all (one account),
  against ``benchmarks/_job_server.py`` in a process of its own: a loopback stand-in that answers every request
  20 ms after it came and ends every job after four polls, so a job is seen ended at its fifth poll, about 20 s in.
  At 5 s polls a poll is a job GET and an events GET, so N = 5,000 asks for about 2,000 requests a second, while the
  32 connections of one account's pool (``transport.shared.POOL_SIZE``) carry at most 1,600 a second at 20 ms each:
  the pool, not the stand-in, sets the pace (polls wait for a connection, and jobs are seen ended later than 20 s);
  at N = 10,000 twice as much. The stand-in counts the requests, the TCP connections and the most requests waiting
  for their answer at once.

Measured in each process:

- *objects per waiting trigger, mid-wait*: ``len(gc.get_objects())`` halfway through the wait (when no trigger has
  ended yet) minus the same count just before the triggers were created, divided by the triggers still waiting. The
  count before is taken after a ``gc.collect()`` (outside the measured wait), so it holds no garbage; the count
  mid-wait is taken without one: it is what a full collection at that moment has to traverse, garbage not yet
  collected included (the triggers' own: responses, parsed jobs, log records), and forcing a collection there would
  add a full collection and a stall to the very figures measured next to it. The same two moments give a count by
  type (the types that grew most, per waiting trigger). The mid-wait count takes tens of ms at 10,000 triggers: the
  ticks that overlap it are left out of the lag.
- *full collections*: CPython's generation-2 collections (``gc.callbacks``) from the creation of the triggers to the
  last one's event, the longest of them, those after start-up, per minute of wait, and the time in all collections.
- *loop lag after start-up*: p99 and worst lag of the ticker's 10 ms sleeps, the first 2 s (where every trigger is
  created and started at once) left out; the worst lag during start-up is shown apart.
- *peak RSS*: ``ru_maxrss`` of the process (its imports included).

Targets (issue 26): ours <= 2x DateTimeTrigger's objects per waiting trigger; <= 2x its full collections; worst lag
after start-up <= 2x DateTimeTrigger's worst + 20 ms. Reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks._common import allow_bytecode_cache, median, percentile, prepare_airflow_home
from benchmarks._report import Section, Table, Target, bench_main
from benchmarks.triggerer import TICK, GcLog, Tick, peak_rss_mb, rss_mb, ticker, tracked_objects

CONN_ID = "ft_bench_anchor"
API_KEY = "sk-bench-0123456789abcdef"
KINDS = {"datetime": "DateTimeTrigger", "ours": "FineTuningJobTrigger"}
#: The sensor's ``[sensors] default_timeout`` (7 days): the trigger's deadline when the sensor defers.
SENSOR_TIMEOUT = 7 * 24 * 3600.0
LAG_SLACK_MS = 20.0
#: Types shown in the breakdown of the objects added mid-wait.
TOP_TYPES = 6


@dataclass(frozen=True)
class Plan:
    sizes: tuple[int, ...]
    poll_interval: float
    polls: int  # polls that see a job running; the next one sees it ended
    delay: float  # the stand-in's answer time
    startup: float  # seconds of start-up left out of the lag
    cap: float

    @property
    def fire_from(self) -> float:
        """When the DateTimeTriggers start to fire: where our triggers start to see their jobs ended."""
        return self.polls * self.poll_interval

    @property
    def fire_to(self) -> float:
        return (self.polls + 1) * self.poll_interval

    @property
    def mid(self) -> float:
        """When the objects are counted: halfway to the first end."""
        return self.fire_from / 2


FULL = Plan(sizes=(5000, 10000), poll_interval=5.0, polls=4, delay=0.02, startup=2.0, cap=180.0)
SMOKE = Plan(sizes=(30,), poll_interval=0.3, polls=4, delay=0.02, startup=0.2, cap=20.0)


@dataclass
class Result:
    kind: str
    waiters: int
    completed: int = 0
    errors: int = 0
    first_error: str = ""
    seconds: float = 0.0
    done_first: float = 0.0
    done_p50: float = 0.0
    done_max: float = 0.0
    objects_before: int = 0
    objects_mid: int = 0
    waiting_mid: int = 0
    count_ms: float = 0.0
    gc_collections: dict[str, int] = field(default_factory=dict)
    gc_full_longest_ms: float = 0.0
    gc_full_after_startup: int = 0
    gc_full_after_startup_longest_ms: float = 0.0
    #: The types that grew most from before to mid-wait: (type name, objects added per waiting trigger).
    top_types: list[tuple[str, float]] = field(default_factory=list)
    gc_seconds: float = 0.0
    lag_p99_ms: float = 0.0
    lag_max_ms: float = 0.0
    lag_startup_max_ms: float = 0.0
    ticks: int = 0
    cpu_seconds: float = 0.0
    rss_start_mb: float = 0.0
    rss_peak_mb: float = 0.0
    log_lines: int = 0
    server: dict[str, int] = field(default_factory=dict)

    @property
    def objects_per_trigger(self) -> float:
        return (self.objects_mid - self.objects_before) / max(self.waiting_mid, 1)

    @property
    def gc_full(self) -> int:
        return self.gc_collections.get("2", 0)

    @property
    def gc_full_per_minute(self) -> float:
        return self.gc_full / max(self.seconds, 1e-9) * 60


# -- the scenario process ----------------------------------------------------------------------------------------


def make_triggers(kind: str, count: int, plan: Plan) -> list[Any]:
    """``count`` triggers of ``kind``, as they reach a triggerer."""
    if kind == "datetime":
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        now, spread = datetime.now(UTC), plan.fire_to - plan.fire_from
        return [
            DateTimeTrigger(moment=now + timedelta(seconds=plan.fire_from + spread * index / max(count, 1)))
            for index in range(count)
        ]
    from airflow_provider_ft.triggers.fine_tuning import FineTuningJobTrigger

    deadline = time.time() + SENSOR_TIMEOUT
    return [
        # What defer_watching passes for a FineTuningJobSensor with its defaults (poke_interval -> poll_interval).
        FineTuningJobTrigger(
            conn_id=CONN_ID,
            job_id=f"ftjob-anchor{index:06d}",
            poll_interval=plan.poll_interval,
            deadline=deadline,
            events_after=None,
            log_events=True,
            cancel_on_kill=False,
            cancel_on_timeout=False,
            max_trained_tokens=None,
            max_runtime=None,
        )
        for index in range(count)
    ]


async def measure(kind: str, count: int, plan: Plan) -> Result:
    result = Result(kind, count)
    gc.collect()  # before the clock: the count before holds no garbage
    types_before = Counter(map(type, gc.get_objects()))
    result.objects_before = tracked_objects()
    result.rss_start_mb = rss_mb()
    gcs, ticks, finished = GcLog(), list[Tick](), list[float]()
    counting: list[tuple[float, float]] = []  # (start, end) of the mid-wait count, left out of the lag
    errors: list[str] = []
    stop = asyncio.Event()
    with gcs.recording():
        started, cpu_started = time.perf_counter(), time.process_time()
        tick = asyncio.create_task(ticker(ticks, stop))
        triggers = make_triggers(kind, count, plan)

        async def one(trigger: Any) -> None:
            try:
                async for _event in trigger.run():
                    finished.append(time.perf_counter() - started)
                    return
                errors.append("no event")
            except Exception as error:
                errors.append(f"{type(error).__name__}: {error}")

        async def count_mid() -> None:
            await asyncio.sleep(max(started + plan.mid - time.perf_counter(), 0.0))
            begun = time.perf_counter()
            result.waiting_mid = count - len(finished) - len(errors)
            result.objects_mid = tracked_objects()
            grown = Counter(map(type, gc.get_objects()))
            grown.subtract(types_before)
            waiting = max(result.waiting_mid, 1)
            result.top_types = [(kind.__name__, added / waiting) for kind, added in grown.most_common(TOP_TYPES)]
            del grown
            counting.append((begun, time.perf_counter()))

        try:
            async with asyncio.timeout(plan.cap):
                await asyncio.gather(count_mid(), *(one(trigger) for trigger in triggers))
        except TimeoutError:
            errors.append(f"capped at {plan.cap:g} s")
        result.seconds = time.perf_counter() - started
        result.cpu_seconds = time.process_time() - cpu_started
        stop.set()
        await tick
    del triggers
    after: list[float] = []
    during: list[float] = []
    for now, lag, _, _ in ticks:
        begun = now - TICK - lag
        if any(begun < ended and now > start for start, ended in counting):
            continue
        (after if now - started > plan.startup else during).append(lag)
    result.completed, result.errors = len(finished), len(errors)
    result.first_error = errors[0][:300] if errors else ""
    result.done_first = min(finished, default=float("nan"))
    result.done_p50 = median(finished)
    result.done_max = max(finished, default=float("nan"))
    result.count_ms = sum(ended - begun for begun, ended in counting) * 1e3
    result.gc_collections = gcs.collections
    result.gc_full_longest_ms = gcs.longest_full * 1e3
    later = [seconds for at, seconds in gcs.full_spans if at - started > plan.startup]
    result.gc_full_after_startup = len(later)
    result.gc_full_after_startup_longest_ms = max(later, default=0.0) * 1e3
    result.gc_seconds = gcs.seconds
    result.lag_p99_ms = percentile(after, 0.99) * 1e3
    result.lag_max_ms = max(after, default=float("nan")) * 1e3
    result.lag_startup_max_ms = max(during, default=float("nan")) * 1e3
    result.ticks = len(after)
    result.rss_peak_mb = peak_rss_mb()
    return result


def scenario_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.anchor --scenario")
    parser.add_argument("--scenario", choices=sorted(KINDS), required=True)
    parser.add_argument("--waiters", type=int, required=True)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    sys.stdout = sys.stderr
    # Both kinds import the same modules before the clock starts: the processes differ only in their triggers.
    import airflow.providers.standard.triggers.temporal  # noqa: F401

    import airflow_provider_ft.hooks.fine_tuning
    import airflow_provider_ft.triggers.fine_tuning  # noqa: F401

    plan = SMOKE if args.smoke else FULL
    result = asyncio.run(measure(args.scenario, args.waiters, plan))
    args.result.write_text(json.dumps(asdict(result)))
    return 0


# -- the parent ------------------------------------------------------------------------------------------------


def start_server(plan: Plan) -> tuple[subprocess.Popen[str], int]:
    command = [sys.executable, "-m", "benchmarks._job_server", "--delay", str(plan.delay), "--polls", str(plan.polls)]
    server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    return server, int(server.stdout.readline())


def stop_server(server: subprocess.Popen[str]) -> dict[str, int]:
    out, _ = server.communicate(timeout=30)
    lines = out.strip().splitlines()
    return dict(json.loads(lines[-1])) if lines else {}


def run_scenario(kind: str, count: int, smoke: bool, workdir: Path) -> Result:
    plan = SMOKE if smoke else FULL
    stem = workdir / f"anchor-{kind}-{count}"
    server = None
    env = dict(os.environ)
    if kind == "ours":
        server, port = start_server(plan)
        definition = {
            "conn_type": "openaifinetuning",
            "host": f"http://127.0.0.1:{port}/openai/v1",
            "password": API_KEY,
            "extra": {},
        }
        env[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(definition)
    command = [sys.executable, "-m", "benchmarks.anchor", "--scenario", kind, "--waiters", str(count)]
    command += ["--result", str(stem.with_suffix(".json"))] + (["--smoke"] if smoke else [])
    try:
        with open(stem.with_suffix(".log"), "w") as log:
            code = subprocess.run(command, stdout=log, stderr=log, env=env, timeout=plan.cap + 180).returncode
    finally:
        seen = stop_server(server) if server is not None else {}
    if code != 0:
        raise RuntimeError(f"anchor/{kind}/{count} exited {code}; see {stem.with_suffix('.log')}")
    result = Result(**json.loads(stem.with_suffix(".json").read_text()))
    result.server = seen
    with open(stem.with_suffix(".log"), "rb") as log:
        result.log_lines = sum(1 for _ in log)
    shown = asdict(result)
    print(f"anchor/{kind}/{count}: {json.dumps(shown)}", flush=True)
    return result


# -- the report --------------------------------------------------------------------------------------------------


def targets_for(dt: Result, ours: Result) -> list[tuple[str, str, str, bool]]:
    """(metric, measured, asked, met) of the three targets."""
    objects_limit = 2 * dt.objects_per_trigger
    full_limit = 2 * dt.gc_full
    lag_limit = 2 * dt.lag_max_ms + LAG_SLACK_MS
    return [
        (
            "Objects per waiting trigger",
            f"ours {ours.objects_per_trigger:.0f} vs DateTimeTrigger {dt.objects_per_trigger:.0f} "
            f"({ours.objects_per_trigger / max(dt.objects_per_trigger, 1e-9):.1f}x)",
            f"<= 2x DateTimeTrigger's ({objects_limit:.0f})",
            ours.objects_per_trigger <= objects_limit,
        ),
        (
            "Full collections during the wait",
            f"ours {ours.gc_full} (longest {ours.gc_full_longest_ms:.0f} ms) vs DateTimeTrigger {dt.gc_full} "
            f"(longest {dt.gc_full_longest_ms:.0f} ms)",
            f"<= 2x DateTimeTrigger's ({full_limit})",
            ours.gc_full <= full_limit,
        ),
        (
            "Worst loop lag after start-up",
            f"ours {ours.lag_max_ms:.0f} ms vs DateTimeTrigger {dt.lag_max_ms:.0f} ms",
            f"<= 2x DateTimeTrigger's + {LAG_SLACK_MS:.0f} ms ({lag_limit:.0f} ms)",
            ours.lag_max_ms <= lag_limit,
        ),
    ]


def types_text(found: Result) -> str:
    return ", ".join(f"{name} {added:.1f}" for name, added in found.top_types)


def limit_text(metric: str, dt: Result, ours: Result) -> str:
    """What the run's own figures say about a target not met."""
    if metric.startswith("Objects"):
        return (
            f"{ours.objects_mid - ours.objects_before:,} objects more mid-wait for {ours.waiting_mid:,} waiting "
            f"triggers; the types that grew most, per waiting trigger: ours {types_text(ours)}; DateTimeTrigger "
            f"{types_text(dt)}"
        )
    if metric.startswith("Full"):
        return (
            f"ours ran {sum(ours.gc_collections.values()):,} collections in all vs {sum(dt.gc_collections.values()):,}"
            f" (a young collection comes every {gc.get_threshold()[0]} net new container objects: a measure of how "
            f"much each kind allocates), over a wait of {ours.seconds:.0f} s vs {dt.seconds:.0f} s "
            f"({ours.gc_full_per_minute:.1f} vs {dt.gc_full_per_minute:.1f} full collections a minute), with "
            f"{ours.objects_mid:,} vs {dt.objects_mid:,} tracked objects mid-wait"
        )
    return (
        f"ours: {ours.gc_full_after_startup} full collections after start-up, the longest "
        f"{ours.gc_full_after_startup_longest_ms:.0f} ms; {ours.gc_seconds:.2f} s in all collections, "
        f"{ours.cpu_seconds:.1f} s of CPU in {ours.seconds:.0f} s; DateTimeTrigger: {dt.gc_full_after_startup} "
        f"after start-up (longest {dt.gc_full_after_startup_longest_ms:.0f} ms), {dt.cpu_seconds:.1f} s of CPU"
    )


def size_table(dt: Result, ours: Result) -> tuple[Table, list[Target]]:
    count = ours.waiters
    dt_head, ours_head = f"DateTimeTrigger x {dt.waiters:,}", f"ours x {count:,}"
    table = Table(
        f"{count:,} triggers of each kind in one event loop (each kind a fresh process)",
        ["Metric", dt_head, ours_head, "Target", "Verdict"],
    )
    checks = {metric: (asked, met) for metric, _, asked, met in targets_for(dt, ours)}

    def row(metric: str, dt_cell: str, ours_cell: str) -> None:
        asked, met = checks.get(metric, ("-", None))
        table.add(metric, dt_cell, ours_cell, asked, "-" if met is None else ("met" if met else "NOT met"))

    def fired(found: Result) -> str:
        text = f"{found.completed}/{found.waiters}"
        return text + (f" ({found.errors} errors: {found.first_error})" if found.errors else "")

    row("Triggers that fired", fired(dt), fired(ours))
    row("Objects per waiting trigger", f"{dt.objects_per_trigger:.0f}", f"{ours.objects_per_trigger:.0f}")
    row(
        "Tracked objects before / mid-wait",
        f"{dt.objects_before:,} / {dt.objects_mid:,}",
        f"{ours.objects_before:,} / {ours.objects_mid:,}",
    )
    row(
        "Full collections during the wait",
        f"{dt.gc_full} (of {sum(dt.gc_collections.values())})",
        f"{ours.gc_full} (of {sum(ours.gc_collections.values())})",
    )
    row("Longest full collection, ms", f"{dt.gc_full_longest_ms:.0f}", f"{ours.gc_full_longest_ms:.0f}")
    row(
        "Full collections after start-up (longest, ms)",
        f"{dt.gc_full_after_startup} ({dt.gc_full_after_startup_longest_ms:.0f})",
        f"{ours.gc_full_after_startup} ({ours.gc_full_after_startup_longest_ms:.0f})",
    )
    row("Full collections a minute of wait", f"{dt.gc_full_per_minute:.1f}", f"{ours.gc_full_per_minute:.1f}")
    row("Time in all collections, s", f"{dt.gc_seconds:.2f}", f"{ours.gc_seconds:.2f}")
    row("Loop lag after start-up p99, ms", f"{dt.lag_p99_ms:.1f}", f"{ours.lag_p99_ms:.1f}")
    row("Worst loop lag after start-up", f"{dt.lag_max_ms:.0f} ms", f"{ours.lag_max_ms:.0f} ms")
    row("Worst loop lag during start-up, ms", f"{dt.lag_startup_max_ms:.0f}", f"{ours.lag_startup_max_ms:.0f}")
    row(
        "Peak RSS, MB (before the triggers)",
        f"{dt.rss_peak_mb:.0f} ({dt.rss_start_mb:.0f})",
        f"{ours.rss_peak_mb:.0f} ({ours.rss_start_mb:.0f})",
    )
    row(
        "Fired: first / p50 / last, s",
        f"{dt.done_first:.1f} / {dt.done_p50:.1f} / {dt.done_max:.1f}",
        f"{ours.done_first:.1f} / {ours.done_p50:.1f} / {ours.done_max:.1f}",
    )
    row(
        "Process CPU, s (wall s)",
        f"{dt.cpu_seconds:.1f} ({dt.seconds:.0f})",
        f"{ours.cpu_seconds:.1f} ({ours.seconds:.0f})",
    )
    seen = ours.server
    row(
        "Requests (job / event GETs), TCP connections, most in flight",
        "-",
        f"{seen.get('requests', 0)} ({seen.get('job_gets', 0)} / {seen.get('event_gets', 0)}), "
        f"{seen.get('connections', 0)}, {seen.get('max_in_flight', 0)}",
    )
    row("Log lines", str(dt.log_lines), str(ours.log_lines))
    row("Objects added mid-wait per waiting trigger, by type (most)", types_text(dt), types_text(ours))
    targets = [
        Target(
            f"7. {count:,} triggers: {metric.lower()}, ours vs DateTimeTrigger",
            measured,
            asked,
            met,
            "" if met else limit_text(metric, dt, ours),
        )
        for metric, measured, asked, met in targets_for(dt, ours)
    ]
    return table, targets


def pace_note(dt: Result, ours: Result, plan: Plan) -> str:
    """How fast our triggers' polls went against what they asked for and what one account's pool carries."""
    from airflow_provider_ft.transport.shared import POOL_SIZE

    seen = ours.server
    requests = seen.get("requests", 0)
    longer = ours.seconds / max(dt.seconds, 1e-9)
    text = (
        f"N = {ours.waiters:,}: our triggers sent {requests:,} requests in {ours.seconds:.0f} s "
        f"({requests / max(ours.seconds, 1e-9):,.0f} a second; at most {seen.get('max_in_flight', 0)} waiting for an "
        f"answer at once, over {seen.get('connections', 0)} TCP connections); polling every {plan.poll_interval:g} s "
        f"(a job GET and an events GET) asks for {2 * ours.waiters / plan.poll_interval:,.0f} a second, and the "
        f"account's pool of {POOL_SIZE} connections carries at most {POOL_SIZE / plan.delay:,.0f} a second at "
        f"{plan.delay * 1e3:.0f} ms an answer. Their jobs were seen ended from {ours.done_first:.0f} to "
        f"{ours.done_max:.0f} s, the DateTimeTriggers fired from {dt.done_first:.0f} to {dt.done_max:.0f} s"
    )
    if longer > 1.1:
        text += (
            f": our wait was {longer:.1f}x as long, which gives its collector more time for full collections (the "
            "target counts them per wait; the row of full collections a minute evens that out)"
        )
    return text + "."


def run(smoke: bool) -> Section:
    allow_bytecode_cache()
    prepare_airflow_home()
    plan = SMOKE if smoke else FULL
    workdir = Path(os.environ["FT_BENCH_AIRFLOW_HOME"]) / "anchor"
    workdir.mkdir(exist_ok=True)
    sizes = " and ".join(f"{size:,}" for size in plan.sizes)
    section = Section(
        "anchor", "7. The lightest tenant of a triggerer: ours against Airflow's DateTimeTrigger", __doc__ or ""
    )
    section.method += (
        f"\n\nThis run: N = {sizes}; poll interval {plan.poll_interval:g} s, the stand-in answers in "
        f"{plan.delay * 1e3:.0f} ms and ends each job after {plan.polls} polls; DateTimeTriggers fire from "
        f"{plan.fire_from:g} to {plan.fire_to:g} s; objects counted at {plan.mid:g} s; the first "
        f"{plan.startup:g} s are start-up; cap {plan.cap:g} s."
    )
    for count in plan.sizes:
        dt = run_scenario("datetime", count, smoke, workdir)
        ours = run_scenario("ours", count, smoke, workdir)
        table, targets = size_table(dt, ours)
        section.tables.append(table)
        section.targets += targets
        section.notes.append(pace_note(dt, ours, plan))
    section.notes.append(
        "Both processes import the same modules (Airflow, its standard provider's `DateTimeTrigger`, our trigger "
        "and hook) before the count before and the clock; peak RSS includes those imports."
    )
    section.notes.append(
        "A DateTimeTrigger logs a line at every sleep (10 s, then 1 s ones), and Airflow's log configuration writes "
        "them, as our triggers' progress and event lines, to the process's stderr (here a file): the Log lines row; "
        "their formatting and writing is part of each kind's CPU."
    )
    if smoke:
        section.notes.append("Smoke mode: tiny sizes and short intervals; the targets are for the full run.")
    return section


if __name__ == "__main__":
    if "--scenario" in sys.argv:
        raise SystemExit(scenario_main(sys.argv[1:]))
    raise SystemExit(bench_main(run))

"""Benchmark 6: the CPU one trigger poll costs the triggerer's event loop, and where it goes.

Every poll of every trigger runs in the triggerer's one event loop, so the CPU of a poll, times the polls that fall
due together, is the lag every other trigger of the deployment sees. This measures it against a trivial loopback
server (``_trivial_server``, own process: it answers every request with the same small job at once), so what is
measured is this process's own work:

- ``shipped``: ``hook.apoll_job`` over ``hook.async_transport()`` (the shared per-account pool of h11 clients,
  read coalescing, the shared rate-limit gate, the retry loop built only after a failure);
- ``today's``: the same polls over the frozen copy of the transport at commit b8e40c2 (``benchmarks/_baseline``:
  one ``httpx.AsyncClient`` per trigger, no sharing).

Polls run one after another on one keep-alive connection, in interleaved rounds (the order swaps every round), and
each round's CPU time (``time.process_time``) is divided by its polls; medians over rounds are reported. Polls one
after another never overlap and ``async_transport()`` reuses no answer by default, so every shipped poll is sent:
its figure includes the cost of looking for a shared read, never the saving of one. Then one ``cProfile`` run per
variant gives the share of each part of the stack (self time, grouped by package; profiling inflates every figure,
so read the shares), and the cost of a progress line logged through a ``logging.FileHandler`` is set against the
check that skips an unchanged one (the trigger logs a line only when the progress changed, and every 10 minutes).
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import logging
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from benchmarks._common import allow_bytecode_cache, median, prepare_airflow_home
from benchmarks._report import Section, Table, Target, bench_main

CONN_ID = "ft_bench_poll_cost"
API_KEY = "sk-bench-poll-cost-0123456789"
JOB_ID = "ftjob-trivial"
#: Parts of the stack, by the package (or standard module) a function's file belongs to.
PARTS = {
    "HTTP client (httpx, httpcore, h11, anyio, sniffio, idna, certifi)": (
        "httpx",
        "httpcore",
        "h11",
        "anyio",
        "sniffio",
        "idna",
        "certifi",
    ),
    "retries (tenacity)": ("tenacity",),
    "our transport, gate, pool, coalescing": (
        "transport/base",
        "transport/aio",
        "transport/shared",
        "transport/ratelimit",
        "_baseline",
    ),
    "our parsing (dialect, jobs, body, operations)": ("vendors/", "jobs.py", "transport/body", "hooks/_operations"),
    "our hook": ("hooks/fine_tuning",),
    "asyncio, selectors, sockets": ("asyncio/", "selectors.py", "socket", "epoll", "ssl.py"),
    "json": ("json/",),
    "logging": ("logging/",),
}


Opener = Callable[[Any], AbstractAsyncContextManager[Any]]


def openers() -> dict[str, Opener]:
    from benchmarks._baseline import trigger as baseline

    return {
        "shipped": lambda hook: hook.async_transport(),
        "today's (b8e40c2)": lambda hook: baseline.async_transport(hook),
    }


async def polls(opener: Opener, count: int) -> float:
    """CPU seconds of ``count`` polls over one transport (opened and warmed up first)."""
    from airflow_provider_ft.hooks.fine_tuning import FineTuningHook

    hook = FineTuningHook(CONN_ID)
    async with opener(hook) as transport:
        for _ in range(20):
            await hook.apoll_job(transport, JOB_ID)
        started = time.process_time()
        for _ in range(count):
            await hook.apoll_job(transport, JOB_ID)
        return time.process_time() - started


def measure(rounds: int, count: int) -> dict[str, list[float]]:
    per_poll: dict[str, list[float]] = defaultdict(list)
    names = list(openers())
    for index in range(rounds):
        for name in names if index % 2 == 0 else reversed(names):
            per_poll[name].append(asyncio.run(polls(openers()[name], count)) / count)
    return per_poll


def part_of(filename: str, function: str) -> str:
    where = f"{filename} {function}"
    for part, markers in PARTS.items():
        if any(marker in where for marker in markers):
            return part
    return "other"


def profile(opener: Opener, count: int) -> dict[str, float]:
    """Self time per part of the stack, in profiled microseconds per poll."""
    profiler = cProfile.Profile()
    profiler.runcall(asyncio.run, polls(opener, count))
    parts: dict[str, float] = defaultdict(float)
    stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    for (filename, _, function), (_, _, self_time, _, _) in stats.items():
        parts[part_of(filename, function)] += self_time * 1e6 / count
    return parts


def logging_costs(count: int) -> dict[str, float]:
    """Microseconds per call: a progress line written by a ``FileHandler``, and the check that skips it."""
    from airflow_provider_ft.triggers.fine_tuning import _ProgressLine
    from airflow_provider_ft.vendors.openai import OpenAIDialect

    job = OpenAIDialect().parse_job({"object": "fine_tuning.job", "id": JOB_ID, "status": "running"}, job_id=JOB_ID)
    with tempfile.TemporaryDirectory() as folder:
        logger = logging.getLogger("benchmarks.poll_cost.progress")
        logger.propagate = False
        handler = logging.FileHandler(os.path.join(folder, "trigger.log"))
        handler.setFormatter(logging.Formatter("[%(asctime)s] {%(filename)s:%(lineno)d} %(levelname)s - %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            started = time.process_time()
            for _ in range(count):
                job.log_progress(logger)
            every_poll = (time.process_time() - started) / count
            line = _ProgressLine(logger)
            line.log(job)
            started = time.process_time()
            for _ in range(count):
                line.log(job)
            unchanged = (time.process_time() - started) / count
        finally:
            logger.removeHandler(handler)
            handler.close()
    return {
        "a progress line each poll (today)": every_poll * 1e6,
        "an unchanged line skipped (shipped)": unchanged * 1e6,
    }


class TrivialServer:
    def __enter__(self) -> int:
        command = [sys.executable, "-m", "benchmarks._trivial_server"]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        return int(self.process.stdout.readline())

    def __exit__(self, *_: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


def run(smoke: bool) -> Section:
    allow_bytecode_cache()
    prepare_airflow_home()
    rounds, count, profiled = (2, 50, 100) if smoke else (12, 1000, 2000)
    section = Section("poll_cost", "6. The CPU of one trigger poll, and where it goes", __doc__ or "")
    section.method += f"\n\n{rounds} rounds x {count} polls per variant; {profiled} polls profiled per variant."
    with TrivialServer() as port:
        definition = {"conn_type": "openaifinetuning", "host": f"http://127.0.0.1:{port}/v1", "password": API_KEY}
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(definition)
        per_poll = measure(rounds, count)
        parts = {name: profile(opener, profiled) for name, opener in openers().items()}
    cpu = {name: median(values) * 1e6 for name, values in per_poll.items()}
    shipped, today = cpu["shipped"], cpu["today's (b8e40c2)"]
    table = Table("CPU per poll (median over rounds)", ["Variant", "CPU µs per poll", "vs today's"])
    for name, value in cpu.items():
        table.add(name, f"{value:.0f}", f"{value / today:.2f}x")
    section.tables.append(table)
    names = list(parts)
    breakdown = Table(
        "Where a poll's CPU goes (cProfile self time per poll; profiled µs, inflated: read the shares)",
        ["Part", *(f"{name}: µs (share)" for name in names)],
    )
    totals = {name: sum(parts[name].values()) for name in names}
    for part in [*PARTS, "other"]:
        breakdown.add(
            part,
            *(f"{parts[name].get(part, 0.0):.0f} ({parts[name].get(part, 0.0) / totals[name]:.0%})" for name in names),
        )
    section.tables.append(breakdown)
    logs = logging_costs(200 if smoke else 20000)
    log_table = Table("A progress line (logging.FileHandler)", ["What", "CPU µs per poll"])
    for what, value in logs.items():
        log_table.add(what, f"{value:.1f}")
    section.tables.append(log_table)
    section.targets.append(
        Target(
            "CPU per poll, shipped vs today's",
            f"{shipped:.0f} µs vs {today:.0f} µs ({shipped / today:.2f}x)",
            "cut: less than today's",
            shipped < today,
            "" if shipped < today else "the gate, pool and coalescing bookkeeping (see the breakdown)",
        )
    )
    client_share = parts["shipped"].get(next(iter(PARTS)), 0.0) / totals["shipped"]
    section.notes.append(
        f"The HTTP client stack takes {client_share:.0%} of a shipped poll's self time; our own transport, gate, pool "
        "and parsing together take the shares shown above. The cuts made where the profile points: no client built "
        "per trigger (construction and its SSL context, benchmark 4's client table), one connection reused by many "
        "triggers instead of one per trigger, shared reads (benchmark 4's coalescing figure) and no log line for an "
        "unchanged poll (table above), h11 over asyncio streams instead of httpx (benchmark 4's study compares the "
        "clients), and no retry machinery (tenacity) for a request that succeeds at once."
    )
    return section


if __name__ == "__main__":
    raise SystemExit(bench_main(run))

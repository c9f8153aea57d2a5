"""Benchmark 2: call overhead of ``FineTuningHook.get_job`` against a bare ``requests.Session``.

The emulator serves in its own process (so its CPU does not share our GIL). For each vendor one job is seeded;
then ``hook.get_job(job_id)`` and the same request made with a bare ``requests.Session`` (same URL, same headers,
same timeout, ``allow_redirects=False``, ``response.json()``) alternate in rounds of a fixed number of calls, the
order swapping every round so that drift on a shared machine hits both alike. Reported: median per-call wall time
of each, the ratio of medians over rounds (the target's measure) and the ratio of totals, the client CPU per call
(``time.process_time``: our process only, the server is elsewhere), and the TCP connections the emulator accepted
while each client ran (keep-alive must make that 1 per session).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks._common import allow_bytecode_cache, median, prepare_airflow_home, ratio
from benchmarks._emulator import EmulatorProcess
from benchmarks._report import Section, Table, Target, bench_main

TARGET_RATIO = 1.2
RUNNING = {"dashscope": "RUNNING", "openai": "running"}


@dataclass
class Timings:
    """Per-round measurements of one client."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    connections: int = 0


def timed(calls: int, call: Callable[[], Any]) -> tuple[float, float]:
    """Wall and CPU seconds per call of ``calls`` calls."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - wall) / calls, (time.process_time() - cpu) / calls


def bare_client(hook: Any, job_id: str) -> Callable[[], Any]:
    """The same GET as ``hook.get_job(job_id)``, made with a bare keep-alive ``requests.Session``."""
    import requests

    settings = hook.settings
    session = requests.Session()
    session.headers.update(settings.headers())
    url = settings.url(settings.dialect.get_job(job_id))
    timeout = (settings.timeout, settings.timeout)

    def get() -> Any:
        answer = session.get(url, timeout=timeout, allow_redirects=False)
        answer.raise_for_status()
        return answer.json()

    return get


def measure_vendor(emulator: EmulatorProcess, vendor: str, rounds: int, calls: int) -> dict[str, Timings]:
    from airflow_provider_ft.hooks.fine_tuning import FineTuningHook

    conn_id = f"ft_bench_{vendor}"
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = emulator.connection_uri(vendor)
    [job_id] = emulator.seed_jobs(vendor, 1, status=RUNNING[vendor], runs_for=None)
    hook = FineTuningHook(conn_id)
    clients: dict[str, Callable[[], Any]] = {"hook.get_job": lambda: hook.get_job(job_id)}
    clients["bare requests.Session"] = bare_client(hook, job_id)
    timings = {name: Timings() for name in clients}
    for index in range(rounds):
        order = list(clients) if index % 2 == 0 else list(reversed(clients))
        for name in order:
            opened = emulator.connections_opened()
            wall, cpu = timed(calls, clients[name])
            timings[name].connections += emulator.connections_opened() - opened
            timings[name].wall.append(wall)
            timings[name].cpu.append(cpu)
    hook.close()
    return timings


def vendor_rows(table: Table, vendor: str, timings: dict[str, Timings]) -> float:
    """Add the vendor's rows; returns the ratio of medians (hook / bare)."""
    hook, bare = timings["hook.get_job"], timings["bare requests.Session"]
    per_round = [ours / theirs for ours, theirs in zip(hook.wall, bare.wall, strict=True)]
    median_ratio = median(per_round)
    for name, found in timings.items():
        is_hook = found is hook
        table.add(
            vendor,
            name,
            f"{median(found.wall) * 1e6:.0f}",
            f"{median(found.cpu) * 1e6:.0f}",
            found.connections,
            ratio(median_ratio) if is_hook else "1.00x",
            ratio(sum(hook.wall) / sum(bare.wall)) if is_hook else "1.00x",
        )
    return median_ratio


def run(smoke: bool) -> Section:
    allow_bytecode_cache()
    prepare_airflow_home()
    rounds, calls = (4, 25) if smoke else (30, 200)
    section = Section("call_overhead", "2. Call overhead: hook.get_job vs a bare requests.Session", __doc__ or "")
    section.method += f"\n\n{rounds} rounds x {calls} calls per client and vendor."
    table = Table(
        "Per call (medians over rounds)",
        [
            "Vendor",
            "Client",
            "Wall µs/call",
            "Client CPU µs/call",
            "TCP connections opened",
            "Ratio (median of per-round ratios)",
            "Ratio of totals",
        ],
    )
    with EmulatorProcess() as emulator:
        for vendor in ("openai", "dashscope"):
            timings = measure_vendor(emulator, vendor, rounds, calls)
            found = vendor_rows(table, vendor, timings)
            section.targets.append(
                Target(
                    f"{vendor}: hook.get_job / bare requests.Session",
                    ratio(found),
                    f"<= {TARGET_RATIO:.1f}x",
                    found <= TARGET_RATIO,
                    "" if found <= TARGET_RATIO else "per-call CPU of retry wrapper and parsing (see CPU column)",
                )
            )
            connections = {name: timing.connections for name, timing in timings.items()}
            section.targets.append(
                Target(
                    f"{vendor}: TCP connections per session",
                    ", ".join(f"{name}: {count}" for name, count in connections.items()),
                    "1 each",
                    all(count == 1 for count in connections.values()),
                )
            )
    section.tables.append(table)
    section.notes.append(
        "Wall time includes the emulator's own handling (FastAPI in another process), the same for both clients; "
        "the CPU column is this process only, so it isolates the client-side cost."
    )
    return section


if __name__ == "__main__":
    raise SystemExit(bench_main(run))

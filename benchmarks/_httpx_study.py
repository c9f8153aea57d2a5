"""Part 2 of the triggerer benchmark: which asyncio HTTP client, measured against a trivial loopback server.

Runs in its own process, against ``_trivial_server`` (another process, which does almost nothing per request) so
that only the client's cost shows. K concurrent tasks (8 and 32) each send R GETs one after the other and decode
the JSON; every case runs in its own event loop, the cases interleaved over several rounds (medians reported):

- raw asyncio streams, one connection per task: the floor;
- an ``httpx.AsyncClient`` per task, built by the task and closed after its R requests (today's trigger: a client
  per trigger; the SSL context shared, as since commit 9cf2942);
- one ``httpx.AsyncClient`` shared by all tasks with concurrency capped by an ``asyncio.Semaphore`` at 8 and at
  32, and uncapped with httpx's default limits (at most 100 connections);
- a pool of single-connection ``httpx.AsyncClient`` s of 8 and of 32 (``ClientPool`` of
  ``airflow_provider_ft.transport.shared``);
- ``aiohttp.ClientSession`` shared by all tasks, as a reference only (when it imports: Airflow 3.3 core does not
  install aiohttp; here it comes with other providers' pins).

Reported: client CPU microseconds per request (this process's CPU time over the requests sent) and wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks._common import median
from benchmarks._report import Table

PATH = "/openai/v1/fine_tuning/jobs/ftjob-trivial"


@dataclass(frozen=True)
class StudyPlan:
    concurrency: tuple[int, ...]
    requests_per_task: int
    rounds: int


FULL = StudyPlan(concurrency=(8, 32), requests_per_task=25, rounds=5)
SMOKE = StudyPlan(concurrency=(8,), requests_per_task=3, rounds=1)


class TrivialServer:
    """``_trivial_server`` in a child process."""

    def __enter__(self) -> TrivialServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._trivial_server"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}{PATH}"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


POOL_NAME = "airflow_provider_ft.transport.shared.ClientPool"


async def raw_asyncio(server: TrivialServer, tasks: int, each: int) -> None:
    request = f"GET {PATH} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n".encode()

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        for _ in range(each):
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            json.loads(await reader.readexactly(length))
        writer.close()
        await writer.wait_closed()

    await asyncio.gather(*(one() for _ in range(tasks)))


async def client_per_task(server: TrivialServer, tasks: int, each: int) -> None:
    import httpx

    context = shared_context()

    async def one() -> None:
        async with httpx.AsyncClient(verify=context) as client:
            for _ in range(each):
                (await client.get(server.url)).json()

    await asyncio.gather(*(one() for _ in range(tasks)))


async def shared_client(server: TrivialServer, tasks: int, each: int, cap: int | None) -> None:
    import httpx

    async with httpx.AsyncClient(verify=shared_context()) as client:
        gate = asyncio.Semaphore(cap) if cap else None

        async def get() -> None:
            (await client.get(server.url)).json()

        async def one() -> None:
            for _ in range(each):
                if gate is None:
                    await get()
                else:
                    async with gate:
                        await get()

        await asyncio.gather(*(one() for _ in range(tasks)))


async def pooled(server: TrivialServer, tasks: int, each: int, size: int) -> None:
    import httpx

    context = shared_context()
    single = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    from airflow_provider_ft.transport.shared import ClientPool

    pool = ClientPool(lambda: httpx.AsyncClient(verify=context, limits=single), size)

    async def one() -> None:
        for _ in range(each):
            async with pool.client() as client:
                (await client.get(server.url)).json()

    try:
        await asyncio.gather(*(one() for _ in range(tasks)))
    finally:
        await pool.aclose()


async def aiohttp_shared(server: TrivialServer, tasks: int, each: int) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:

        async def one() -> None:
            for _ in range(each):
                async with session.get(server.url) as answer:
                    json.loads(await answer.read())

        await asyncio.gather(*(one() for _ in range(tasks)))


_CONTEXT: list[ssl.SSLContext] = []


def shared_context() -> ssl.SSLContext:
    if not _CONTEXT:
        _CONTEXT.append(ssl.create_default_context())
    return _CONTEXT[0]


def aiohttp_available() -> bool:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return False
    return True


Case = Callable[[TrivialServer, int, int], Awaitable[None]]


def cases() -> dict[str, Case]:
    found: dict[str, Case] = {
        "raw asyncio streams, a connection per task (floor)": raw_asyncio,
        "httpx.AsyncClient per task (today)": client_per_task,
        "one shared httpx.AsyncClient, Semaphore(8)": lambda server, k, r: shared_client(server, k, r, 8),
        "one shared httpx.AsyncClient, Semaphore(32)": lambda server, k, r: shared_client(server, k, r, 32),
        "one shared httpx.AsyncClient, uncapped (default limits, 100)": lambda server, k, r: shared_client(
            server, k, r, None
        ),
        f"pool of 8 single-connection clients ({POOL_NAME})": lambda server, k, r: pooled(server, k, r, 8),
        f"pool of 32 single-connection clients ({POOL_NAME})": lambda server, k, r: pooled(server, k, r, 32),
    }
    if aiohttp_available():
        found["reference: one shared aiohttp.ClientSession (not in Airflow 3.3 core)"] = aiohttp_shared
    return found


def measure(server: TrivialServer, case: Case, tasks: int, each: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one run of ``case`` in a fresh event loop."""
    started, cpu = time.perf_counter(), time.process_time()
    asyncio.run(case(server, tasks, each))  # type: ignore[arg-type]
    return time.process_time() - cpu, time.perf_counter() - started


@dataclass
class Row:
    name: str
    tasks: int
    cpu_us: float
    wall_ms: float


def study(plan: StudyPlan) -> list[Row]:
    rows: list[Row] = []
    with TrivialServer() as server:
        chosen = cases()
        for tasks in plan.concurrency:
            samples: dict[str, list[tuple[float, float]]] = {name: [] for name in chosen}
            for _ in range(plan.rounds):
                for name, case in chosen.items():
                    samples[name].append(measure(server, case, tasks, plan.requests_per_task))
            requests = tasks * plan.requests_per_task
            for name, found in samples.items():
                cpu = median([sample[0] for sample in found]) / requests * 1e6
                wall = median([sample[1] for sample in found]) * 1e3
                rows.append(Row(name, tasks, cpu, wall))
    return rows


def table(rows: list[Row], plan: StudyPlan) -> Table:
    found = Table(
        f"Part 2, client choice: K concurrent tasks x {plan.requests_per_task} sequential GETs against a trivial "
        f"loopback server (median of {plan.rounds} interleaved rounds)",
        ["Client", "K tasks", "CPU µs per request", "Wall ms (all requests)", "vs raw floor"],
    )
    floor = {row.tasks: row.cpu_us for row in rows if row.name.startswith("raw asyncio")}
    for row in rows:
        ratio = row.cpu_us / floor[row.tasks] if floor.get(row.tasks) else float("nan")
        found.add(row.name, row.tasks, f"{row.cpu_us:.0f}", f"{row.wall_ms:.0f}", f"{ratio:.1f}x")
    return found


def findings(rows: list[Row]) -> list[str]:
    """What the numbers say: the cheapest httpx option at each K, and how the others compare."""
    notes: list[str] = []
    for tasks in sorted({row.tasks for row in rows}):
        at = [row for row in rows if row.tasks == tasks]
        httpx_rows = sorted(
            (row for row in at if not row.name.startswith(("raw asyncio", "reference"))), key=lambda row: row.cpu_us
        )
        if not httpx_rows:
            continue
        best = httpx_rows[0]
        others = "; ".join(f"{row.name} {row.cpu_us:.0f} µs" for row in httpx_rows[1:])
        floor = next((row for row in at if row.name.startswith("raw asyncio")), None)
        reference = next((row for row in at if row.name.startswith("reference")), None)
        text = (
            f"At {tasks} concurrent tasks the cheapest httpx option is {best.name}: {best.cpu_us:.0f} µs of CPU per "
            f"request (wall {best.wall_ms:.0f} ms); {others}."
        )
        if floor is not None:
            text += f" Raw asyncio streams: {floor.cpu_us:.0f} µs, so httpx costs {best.cpu_us / floor.cpu_us:.0f}x"
            text += " the floor at best."
        if reference is not None:
            text += f" aiohttp (reference): {reference.cpu_us:.0f} µs."
        notes.append(text)
    per_task = {row.tasks: row for row in rows if row.name.startswith("httpx.AsyncClient per task")}
    uncapped = {row.tasks: row for row in rows if "uncapped" in row.name}
    capped8 = {row.tasks: row for row in rows if "Semaphore(8)" in row.name}
    pool8 = {row.tasks: row for row in rows if row.name.startswith("pool of 8")}
    for tasks in sorted(per_task):
        parts = []
        if tasks in uncapped and tasks in capped8:
            grows = uncapped[tasks].cpu_us > 1.2 * capped8[tasks].cpu_us
            parts.append(
                f"one shared client uncapped {uncapped[tasks].cpu_us:.0f} µs vs capped at 8 "
                f"{capped8[tasks].cpu_us:.0f} µs"
                + (
                    " (httpcore's pool scans all its connections and queued requests on every request, so its cost "
                    "per request grows with the requests in flight)"
                    if grows
                    else " (no growth with the requests in flight at this K)"
                )
            )
        if tasks in pool8:
            cheaper = pool8[tasks].cpu_us < per_task[tasks].cpu_us
            parts.append(
                f"a pool of 8 single-connection clients {pool8[tasks].cpu_us:.0f} µs vs a client per task "
                f"{per_task[tasks].cpu_us:.0f} µs"
                + (
                    " (the client per task pays its construction and a new connection)"
                    if cheaper
                    else " (about even: with many requests per task a client's construction is spread thin, and a "
                    "pool costs a semaphore and a lend per request; the pool's gain is its few connections)"
                )
            )
        if parts:
            notes.append(f"Why, at {tasks} tasks: " + "; ".join(parts) + ".")
    if not any(row.name.startswith("reference") for row in rows):
        notes.append("aiohttp does not import in this environment (Airflow 3.3 core does not install it): no row.")
    else:
        notes.append(
            "aiohttp is a reference row only: Airflow 3.3 core does not install it (here it comes with the pins of "
            "other providers, e.g. the HTTP and dbt Cloud providers), so the package cannot count on it."
        )
    return notes


def run_in_child(smoke: bool, workdir: Path) -> tuple[list[Table], list[str]]:
    """Run the study in a fresh process (nothing else in its loop or heap); its tables and findings."""
    result = workdir / "httpx_study.json"
    command = [sys.executable, "-m", "benchmarks._httpx_study", "--result", str(result)] + (
        ["--smoke"] if smoke else []
    )
    with open(workdir / "httpx_study.log", "w") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True, timeout=600)
    data = json.loads(result.read_text())
    return [Table(**found) for found in data["tables"]], list(data["findings"])


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._httpx_study")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args()
    from benchmarks._common import allow_bytecode_cache, prepare_airflow_home

    allow_bytecode_cache()
    prepare_airflow_home()
    plan = SMOKE if args.smoke else FULL
    rows = study(plan)
    args.result.write_text(json.dumps({"tables": [asdict(table(rows, plan))], "findings": findings(rows)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

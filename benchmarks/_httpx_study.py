"""Why ``httpx.AsyncClient`` looked slow with many concurrent connections, measured against a trivial server.

Runs in its own process, against ``_trivial_server`` (another process) so that only the client's cost shows:

1. construction: ``ssl.create_default_context()``, ``httpx.AsyncClient()`` (builds an SSLContext and loads the CA
   bundle every time, even for ``http://`` URLs), ``httpx.AsyncClient(verify=<shared SSLContext>)``, and our
   ``AsyncTransport`` as shipped; CPU time per construction and RSS per live client;
2. N concurrent clients x 3 GETs: raw asyncio streams, one ``httpx.AsyncClient`` per task (as shipped, and with a
   shared SSLContext), and one ``httpx.AsyncClient`` shared by all tasks (unlimited pool): httpcore 1.0's pool
   re-scans every connection and queued request on each request (``_assign_requests_to_connections``), which is
   quadratic in the number of concurrent requests;
3. sequential GETs on one keep-alive connection: per-request CPU of httpx (httpcore + h11 + anyio) vs raw asyncio.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks._common import median
from benchmarks._report import Table

REQUESTS_PER_CLIENT = 3


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
        self.url = f"http://127.0.0.1:{self.port}/openai/v1/fine_tuning/jobs/ftjob-trivial"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def cpu_ms_each(make: Callable[[], Any], count: int) -> float:
    samples = []
    for _ in range(count):
        started = time.process_time()
        make()
        samples.append(time.process_time() - started)
    return median(samples) * 1e3


def our_transport_factory(url: str) -> Callable[[], Any]:
    os.environ["AIRFLOW_CONN_FT_BENCH_TRIVIAL"] = json.dumps(
        {"conn_type": "openai_fine_tuning", "host": url.split("/fine_tuning")[0], "password": "sk-bench-trivial"}
    )
    from airflow_provider_ft.hooks._transport import AsyncTransport
    from airflow_provider_ft.hooks.fine_tuning import FineTuningHook

    settings = FineTuningHook("ft_bench_trivial").settings
    return lambda: AsyncTransport(settings)


def rss_per_client_mb(make: Callable[[], Any], count: int, keep: list[Any]) -> float:
    """RSS growth per object while ``count`` of them are alive (kept in ``keep``: freed memory would be reused)."""
    gc.collect()
    before = rss_mb()
    made = [make() for _ in range(count)]
    after = rss_mb()
    keep.append(made)
    return (after - before) / count


def construction_table(url: str, smoke: bool) -> Table:
    import httpx

    shared = ssl.create_default_context()
    count, kept = (5, 20) if smoke else (40, 200)
    makers: dict[str, Callable[[], Any]] = {
        "ssl.create_default_context()": ssl.create_default_context,
        "httpx.AsyncClient()": httpx.AsyncClient,
        "httpx.AsyncClient(verify=shared_context)": lambda: httpx.AsyncClient(verify=shared),
        "AsyncTransport(settings) as shipped": our_transport_factory(url),
    }
    table = Table(
        "Client construction (CPU per construction blocks the event loop)",
        ["What", "CPU ms each (median)", "RSS MB per live client", "1,000 of them: CPU s"],
    )
    keep: list[Any] = []
    for name, make in makers.items():
        per_client = rss_per_client_mb(make, kept, keep)  # first: later frees would be reused
        each = cpu_ms_each(make, count)
        # 1,000 constructions of ``each`` ms take ``each`` seconds.
        table.add(name, f"{each:.2f}", f"{per_client:.2f}", f"{each:.2f}")
    return table


async def raw_asyncio(port: int, clients: int) -> None:
    request = b"GET /openai/v1/fine_tuning/jobs/ftjob-trivial HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(REQUESTS_PER_CLIENT):
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            json.loads(await reader.readexactly(length))
        writer.close()
        await writer.wait_closed()

    await asyncio.gather(*(one() for _ in range(clients)))


async def client_per_task(url: str, clients: int, verify: Any) -> None:
    import httpx

    async def one() -> None:
        async with httpx.AsyncClient(verify=verify) as client:
            for _ in range(REQUESTS_PER_CLIENT):
                (await client.get(url)).json()

    await asyncio.gather(*(one() for _ in range(clients)))


async def one_shared_client(url: str, clients: int) -> None:
    import httpx

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(limits=limits) as client:

        async def one() -> None:
            for _ in range(REQUESTS_PER_CLIENT):
                (await client.get(url)).json()

        await asyncio.gather(*(one() for _ in range(clients)))


def timed(job: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    asyncio.run(job())  # type: ignore[arg-type]
    return time.perf_counter() - started


def concurrency_table(server: TrivialServer, smoke: bool) -> Table:
    big, default_verify, shared_sizes = (50, 20, (10, 25)) if smoke else (1000, 100, (50, 100, 250))
    shared = ssl.create_default_context()
    cases: list[tuple[str, int, Callable[[], Awaitable[None]]]] = [
        ("raw asyncio streams", big, lambda: raw_asyncio(server.port, big)),
        (
            "httpx.AsyncClient per task, httpx default (own SSLContext)",
            default_verify,
            lambda: client_per_task(server.url, default_verify, True),
        ),
        (
            "httpx.AsyncClient per task, shared SSLContext",
            big,
            lambda: client_per_task(server.url, big, shared),
        ),
    ]
    for size in shared_sizes:
        cases.append(
            (
                "one httpx.AsyncClient shared by all (unlimited pool)",
                size,
                lambda size=size: one_shared_client(server.url, size),  # type: ignore[misc]
            )
        )
    table = Table(
        f"N concurrent clients x {REQUESTS_PER_CLIENT} GETs against a trivial loopback server",
        ["Client", "N", "Seconds", "µs per request"],
    )
    for name, size, job in cases:
        seconds = timed(job)
        table.add(name, size, f"{seconds:.2f}", f"{seconds / (size * REQUESTS_PER_CLIENT) * 1e6:.0f}")
    return table


async def sequential_httpx(url: str, count: int) -> float:
    import httpx

    async with httpx.AsyncClient() as client:
        await client.get(url)
        started = time.process_time()
        for _ in range(count):
            (await client.get(url)).json()
        return (time.process_time() - started) / count


async def sequential_raw(port: int, count: int) -> float:
    request = b"GET /x HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.process_time()
    for _ in range(count):
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        json.loads(await reader.readexactly(int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])))
    writer.close()
    return (time.process_time() - started) / count


def sequential_table(server: TrivialServer, smoke: bool) -> Table:
    count = 200 if smoke else 3000
    table = Table("Sequential GETs on one keep-alive connection (client CPU per request)", ["Client", "µs"])
    table.add("raw asyncio streams", f"{asyncio.run(sequential_raw(server.port, count)) * 1e6:.0f}")
    table.add("httpx.AsyncClient", f"{asyncio.run(sequential_httpx(server.url, count)) * 1e6:.0f}")
    return table


def study(smoke: bool) -> list[Table]:
    with TrivialServer() as server:
        return [
            construction_table(server.url, smoke),
            concurrency_table(server, smoke),
            sequential_table(server, smoke),
        ]


def run_in_child(smoke: bool, workdir: Path) -> list[Table]:
    """Run the study in a fresh process (nothing else in its loop or heap); its tables."""
    result = workdir / "httpx_study.json"
    command = [sys.executable, "-m", "benchmarks._httpx_study", "--result", str(result)] + (
        ["--smoke"] if smoke else []
    )
    with open(workdir / "httpx_study.log", "w") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True, timeout=600)
    return [Table(**table) for table in json.loads(result.read_text())]


FINDINGS = [
    "Why httpx.AsyncClient looked slow with many clients: `httpx.AsyncClient()` without `verify=` builds a new "
    "`ssl.SSLContext` and loads the certifi CA bundle every time, even for http:// URLs (construction table: "
    "~16 ms of CPU and ~0.8 MB per client). 100 clients x 3 requests spend most of their time there (concurrency "
    "table, 'httpx default (own SSLContext)' row). Since commit 9cf2942 `AsyncTransport.__init__` "
    "(airflow_provider_ft/hooks/_transport.py) passes one cached context (`_shared_ssl_context()`), which removes "
    "it: compare the two trigger scenarios above and the `AsyncTransport(settings) as shipped` row.",
    "Side effect of that fix to check (package code): `_shared_ssl_context()` builds "
    "`ssl.create_default_context(cafile=certifi.where())`, so it no longer honours `SSL_CERT_FILE` / `SSL_CERT_DIR` "
    "as httpx's default (`trust_env=True`) and the sync `requests` transport (`REQUESTS_CA_BUNDLE`) do; behind a "
    "TLS-inspecting proxy the triggers would fail where the hook succeeds. `functools.cache` of "
    "`httpx.create_ssl_context()` keeps the speed and that behaviour.",
    "Do not replace the per-trigger clients by one `httpx.AsyncClient` shared by all triggers: httpcore's pool "
    "(`_assign_requests_to_connections`) rescans all connections and queued requests on every request, so the "
    "cost per request grows with the number of concurrent requests (shared-client rows: several ms per request "
    "at 100 and more, against well under 1 ms with a client per task), and with default `limits` "
    "(100 connections, 5 s pool timeout) 1,000 concurrent polls end in `PoolTimeout`.",
    "What remains is httpx's own per-request CPU (httpcore + h11 + anyio: about 30x raw asyncio on one "
    "connection, sequential table) plus tenacity, parsing and a log line per poll; when many polls fall due in "
    "the same loop iteration their CPU adds up to the lag spikes of the shipped scenario.",
]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._httpx_study")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args()
    from benchmarks._common import allow_bytecode_cache, prepare_airflow_home

    allow_bytecode_cache()
    prepare_airflow_home()
    args.result.write_text(json.dumps([asdict(table) for table in study(args.smoke)]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark 8: the Fine-tuning page with 500 jobs on 4 connections, against what its vendor calls cost alone.

The emulator (own process) holds 125 jobs on each of the four vendors (DashScope, OpenAI, Azure OpenAI, Together
AI; a third running, the rest finished), and every request to it gets 20 ms of injected latency
(``Fault(kind="latency", delay=0.02)``), about a vendor across a region. Four connections of the four types are
stored in the metadata database of a throwaway ``AIRFLOW_HOME`` (SQLite), with a price on each. The page is served
by Airflow's own api-server app (``airflow.api_fastapi.app.create_app``, with the plugin mounted as the api-server
mounts it) in this process, called through Starlette's ``TestClient`` as the admin user (a JWT of Airflow's
SimpleAuthManager): the whole request path (authentication, permissions, the metadata database, the four
listings, rendering) without a network hop to the client.

Timed, each the median of several requests after one untimed warm-up:

- the page (HTML) when its listings are stale (``catalog.FRESH_FOR = 0``): the four listings are read again, side
  by side;
- the page when its listings are fresh (read less than ``FRESH_FOR`` seconds ago): no vendor call;
- the JSON API (``/fine-tuning/api/jobs``), stale;
- baseline, vendor work alone: the same four listings read one after the other with the hook (what any page
  listing these jobs must at least wait for, were it not to read them side by side);
- baseline, Airflow's own page data: ``GET /api/v2/connections`` through the same client (the cost of a request
  to Airflow's api-server that reads the metadata database, here).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks._common import allow_bytecode_cache, prepare_airflow_home, ratio
from benchmarks._emulator import API_KEY, CONN_TYPES, EmulatorProcess
from benchmarks._report import Section, Table, Target, bench_main

LATENCY = 0.02
MANY = 10**9
TARGET_STALE_VS_SEQUENTIAL = 1.0
TARGET_FRESH_VS_AIRFLOW = 10.0


def run(smoke: bool) -> Section:
    allow_bytecode_cache()
    prepare_airflow_home()
    per_vendor, repeats = (10, 2) if smoke else (125, 7)
    section = Section("page_load", "8. The Fine-tuning page: 500 jobs on 4 connections", __doc__ or "")
    _migrate()
    with EmulatorProcess() as emulator:
        for vendor in CONN_TYPES:
            emulator.seed_jobs(vendor, per_vendor // 3, status=None, runs_for=None)
            emulator.seed_jobs(vendor, per_vendor - per_vendor // 3, status=_finished(vendor), age=3600)
        emulator.inject("latency", delay=LATENCY, times=MANY)
        _store_connections(emulator)
        client, headers = _client()
        timings = _measure(client, headers, repeats)
        jobs = client.get("/fine-tuning/api/jobs", headers=headers).json()
    total = sum(connection["jobs"] for connection in jobs["connections"])
    section.tables.append(_table(timings, total))
    _targets(section, timings, total)
    if smoke:
        section.notes.append(f"Smoke mode: {per_vendor} jobs per connection, {repeats} timed requests each.")
    return section


def _finished(vendor: str) -> str:
    return {"dashscope": "SUCCEEDED", "together": "completed"}.get(vendor, "succeeded")


def _migrate() -> None:
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, timeout=600)


def _store_connections(emulator: EmulatorProcess) -> None:
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        for vendor, conn_type in CONN_TYPES.items():
            extra = {"price_per_million_tokens": 3.0, "currency": "USD", "max_pages": 100}
            session.add(
                Connection(
                    conn_id=f"bench_{vendor}",
                    conn_type=conn_type,
                    host=emulator.url(vendor),
                    password=API_KEY,
                    extra=json.dumps(extra),
                )
            )


def _client() -> tuple[Any, dict[str, str]]:
    os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = "admin:admin"
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    client = TestClient(create_app("core"))
    client.__enter__()
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    return client, {"Authorization": f"Bearer {token}"}


def _median(call: Callable[[], object], repeats: int) -> float:
    call()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def _measure(client: Any, headers: dict[str, str], repeats: int) -> dict[str, float]:
    from airflow_provider_ft.ui import catalog
    from airflow_provider_ft.ui.server_hook import ServerSideHook

    def get(path: str) -> Callable[[], object]:
        def call() -> object:
            answer = client.get(path, headers=headers)
            answer.raise_for_status()
            return answer

        return call

    def sequential_listings() -> None:
        for vendor in CONN_TYPES:
            hook = ServerSideHook(f"bench_{vendor}")
            try:
                list(hook.list_jobs())
            finally:
                hook.close()

    fresh_for = catalog.FRESH_FOR
    catalog.FRESH_FOR = 0.0
    stale_page = _median(get("/fine-tuning/ui/jobs"), repeats)
    stale_api = _median(get("/fine-tuning/api/jobs"), repeats)
    catalog.FRESH_FOR = fresh_for
    fresh_page = _median(get("/fine-tuning/ui/jobs"), repeats)
    sequential = _median(sequential_listings, repeats)
    airflow_connections = _median(get("/api/v2/connections"), repeats)
    page_bytes = len(client.get("/fine-tuning/ui/jobs", headers=headers).content)
    return {
        "stale_page": stale_page,
        "stale_api": stale_api,
        "fresh_page": fresh_page,
        "sequential": sequential,
        "airflow_connections": airflow_connections,
        "page_bytes": float(page_bytes),
    }


def _table(timings: dict[str, float], total: int) -> Table:
    table = Table(f"Median time of a request, {total} jobs on 4 connections", ["What", "Time", "vs baseline"])
    sequential, airflow = timings["sequential"], timings["airflow_connections"]
    table.add(
        "page (HTML), listings stale: 4 listings side by side",
        _ms(timings["stale_page"]),
        f"{ratio(timings['stale_page'] / sequential)} of the sequential listings",
    )
    table.add(
        "JSON API, listings stale",
        _ms(timings["stale_api"]),
        f"{ratio(timings['stale_api'] / sequential)} of the sequential listings",
    )
    table.add(
        "page (HTML), listings fresh: no vendor call",
        _ms(timings["fresh_page"]),
        f"{ratio(timings['fresh_page'] / airflow)} of Airflow's GET /api/v2/connections",
    )
    table.add("baseline: the 4 listings one after the other (hook)", _ms(sequential), "1.00x")
    table.add("baseline: Airflow's GET /api/v2/connections", _ms(airflow), "1.00x")
    table.add("the page's size", f"{timings['page_bytes'] / 1024:.0f} KiB (the first 50 jobs)", "")
    return table


def _targets(section: Section, timings: dict[str, float], total: int) -> None:
    stale = timings["stale_page"] / timings["sequential"]
    fresh = timings["fresh_page"] / timings["airflow_connections"]
    section.targets.append(
        Target(
            f"8. Page with stale listings vs the 4 listings one after the other, {total} jobs",
            f"{ratio(stale)} ({_ms(timings['stale_page'])} vs {_ms(timings['sequential'])})",
            f"<= {TARGET_STALE_VS_SEQUENTIAL:.1f}x",
            stale <= TARGET_STALE_VS_SEQUENTIAL,
        )
    )
    section.targets.append(
        Target(
            "8. Page with fresh listings vs Airflow's own connection list",
            f"{ratio(fresh)} ({_ms(timings['fresh_page'])} vs {_ms(timings['airflow_connections'])})",
            f"<= {TARGET_FRESH_VS_AIRFLOW:.0f}x",
            fresh <= TARGET_FRESH_VS_AIRFLOW,
        )
    )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


if __name__ == "__main__":
    raise SystemExit(bench_main(run))

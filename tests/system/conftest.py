"""One Airflow cluster (see ``harness.AirflowCluster``) for every system test of the session, and the emulators it
talks to: the command-line server (``python -m airflow_provider_ft_emulator``, its clock sped up) and the
in-process emulator of ``tests/conftest.py``, whose jobs a test seeds and whose clock it moves on.

Only started by a system test that runs, that is with ``FT_SYSTEM_TESTS=1`` (``make system-test``, which starts
PostgreSQL and Redis around the run).

Each test is a scenario of the README's "Production deployment" table (``@pytest.mark.scenario``); when
``FT_DEPLOYMENT_REPORT`` names a file, the outcome, the time and what the test noted (``scenario_notes``) of each
scenario that ran are written there for ``scripts/deployment_report.py``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ft_emulator import FineTuningEmulator
from tests.conftest import API_KEY
from tests.system.harness import AirflowCluster, Processes, connection_uri, free_port, processes, tail, wait_for

CLI_API_KEY = "sk-system-test-key"
#: Emulated seconds per real second of the command-line emulator: a job created through its API queues 5 s and
#: runs 600 s (emulated), so it finishes about 30 real seconds after it is created. Its files are not checked
#: (``--no-check-files``): the tests create jobs without uploading any.
CLI_TIME_SCALE = 20.0
STARTUP_SECONDS = 240.0
REPORT_ENV = "FT_DEPLOYMENT_REPORT"
#: Emulated seconds per real second of the emulator behind the ``ft_fast_<vendor>`` connections: a created job
#: (5 s queued, about 600 s running) finishes in about 2 real seconds.
FAST_TIME_SCALE = 300.0
MOUNTS = {"dashscope": "/dashscope/api/v1", "openai": "/openai/v1"}
CONN_TYPES = {"dashscope": "dashscope", "openai": "openaifinetuning"}


@dataclass(frozen=True)
class CliEmulator:
    url: str
    api_key: str
    log: Path


@pytest.fixture(scope="session")
def system_processes() -> Iterator[Processes]:
    with processes() as started:
        yield started


@pytest.fixture(scope="session")
def cli_emulator(system_processes: Processes, tmp_path_factory: pytest.TempPathFactory) -> CliEmulator:
    log = tmp_path_factory.mktemp("cli-emulator") / "emulator.log"
    port = free_port()
    args = ["--port", str(port), "--api-key", CLI_API_KEY, "--time-scale", str(CLI_TIME_SCALE), "--no-check-files"]
    system_processes.start(
        [sys.executable, "-m", "airflow_provider_ft_emulator", *args],
        {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")},
        log,
    )
    wait_for("the emulator", lambda: "Press Ctrl-C" in tail(log), time.monotonic() + 60, [log])
    return CliEmulator(f"http://127.0.0.1:{port}", CLI_API_KEY, log)


@pytest.fixture(scope="session")
def fast_emulator() -> Iterator[FineTuningEmulator]:
    """The emulator of the ``ft_fast_<vendor>`` connections, its clock sped up (``FAST_TIME_SCALE``)."""
    with FineTuningEmulator(api_key=API_KEY, time_scale=FAST_TIME_SCALE) as server:
        yield server


@pytest.fixture(scope="session")
def cluster(
    system_processes: Processes,
    cli_emulator: CliEmulator,
    emulator_server: FineTuningEmulator,
    fast_emulator: FineTuningEmulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> AirflowCluster:
    """The cluster, with connections ``ft_system_<vendor>`` to the command-line emulator and ``ft_live_<vendor>``
    to the in-process one, over the PostgreSQL and Redis of ``scripts/system_services.py``."""
    services = {name: os.environ.get(name) for name in ("FT_SYSTEM_DB_URL", "FT_SYSTEM_BROKER_URL")}
    if not all(services.values()):
        pytest.fail("the system tests need PostgreSQL and Redis: run them with make system-test")
    connections = {}
    for vendor, mount in MOUNTS.items():
        connections[f"ft_system_{vendor}"] = connection_uri(CONN_TYPES[vendor], cli_emulator.url + mount, CLI_API_KEY)
        connections[f"ft_live_{vendor}"] = connection_uri(CONN_TYPES[vendor], emulator_server.url(vendor), API_KEY)
        connections[f"ft_fast_{vendor}"] = connection_uri(CONN_TYPES[vendor], fast_emulator.url(vendor), API_KEY)
        connections[f"{vendor}_default"] = connection_uri(CONN_TYPES[vendor], emulator_server.url(vendor), API_KEY)
    home = tmp_path_factory.mktemp("cluster") / "airflow"
    started = AirflowCluster(
        home=home,
        connections=connections,
        started=system_processes,
        db_url=str(services["FT_SYSTEM_DB_URL"]),
        broker_url=str(services["FT_SYSTEM_BROKER_URL"]),
    )
    began = time.monotonic()
    started.start(began + STARTUP_SECONDS)
    _startup["seconds"] = time.monotonic() - began
    return started


# -- the deployment report ------------------------------------------------------------------------------------------


@dataclass
class ScenarioRecord:
    """One scenario as the table shows it: its name, what it did, how it came out, what it noted and its time."""

    nodeid: str
    name: str
    done: str
    outcome: str = "passed"
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


_records: dict[str, ScenarioRecord] = {}
_startup: dict[str, float] = {}


def _record_for(item: pytest.Item) -> ScenarioRecord:
    if item.nodeid not in _records:
        marker = item.get_closest_marker("scenario")
        name, done = marker.args if marker else (item.name, "")
        _records[item.nodeid] = ScenarioRecord(nodeid=item.nodeid, name=str(name), done=str(done))
    return _records[item.nodeid]


@pytest.fixture
def scenario_notes(request: pytest.FixtureRequest) -> list[str]:
    """What the scenario measured, in words with figures, for the table's result column."""
    return _record_for(request.node).notes


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report: pytest.TestReport = yield
    record = _record_for(item)
    if report.when == "call":
        record.seconds = report.duration
    if report.failed:
        record.outcome = "failed" if report.when == "call" else "error"
    elif report.skipped:
        record.outcome = "skipped"
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get(REPORT_ENV)
    if not target:
        return
    import airflow

    document = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "airflow": airflow.__version__,
        "exitstatus": int(exitstatus),
        "services": os.environ.get("FT_SYSTEM_SERVICES", ""),
        "startup_seconds": _startup.get("seconds"),
        "scenarios": [asdict(record) for record in _records.values()],
    }
    Path(target).write_text(json.dumps(document, indent=1))

"""One Airflow cluster (see ``harness.AirflowCluster``) for every system test of the session, and the emulators it
talks to: the command-line server (``python -m airflow_provider_ft.emulator``, its clock sped up) and the
in-process emulator of ``tests/conftest.py``, whose jobs a test seeds and whose clock it moves on.

Only started by a system test that runs, that is with ``FT_SYSTEM_TESTS=1``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_provider_ft.emulator import FineTuningEmulator
from tests.conftest import API_KEY
from tests.system.harness import AirflowCluster, Processes, connection_uri, free_port, processes, tail, wait_for

CLI_API_KEY = "sk-system-test-key"
#: Emulated seconds per real second of the command-line emulator: a job created through its API queues 5 s and
#: runs 600 s (emulated), so it finishes about 30 real seconds after it is created. Its files are not checked
#: (``--no-check-files``): the tests create jobs without uploading any.
CLI_TIME_SCALE = 20.0
STARTUP_SECONDS = 150.0
MOUNTS = {"dashscope": "/dashscope/api/v1", "openai": "/openai/v1", "together": "/together/v1"}
CONN_TYPES = {"dashscope": "dashscope", "openai": "openai_fine_tuning", "together": "together_fine_tuning"}


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
        [sys.executable, "-m", "airflow_provider_ft.emulator", *args],
        {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")},
        log,
    )
    wait_for("the emulator", lambda: "Press Ctrl-C" in tail(log), time.monotonic() + 60, [log])
    return CliEmulator(f"http://127.0.0.1:{port}", CLI_API_KEY, log)


@pytest.fixture(scope="session")
def cluster(
    system_processes: Processes,
    cli_emulator: CliEmulator,
    emulator_server: FineTuningEmulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> AirflowCluster:
    """The cluster, with connections ``ft_system_<vendor>`` to the command-line emulator and ``ft_live_<vendor>``
    to the in-process one."""
    connections = {}
    for vendor, mount in MOUNTS.items():
        connections[f"ft_system_{vendor}"] = connection_uri(CONN_TYPES[vendor], cli_emulator.url + mount, CLI_API_KEY)
        connections[f"ft_live_{vendor}"] = connection_uri(CONN_TYPES[vendor], emulator_server.url(vendor), API_KEY)
    home = tmp_path_factory.mktemp("cluster") / "airflow"
    started = AirflowCluster(home=home, connections=connections, started=system_processes)
    started.start(time.monotonic() + STARTUP_SECONDS)
    return started

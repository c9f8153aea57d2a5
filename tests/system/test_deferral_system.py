"""System test: the deferrable sensor under real Airflow processes, against the emulator's command-line server.

``airflow standalone`` (scheduler, dag-processor, triggerer, api-server; SQLite, LocalExecutor) runs in a throwaway
AIRFLOW_HOME; ``python -m airflow_provider_ft.emulator`` serves both APIs. One DAG run waits for a DashScope and an
OpenAI job created through the emulator's API. The test checks that each sensor was ``deferred`` with a
``FineTuningJobTrigger`` row (so the triggerer, not a worker, waited), then resumed and succeeded with the final job
in XCom.

Skipped unless ``FT_SYSTEM_TESTS=1``::

    FT_SYSTEM_TESTS=1 .venv/bin/pytest tests/system -p no:cacheprovider

Every process is started in its own session and its whole group is stopped at the end, pass or fail.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(os.environ.get("FT_SYSTEM_TESTS") != "1", reason="system test: set FT_SYSTEM_TESTS=1 to run"),
    pytest.mark.timeout(240),
]

API_KEY = "sk-system-test-key"
DAG_ID = "ft_system_deferral"
TRIGGER_CLASSPATH = "airflow_provider_ft.triggers.fine_tuning.FineTuningJobTrigger"
#: Emulated seconds per real second: a job created through the API queues 5 s and runs 600 s (emulated), so it
#: finishes about 30 real seconds after it is created: long enough for a loaded scheduler to start the sensor,
#: whose first check must find the job still running for it to defer.
TIME_SCALE = 20.0
BUDGET_SECONDS = 170.0

DAG_SOURCE = """
from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_ft.sensors.fine_tuning import FineTuningJobSensor

with DAG("{dag_id}", schedule=None, start_date=datetime(2025, 1, 1), catchup=False) as dag:
    FineTuningJobSensor(
        task_id="wait_dashscope",
        job_id="{{{{ dag_run.conf['dashscope_job'] }}}}",
        conn_id="ft_system_dashscope",
        deferrable=True,
        poke_interval=1,
        timeout=150,
    )
    FineTuningJobSensor(
        task_id="wait_openai",
        job_id="{{{{ dag_run.conf['openai_job'] }}}}",
        conn_id="ft_system_openai",
        deferrable=True,
        poke_interval=1,
        timeout=150,
    )
"""


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Processes:
    """Processes started by this test, each the leader of its own process group."""

    started: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = field(default_factory=list)

    def start(self, args: list[str], env: dict[str, str], log_file: Path) -> subprocess.Popen[bytes]:
        out = log_file.open("wb")
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append((process, out))
        return process

    def stop_all(self) -> None:
        """Ctrl-C each group, give it time to stop, then SIGKILL whatever is left of it.

        A leader is only reaped after its group was killed: until then its pid, which is the group's id, cannot be
        reused by another process, so no signal can reach a process this test did not start.
        """
        for process, _ in reversed(self.started):
            self._signal_group(process, signal.SIGINT)  # airflow standalone stops its components on Ctrl-C
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(self._exited(process) for process, _ in self.started):
            time.sleep(0.2)
        for process, out in self.started:
            self._signal_group(process, signal.SIGKILL)  # workers, supervisors and the leader, if still there
            process.wait()
            out.close()

    @staticmethod
    def _exited(process: subprocess.Popen[bytes]) -> bool:
        """Whether the leader has exited, without reaping it."""
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None

    @staticmethod
    def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signum)  # the group this test created, by its id (== the leader's pid)


@contextmanager
def processes() -> Iterator[Processes]:
    started = Processes()
    try:
        yield started
    finally:
        started.stop_all()


def wait_for(what: str, check: Any, deadline: float, logs: list[Path], interval: float = 0.5) -> Any:
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    tails = "\n".join(f"--- {log.name} ---\n{tail(log)}" for log in logs)
    pytest.fail(f"timed out waiting for {what}\n{tails}")


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "<no output>"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def query(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as connection:
            return list(connection.execute(sql, params))
    except sqlite3.OperationalError:  # the schema is still being created, or a writer holds the lock
        return []


def create_job(base_url: str, vendor: str) -> str:
    import httpx

    headers = {"Authorization": f"Bearer {API_KEY}"}
    if vendor == "dashscope":
        body = {"model": "qwen-turbo", "training_file_ids": ["file-system-test"]}
        answer = httpx.post(f"{base_url}/dashscope/api/v1/fine-tunes", json=body, headers=headers, timeout=10)
        answer.raise_for_status()
        return str(answer.json()["output"]["job_id"])
    body = {"model": "gpt-4o-mini-2024-07-18", "training_file": "file-system-test"}
    answer = httpx.post(f"{base_url}/openai/v1/fine_tuning/jobs", json=body, headers=headers, timeout=10)
    answer.raise_for_status()
    return str(answer.json()["id"])


def test_deferrable_sensor_waits_in_the_triggerer_and_resumes(tmp_path: Path) -> None:
    deadline = time.monotonic() + BUDGET_SECONDS
    home = tmp_path / "airflow"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / f"{DAG_ID}.py").write_text(DAG_SOURCE.format(dag_id=DAG_ID))
    db = home / "airflow.db"
    emulator_port, api_port = free_port(), free_port()
    emulator_url = f"http://127.0.0.1:{emulator_port}"

    def connection(conn_type: str, mount: str) -> str:
        extra = {"timeout": 5, "max_retries": 2, "backoff_base": 0.1}
        return json.dumps({"conn_type": conn_type, "host": emulator_url + mount, "password": API_KEY, "extra": extra})

    # Only what this test sets: the pytest process's own AIRFLOW_* settings must not leak into these processes.
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{db}",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW_CONN_FT_SYSTEM_DASHSCOPE": connection("dashscope", "/dashscope/api/v1"),
            "AIRFLOW_CONN_FT_SYSTEM_OPENAI": connection("openai_fine_tuning", "/openai/v1"),
            "NO_COLOR": "1",
            # airflow standalone starts its components as ``airflow ...``: from this interpreter's environment.
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
    )
    emulator_log, airflow_log = tmp_path / "emulator.log", tmp_path / "standalone.log"
    logs = [airflow_log, emulator_log]

    with processes() as started:
        started.start(
            [
                sys.executable,
                "-m",
                "airflow_provider_ft.emulator",
                "--port",
                str(emulator_port),
                "--api-key",
                API_KEY,
                "--time-scale",
                str(TIME_SCALE),
            ],
            env,
            emulator_log,
        )
        started.start([sys.executable, "-m", "airflow", "standalone"], env, airflow_log)

        wait_for("the emulator", lambda: "Press Ctrl-C" in tail(emulator_log), deadline, logs)
        wait_for(
            "the DAG to be parsed into the metadata database",
            lambda: query(db, "SELECT 1 FROM serialized_dag WHERE dag_id = ?", DAG_ID),
            deadline,
            logs,
        )
        wait_for(
            "the scheduler and the triggerer to be running",
            lambda: (
                {row[0] for row in query(db, "SELECT job_type FROM job WHERE state = 'running'")}
                >= {"SchedulerJob", "TriggererJob"}
            ),
            deadline,
            logs,
        )
        jobs = {
            "dashscope_job": create_job(emulator_url, "dashscope"),
            "openai_job": create_job(emulator_url, "openai"),
        }
        trigger = subprocess.run(
            [sys.executable, "-m", "airflow", "dags", "trigger", DAG_ID, "--conf", json.dumps(jobs)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert trigger.returncode == 0, trigger.stdout + trigger.stderr

        seen_states: dict[str, set[str]] = {"wait_dashscope": set(), "wait_openai": set()}
        triggers: dict[str, set[tuple[str, bool]]] = {"wait_dashscope": set(), "wait_openai": set()}

        def finished() -> bool:
            for task_id, state in query(db, "SELECT task_id, state FROM task_instance WHERE dag_id = ?", DAG_ID):
                if task_id in seen_states and state:
                    seen_states[task_id].add(state)
            for task_id, classpath, triggerer_id in query(
                db,
                "SELECT ti.task_id, t.classpath, t.triggerer_id FROM task_instance ti "
                "JOIN trigger t ON ti.trigger_id = t.id WHERE ti.dag_id = ?",
                DAG_ID,
            ):
                triggers.setdefault(task_id, set()).add((classpath, triggerer_id is not None))
            states = query(db, "SELECT state FROM dag_run WHERE dag_id = ?", DAG_ID)
            return bool(states) and states[0][0] in ("success", "failed")

        wait_for("the DAG run to finish", finished, deadline, logs, interval=0.2)

        run_state = query(db, "SELECT state FROM dag_run WHERE dag_id = ?", DAG_ID)[0][0]
        final = dict(query(db, "SELECT task_id, state FROM task_instance WHERE dag_id = ?", DAG_ID))
        assert run_state == "success", f"{final}\n{tail(airflow_log, 120)}"
        assert final == {"wait_dashscope": "success", "wait_openai": "success"}
        for task_id, states in seen_states.items():
            assert "deferred" in states, f"{task_id} was never seen deferred (saw {sorted(states)})"
        for task_id, seen in triggers.items():
            assert (TRIGGER_CLASSPATH, True) in seen, f"{task_id}: no FineTuningJobTrigger taken by a triggerer: {seen}"

        xcoms = query(db, "SELECT task_id, value FROM xcom WHERE dag_id = ? AND key = 'return_value'", DAG_ID)
        results = {task_id: json.loads(value) for task_id, value in xcoms}
        assert results["wait_dashscope"]["id"] == jobs["dashscope_job"]
        assert results["wait_openai"]["id"] == jobs["openai_job"]
        assert {result["status"] for result in results.values()} == {"SUCCEEDED"}

"""What the system tests share: processes in their own groups, an Airflow cluster of separate components, waiting
on the metadata database, the REST API.

The cluster runs ``airflow scheduler``, ``airflow dag-processor``, ``airflow triggerer`` and ``airflow api-server``
as separate processes (SQLite, LocalExecutor) in a throwaway AIRFLOW_HOME, so that one component (the triggerer)
can be stopped and started again while the others go on. Everything listens on 127.0.0.1 only: the API server is
bound there, and the scheduler and triggerer run with ``--skip-serve-logs`` (their log servers would bind every
interface).

Every process is started in a session of its own and its whole group is stopped at the end, pass or fail.
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
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

#: Components of the cluster, in start order, with their arguments after ``airflow``.
COMPONENTS: dict[str, list[str]] = {
    "api-server": ["api-server", "--host", "127.0.0.1", "--port", "{api_port}", "--workers", "1"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}
ADMIN = "admin"


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Processes:
    """Processes started by a test, each the leader of its own process group."""

    started: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = field(default_factory=list)

    def start(self, args: list[str], env: dict[str, str], log_file: Path) -> subprocess.Popen[bytes]:
        out = log_file.open("ab")
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append((process, out))
        return process

    def terminate(self, process: subprocess.Popen[bytes], grace: float = 30.0) -> None:
        """SIGTERM the leader alone (as a service manager stops a component), then SIGKILL what is left of its group.

        The leader is only reaped after its group was killed: until then its pid, which is the group's id, cannot
        be reused, so no signal can reach a process this test did not start.
        """
        with suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and not self._exited(process):
            time.sleep(0.2)
        self._signal_group(process, signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        """SIGTERM each leader (as ``terminate`` does), give them time to stop, then SIGKILL whatever is left of each
        group. (A SIGINT to the whole group often left the scheduler running until the grace period ended.)"""
        for process, _ in reversed(self.started):
            if process.returncode is None:  # not reaped yet: its pid is still its own
                with suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
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
        if process.returncode is not None:
            return True
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None

    @staticmethod
    def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)  # the group this test created, by its id (== the leader's pid)


@contextmanager
def processes() -> Iterator[Processes]:
    started = Processes()
    try:
        yield started
    finally:
        started.stop_all()


def wait_for(what: str, check: Callable[[], Any], deadline: float, logs: list[Path], interval: float = 0.5) -> Any:
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


def create_job(base_url: str, vendor: str, api_key: str) -> str:
    """Create a job through the emulator's own API, as a client of the vendor would."""
    headers = {"Authorization": f"Bearer {api_key}"}
    if vendor == "dashscope":
        body = {"model": "qwen-turbo", "training_file_ids": ["file-system-test"]}
        answer = httpx.post(f"{base_url}/dashscope/api/v1/fine-tunes", json=body, headers=headers, timeout=10)
        answer.raise_for_status()
        return str(answer.json()["output"]["job_id"])
    body = {"model": "gpt-4o-mini-2024-07-18", "training_file": "file-system-test"}
    answer = httpx.post(f"{base_url}/openai/v1/fine_tuning/jobs", json=body, headers=headers, timeout=10)
    answer.raise_for_status()
    return str(answer.json()["id"])


def connection_uri(conn_type: str, host: str, api_key: str) -> str:
    """An ``AIRFLOW_CONN_*`` value (JSON) for a vendor connection at ``host``, with quick retries."""
    extra = {"timeout": 5, "max_retries": 2, "backoff_base": 0.1}
    return json.dumps({"conn_type": conn_type, "host": host, "password": api_key, "extra": extra})


@dataclass
class AirflowCluster:
    """Airflow 3's components as separate processes, on loopback, in one throwaway AIRFLOW_HOME.

    :param home: the AIRFLOW_HOME (its ``dags`` folder is scanned every few seconds)
    :param connections: ``AIRFLOW_CONN_*`` values by connection id, given to every component
    """

    home: Path
    connections: dict[str, str]
    started: Processes
    api_port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    _token: str | None = None

    @property
    def db(self) -> Path:
        return self.home / "airflow.db"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def env(self) -> dict[str, str]:
        # Only what is set here: the pytest process's own AIRFLOW_* settings must not leak into the cluster.
        env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.home / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.db}",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__BASE_URL": self.api_url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                "AIRFLOW__API_AUTH__JWT_SECRET": self._jwt_secret,
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
                "NO_COLOR": "1",
                "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            }
        )
        env.update({f"AIRFLOW_CONN_{conn_id.upper()}": uri for conn_id, uri in self.connections.items()})
        return env

    @property
    def _jwt_secret(self) -> str:
        secret_file = self.home / ".jwt-secret"
        if not secret_file.exists():
            secret_file.write_text(secrets.token_hex(32))
        return secret_file.read_text()

    def start(self, deadline: float) -> None:
        """Migrate the database, start every component and wait until they all run."""
        (self.home / "dags").mkdir(parents=True, exist_ok=True)
        # The simple auth manager reads the admin's password from this file (it generates one if it is missing).
        (self.home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps({ADMIN: self.password}))
        migrate = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=max(deadline - time.monotonic(), 1),
        )
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        for name in COMPONENTS:
            self.start_component(name)
        wait_for(
            "the scheduler, the dag-processor and the triggerer to be running",
            lambda: (
                {row[0] for row in query(self.db, "SELECT job_type FROM job WHERE state = 'running'")}
                >= {"SchedulerJob", "DagProcessorJob", "TriggererJob"}
            ),
            deadline,
            self.all_logs,
        )
        wait_for("the API server", self._api_is_up, deadline, self.all_logs)

    def start_component(self, name: str) -> None:
        """Start a component, with a log file of its own (``triggerer.log``, then ``triggerer-2.log``, ...)."""
        args = [arg.format(api_port=self.api_port) for arg in COMPONENTS[name]]
        starts = sum(1 for log in self.home.parent.glob(f"{name}*.log"))
        self.logs[name] = self.home.parent / (f"{name}.log" if not starts else f"{name}-{starts + 1}.log")
        self.running[name] = self.started.start([sys.executable, "-m", "airflow", *args], self.env, self.logs[name])

    def stop_component(self, name: str) -> int | None:
        """SIGTERM the component and wait for it to exit; its exit status."""
        process = self.running.pop(name)
        self.started.terminate(process)
        return process.returncode

    @property
    def all_logs(self) -> list[Path]:
        """The log of each component's latest start."""
        return list(self.logs.values())

    def _api_is_up(self) -> bool:
        try:
            return httpx.get(f"{self.api_url}/api/v2/monitor/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    # -- the REST API ---------------------------------------------------------------------------------------------

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the public REST API as the admin user; the JSON answer."""
        if self._token is None:
            answer = httpx.post(
                f"{self.api_url}/auth/token", json={"username": ADMIN, "password": self.password}, timeout=30
            )
            answer.raise_for_status()
            self._token = str(answer.json()["access_token"])
        headers = {"Authorization": f"Bearer {self._token}"}
        answer = httpx.request(method, f"{self.api_url}/api/v2{path}", headers=headers, timeout=30, **kwargs)
        assert answer.is_success, f"{method} {path}: HTTP {answer.status_code} {answer.text[:500]}"
        return answer.json()

    def add_dag(self, dag_id: str, source: str, deadline: float) -> None:
        """Write a DAG file and wait until the dag-processor has parsed it."""
        (self.home / "dags" / f"{dag_id}.py").write_text(source)
        wait_for(
            f"DAG {dag_id} to be parsed",
            lambda: (
                query(self.db, "SELECT 1 FROM dag WHERE dag_id = ? AND is_stale = 0", dag_id)
                and query(self.db, "SELECT 1 FROM serialized_dag WHERE dag_id = ?", dag_id)
            ),
            deadline,
            self.all_logs,
        )

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """Start a run of ``dag_id`` with ``conf``; its run id."""
        run = self.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        return str(run["dag_run_id"])

    def set_task_state(self, dag_id: str, run_id: str, task_id: str, state: str) -> None:
        """Mark a task instance as a user does in the UI (``failed``, ``success``)."""
        self.api("PATCH", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}", json={"new_state": state})

    # -- the metadata database ---------------------------------------------------------------------------------

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        rows = query(
            self.db, "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?", dag_id, run_id
        )
        return dict(rows)

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        rows = query(self.db, "SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", dag_id, run_id)
        return str(rows[0][0]) if rows else None

    def triggers(self, dag_id: str, run_id: str) -> dict[str, tuple[str, int | None]]:
        """The trigger each deferred task waits on: its class path and the triggerer job holding it (or ``None``)."""
        rows = query(
            self.db,
            "SELECT ti.task_id, t.classpath, t.triggerer_id FROM task_instance ti "
            "JOIN trigger t ON ti.trigger_id = t.id WHERE ti.dag_id = ? AND ti.run_id = ?",
            dag_id,
            run_id,
        )
        return {task_id: (classpath, triggerer_id) for task_id, classpath, triggerer_id in rows}

    def running_triggerers(self) -> set[int]:
        rows = query(self.db, "SELECT id FROM job WHERE job_type = 'TriggererJob' AND state = 'running'")
        return {int(row[0]) for row in rows}

    def task_logs(self, dag_id: str, task_id: str) -> str:
        """Every log a task of ``dag_id`` wrote, the triggerer's lines for its triggers included (``*.trigger.*``)."""
        files = sorted((self.home / "logs" / f"dag_id={dag_id}").glob(f"run_id=*/task_id={task_id}/*.log"))
        return "\n".join(path.read_text(errors="replace") for path in files)

    def xcom_results(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.xcoms(dag_id, run_id, "return_value")

    def xcoms(self, dag_id: str, run_id: str, key: str) -> dict[str, Any]:
        """The XCom ``key`` of each task of the run that pushed one, by task id."""
        rows = query(
            self.db, "SELECT task_id, value FROM xcom WHERE dag_id = ? AND run_id = ? AND key = ?", dag_id, run_id, key
        )
        return {task_id: json.loads(value) for task_id, value in rows}

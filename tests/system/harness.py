"""What the system tests share: processes in their own groups, a production-shaped Airflow cluster of separate
components, its REST API.

The cluster is Airflow as our users run it: a PostgreSQL metadata database, the CeleryExecutor with a Redis broker,
and ``airflow api-server``, ``scheduler``, ``dag-processor``, two triggerers and two Celery workers as
separate processes in a throwaway AIRFLOW_HOME, so that any one of them can be killed while the others go on.
PostgreSQL and Redis come from ``scripts/system_services.py`` (``FT_SYSTEM_DB_URL``, ``FT_SYSTEM_BROKER_URL``).
Everything listens on 127.0.0.1 only: the API server is bound there, and the scheduler, the triggerers and the
workers run with ``--skip-serve-logs`` (their log servers would bind every interface).

Each component names itself as its host (``tests/system/hostname.py``): the REST API then says which worker runs a
task (``hostname``) and which triggerer holds a trigger (its job's ``hostname``).

Every process is started in a session of its own and its whole group is stopped at the end, pass or fail.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
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

from tests.system.hostname import COMPONENT_VAR

ROOT = Path(__file__).resolve().parents[2]

WORKER_CONCURRENCY = 4
WORKER_OPTIONS = ("--concurrency", str(WORKER_CONCURRENCY), "--skip-serve-logs", "--without-mingle", "--without-gossip")
#: Components of the cluster, in start order, with their arguments after ``airflow``.
COMPONENTS: dict[str, list[str]] = {
    "api-server": ["api-server", "--host", "127.0.0.1", "--port", "{api_port}", "--workers", "1"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    **{name: ["triggerer", "--skip-serve-logs"] for name in ("triggerer-a", "triggerer-b")},
    **{name: ["celery", "worker", "--celery-hostname", name, *WORKER_OPTIONS] for name in ("worker-a", "worker-b")},
}
TRIGGERERS = ("triggerer-a", "triggerer-b")
WORKERS = ("worker-a", "worker-b")
#: Started only by a scenario that needs one more worker (``start_component``), stopped by it afterwards.
SPARE_WORKER = "worker-c"
SPARE_COMPONENTS = {SPARE_WORKER: ["celery", "worker", "--celery-hostname", SPARE_WORKER, *WORKER_OPTIONS]}
ADMIN = "admin"
#: A task whose worker stopped heartbeating this long is failed (and retried) by the scheduler. Airflow's default
#: is 300 s; a lost worker is found in seconds here, not minutes (a worker under load must still beat it).
HEARTBEAT_TIMEOUT_SECONDS = 20
#: A triggerer silent this long is dead, and its triggers go to another (Airflow's default: 30 s).
TRIGGERER_HEALTH_SECONDS = 8


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

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL the process and its whole group at once, as a crashed machine or an OOM kill would."""
        self._signal_group(process, signal.SIGKILL)
        process.wait()

    def freeze(self, process: subprocess.Popen[bytes]) -> None:
        """SIGSTOP the process's whole group, as a paused VM, a swap storm or a long collection would stop it."""
        self._signal_group(process, signal.SIGSTOP)

    def thaw(self, process: subprocess.Popen[bytes]) -> None:
        """SIGCONT the process's whole group: it goes on where it stopped."""
        self._signal_group(process, signal.SIGCONT)

    def stop_all(self) -> None:
        """SIGTERM each leader (as ``terminate`` does), give them time to stop, then SIGKILL whatever is left of each
        group. (A SIGINT to the whole group often left the scheduler running until the grace period ended.)"""
        for process, _ in reversed(self.started):
            if process.returncode is None:  # not reaped yet: its pid is still its own
                self.thaw(process)  # a group a failed test left frozen would not handle the SIGTERM
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
    """Airflow 3's components as separate processes on loopback, over PostgreSQL and Redis, in one AIRFLOW_HOME.

    :param home: the AIRFLOW_HOME (its ``dags`` folder is scanned every few seconds)
    :param connections: ``AIRFLOW_CONN_*`` values by connection id, given to every component
    :param db_url: the metadata database (SQLAlchemy URL), also the Celery result backend
    :param broker_url: the Celery broker (Redis)
    """

    home: Path
    connections: dict[str, str]
    started: Processes
    db_url: str
    broker_url: str
    api_port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    fernet_key: str = field(default_factory=lambda: base64.urlsafe_b64encode(os.urandom(32)).decode())
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    _token: str | None = None

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
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CORE__FERNET_KEY": self.fernet_key,
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.system.hostname.component_hostname",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db_url,
                "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.db_url,
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__BASE_URL": self.api_url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                "AIRFLOW__API_AUTH__JWT_SECRET": self._jwt_secret,
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_SECONDS),
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(TRIGGERER_HEALTH_SECONDS),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
                "NO_COLOR": "1",
                "PYTHONPATH": str(ROOT),
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
        self._wait_while_running("the API server", self._api_is_up, deadline)
        self._wait_while_running(
            "the scheduler, the dag-processor and both triggerers to be alive",
            lambda: (
                {"SchedulerJob", "DagProcessorJob"} <= {job["job_type"] for job in self.alive_jobs()}
                and set(self.alive_triggerers().values()) == set(TRIGGERERS)
            ),
            deadline,
        )
        self._wait_while_running("both Celery workers to be ready", self._workers_ready, deadline)

    def _wait_while_running(self, what: str, check: Callable[[], Any], deadline: float) -> None:
        """``wait_for``, failing at once (with its log) if a component exits meanwhile."""

        def checked() -> Any:
            for name, process in self.running.items():
                if process.poll() is not None:
                    pytest.fail(f"{name} exited with {process.returncode} while starting:\n{tail(self.logs[name], 60)}")
            return check()

        wait_for(what, checked, deadline, self.all_logs)

    def start_component(self, name: str) -> None:
        """Start a component, with a log file of its own (``worker-a.log``, then ``worker-a-2.log``, ...)."""
        args = [arg.format(api_port=self.api_port) for arg in {**COMPONENTS, **SPARE_COMPONENTS}[name]]
        starts = sum(1 for log in self.home.parent.glob(f"{name}*.log"))
        self.logs[name] = self.home.parent / (f"{name}.log" if not starts else f"{name}-{starts + 1}.log")
        env = {**self.env, COMPONENT_VAR: name}
        self.running[name] = self.started.start([sys.executable, "-m", "airflow", *args], env, self.logs[name])

    def kill_component(self, name: str) -> None:
        """``kill -9`` the component and every process it started (a worker's task processes too)."""
        self.started.kill(self.running.pop(name))

    def stop_component(self, name: str) -> None:
        """Stop the component as a service manager does (SIGTERM, then SIGKILL what is left of its group)."""
        self.started.terminate(self.running.pop(name))

    def freeze_component(self, name: str) -> None:
        """``kill -STOP`` the component and every process it started: it stops where it is, sockets open."""
        self.started.freeze(self.running[name])

    def thaw_component(self, name: str) -> None:
        """``kill -CONT`` a frozen component: it resumes where it stopped, unaware of the time that passed."""
        self.started.thaw(self.running[name])

    @property
    def all_logs(self) -> list[Path]:
        """The log of each component's latest start."""
        return list(self.logs.values())

    @property
    def component_logs(self) -> list[Path]:
        """Every log file a component wrote, earlier starts included."""
        return sorted(self.home.parent.glob("*.log"))

    def _api_is_up(self) -> bool:
        try:
            return httpx.get(f"{self.api_url}/api/v2/monitor/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _workers_ready(self) -> bool:
        return all("ready." in tail(self.logs[name], 200) for name in WORKERS if name in self.logs)

    # -- the REST API ---------------------------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Call the public REST API as the admin user; the answer, whatever its status."""
        if self._token is None:
            answer = httpx.post(
                f"{self.api_url}/auth/token", json={"username": ADMIN, "password": self.password}, timeout=30
            )
            answer.raise_for_status()
            self._token = str(answer.json()["access_token"])
        headers = {"Authorization": f"Bearer {self._token}", **kwargs.pop("headers", {})}
        return httpx.request(method, f"{self.api_url}/api/v2{path}", headers=headers, timeout=60, **kwargs)

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the public REST API as the admin user; the JSON answer of a success."""
        answer = self.request(method, path, **kwargs)
        assert answer.is_success, f"{method} {path}: HTTP {answer.status_code} {answer.text[:500]}"
        return answer.json()

    def add_dag(self, dag_id: str, source: str, deadline: float) -> None:
        """Write a DAG file and wait until the dag-processor has parsed and serialized it."""
        (self.home / "dags" / f"{dag_id}.py").write_text(source)
        self.wait_for_dag(dag_id, deadline)

    def wait_for_dag(self, dag_id: str, deadline: float) -> None:
        def parsed() -> bool:
            dag = self.request("GET", f"/dags/{dag_id}")
            return (
                dag.is_success
                and not dag.json()["is_stale"]
                and self.request("GET", f"/dags/{dag_id}/tasks").is_success
            )

        wait_for(f"DAG {dag_id} to be parsed", parsed, deadline, self.all_logs)

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Start a run of ``dag_id`` with ``conf``; its run id."""
        run = self.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        return str(run["dag_run_id"])

    def set_task_state(self, dag_id: str, run_id: str, task_id: str, state: str) -> None:
        """Mark a task instance as a user does in the UI (``failed``, ``success``)."""
        self.api("PATCH", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}", json={"new_state": state})

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        answer = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100})
        return {ti["task_id"]: ti for ti in answer["task_instances"]}

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        return {task_id: ti["state"] for task_id, ti in self.task_instances(dag_id, run_id).items()}

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        return str(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def wait_for_run(self, dag_id: str, run_id: str, deadline: float) -> str:
        """Wait until the run has ended; its state."""
        wait_for(
            f"run {run_id} of {dag_id} to end",
            lambda: self.run_state(dag_id, run_id) in ("success", "failed"),
            deadline,
            self.all_logs,
            interval=0.5,
        )
        return str(self.run_state(dag_id, run_id))

    def triggers(self, dag_id: str, run_id: str) -> dict[str, tuple[str, int | None]]:
        """The trigger each deferred task waits on: its class path and the triggerer job holding it (or ``None``)."""
        return {
            task_id: (ti["trigger"]["classpath"], ti["trigger"]["triggerer_id"])
            for task_id, ti in self.task_instances(dag_id, run_id).items()
            if ti.get("trigger")
        }

    def alive_jobs(self) -> list[dict[str, Any]]:
        return list(self.api("GET", "/jobs", params={"is_alive": True, "limit": 100})["jobs"])

    def alive_triggerers(self) -> dict[int, str]:
        """The triggerer jobs that are alive: the component (``triggerer-a``, ...) running each, by job id."""
        return {job["id"]: job["hostname"] for job in self.alive_jobs() if job["job_type"] == "TriggererJob"}

    def task_logs(self, dag_id: str, task_id: str) -> str:
        """Every log a task of ``dag_id`` wrote, the triggerer's lines for its triggers included (``*.trigger.*``)."""
        files = sorted((self.home / "logs" / f"dag_id={dag_id}").glob(f"run_id=*/task_id={task_id}/*.log"))
        return "\n".join(path.read_text(errors="replace") for path in files)

    def xcom_results(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.xcoms(dag_id, run_id, "return_value")

    def xcoms(self, dag_id: str, run_id: str, key: str) -> dict[str, Any]:
        """The XCom ``key`` of each task of the run that pushed one, by task id."""
        answer = self.api(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/~/xcomEntries",
            params={"xcom_key": key, "limit": 100},
        )
        found = {}
        for entry in answer["xcom_entries"]:
            path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{entry['task_id']}/xcomEntries/{key}"
            value = self.api("GET", path, params={"map_index": entry["map_index"], "deserialize": True})["value"]
            found[entry["task_id"]] = value
        return found

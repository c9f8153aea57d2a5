"""`make demo-ui`: Airflow's API server (and the provider's Fine-tuning page in it) over a seeded emulator, on loopback.

In a throwaway AIRFLOW_HOME under .demo/ui/ (SQLite):

1. the embedded emulator on 127.0.0.1 and a free port, its clock at real speed;
2. ``airflow db migrate``; the four connections of our four types in the metadata database, each with the
   identity namespace ``demo-ui``; SimpleAuthManager with two users of known passwords, ``admin`` and ``viewer``;
3. the lifecycle DAG run once with ``airflow dags test`` (the emulator's clock pushed on while its jobs train), so
   real task instances and a finished job with their identity exist;
4. ``ft_leave_running_on_timeout`` run once: each of its four tasks starts a job, gives up waiting after a few
   seconds and fails, and leaves the job training: four orphans made the way users make them;
5. more jobs seeded on each connection: training ones whose loss moves, finished ones, ones of another deployment
   (an identity in another namespace), one created outside Airflow, and an orphan whose DAG is gone;
6. ``airflow api-server`` on 127.0.0.1 (no scheduler, no triggerer: no log server binds every interface).

Run it (``make demo-ui``) and open the printed URL; Ctrl-C stops everything. The browser tests use
:func:`ui_stack` as a library.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import FrameType

from airflow_provider_ft.identity import TaskIdentity
from airflow_provider_ft.vendors.openai import identity_metadata
from airflow_provider_ft_emulator import FineTuningEmulator
from scripts.demo_kit import (
    API_KEY,
    LIFECYCLE_DAG_ID,
    ROOT,
    airflow,
    airflow_env,
    connection_variable,
    fresh_home,
    install_dag,
    install_lifecycle_dag,
)

UI_HOME = ROOT / ".demo" / "ui"
#: The identity namespace of this deployment (connection extra ``namespace``), and of "another deployment".
NAMESPACE = "demo-ui"
OTHER_NAMESPACE = "staging-deployment"
ORPHAN_DAG_ID = "ft_leave_running_on_timeout"
#: How long the orphan DAG's tasks wait for their jobs here (an hour as shipped).
ORPHAN_WAIT_SECONDS = 3
API_START_SECONDS = 180.0
STOP_GRACE_SECONDS = 20.0
#: How long the jobs of the lifecycle DAG train (a loss point every tenth of it), and those the orphan DAG leaves.
LIFECYCLE_RUN_SECONDS = 10.0
ORPHAN_RUN_SECONDS = 30 * 60.0
_MIN = 60.0


@dataclass(frozen=True)
class Login:
    """A user of the SimpleAuthManager, with a password known to the demo (throwaway, on loopback only)."""

    username: str
    password: str
    role: str


LOGINS = (Login("admin", "demo-admin-password", "admin"), Login("viewer", "demo-viewer-password", "viewer"))


@dataclass(frozen=True)
class Account:
    """One of our connections: its id, the emulator's name for its vendor, its connection type, and the price the
    demo gives it (made-up figures of the demo, per million trained tokens: the provider has no prices built in)."""

    conn_id: str
    vendor: str
    conn_type: str
    price: float
    currency: str


ACCOUNTS = (
    Account("dashscope_default", "dashscope", "dashscope", 20.0, "CNY"),
    Account("openai_default", "openai", "openaifinetuning", 3.0, "USD"),
    Account("azure_openai_default", "azure", "azureopenaifinetuning", 3.3, "USD"),
    Account("together_default", "together", "togetherfinetuning", 0.5, "USD"),
)
ACCOUNT_OF_VENDOR = {account.vendor: account for account in ACCOUNTS}


@dataclass(frozen=True)
class SeededJob:
    """A job the stack put on a connection, and what the page should make of it.

    :param kind: ``lifecycle`` (a real run's job, ended), ``orphan`` (still training, its creating task instance
        not running or gone), ``other-deployment`` (an identity in another namespace), ``training`` (running, no
        Airflow identity), ``finished`` (ended, no Airflow identity)
    :param why: in words, where the job comes from
    """

    conn_id: str
    vendor: str
    job_id: str
    kind: str
    why: str


@dataclass(frozen=True)
class UiStack:
    """A running stack: what a browser test needs.

    :param base_url: the API server, ``http://127.0.0.1:<port>``
    :param home: the AIRFLOW_HOME
    :param emulator: the emulator every connection points at (its clock runs at real speed)
    :param logins: the users by name (``admin``, ``viewer``)
    :param jobs: what the stack put on each connection
    :param env: the environment of the stack's Airflow commands (for ``airflow`` CLI calls from a test)
    """

    base_url: str
    home: Path
    emulator: FineTuningEmulator
    logins: Mapping[str, Login]
    jobs: tuple[SeededJob, ...]
    env: Mapping[str, str]

    @property
    def has_plugin(self) -> bool:
        """Whether the provider ships its UI plugin (``airflow_provider_ft.ui``) in this checkout."""
        return importlib.util.find_spec("airflow_provider_ft.ui") is not None

    @property
    def page_url(self) -> str:
        """The Fine-tuning page in Airflow's UI once the plugin exists; Airflow's home page otherwise."""
        return f"{self.base_url}/plugin/fine-tuning" if self.has_plugin else f"{self.base_url}/"


@contextmanager
def ui_stack(home: Path = UI_HOME, port: int = 0, *, quiet: bool = False) -> Iterator[UiStack]:
    """Set the stack up in ``home`` (emptied first), serve the API server on 127.0.0.1:``port`` (0: a free one)
    and yield it; on leaving, stop the API server's whole process group and the emulator."""
    say: Callable[[str], None] = (lambda _: None) if quiet else _say
    home = fresh_home(home)
    api_port = port or _free_port()
    with FineTuningEmulator(api_key=API_KEY) as emulator:
        env = _stack_env(home, api_port)
        say(f"Emulator on {emulator.url('dashscope').split('/dashscope')[0]}; AIRFLOW_HOME {home}")
        _prepare_airflow(home, env, emulator, say)
        jobs = [*_run_lifecycle(home, env, emulator, say), *_run_orphan_dag(home, env, emulator, say)]
        jobs += _seed(emulator)
        say(f"Starting airflow api-server on 127.0.0.1:{api_port}")
        with _api_server(home, env, api_port):
            yield UiStack(
                base_url=f"http://127.0.0.1:{api_port}",
                home=home,
                emulator=emulator,
                logins={login.username: login for login in LOGINS},
                jobs=tuple(jobs),
                env=env,
            )


def _say(text: str) -> None:
    print(text, flush=True)


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stack_env(home: Path, api_port: int) -> dict[str, str]:
    """Airflow in ``home``: the simple auth manager with our two users, the API server on 127.0.0.1."""
    base_url = f"http://127.0.0.1:{api_port}"
    return airflow_env(
        home,
        AIRFLOW__CORE__FERNET_KEY=base64.urlsafe_b64encode(os.urandom(32)).decode(),
        AIRFLOW__CORE__AUTH_MANAGER="airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=",".join(f"{login.username}:{login.role}" for login in LOGINS),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="False",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(home / "passwords.json"),
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__PORT=str(api_port),
        AIRFLOW__API__BASE_URL=base_url,
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32),
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{base_url}/execution/",
    )


def _prepare_airflow(
    home: Path, env: Mapping[str, str], emulator: FineTuningEmulator, say: Callable[[str], None]
) -> None:
    """Migrate the database, write the users' passwords, add the four connections to the metadata database."""
    say("airflow db migrate")
    airflow(["db", "migrate"], env)
    # The simple auth manager keeps its users' passwords in this file (and makes up one for a user missing there).
    (home / "passwords.json").write_text(json.dumps({login.username: login.password for login in LOGINS}))
    connections = {
        account.conn_id: {
            "conn_type": account.conn_type,
            "host": emulator.url(account.vendor),
            "password": API_KEY,
            "extra": json.dumps(
                {"namespace": NAMESPACE, "price_per_million_tokens": account.price, "currency": account.currency}
            ),
        }
        for account in ACCOUNTS
    }
    (home / "connections.json").write_text(json.dumps(connections, indent=2))
    say(f"airflow connections import: {', '.join(connections)} (namespace {NAMESPACE})")
    airflow(["connections", "import", str(home / "connections.json")], env)


def _run_lifecycle(
    home: Path, env: Mapping[str, str], emulator: FineTuningEmulator, say: Callable[[str], None]
) -> list[SeededJob]:
    """Run the lifecycle DAG once; its jobs train for ``LIFECYCLE_RUN_SECONDS``."""
    install_lifecycle_dag(home / "dags")
    say(f"airflow dags test {LIFECYCLE_DAG_ID} (its jobs train for {LIFECYCLE_RUN_SECONDS:g} s)")
    before = _job_ids(emulator)
    emulator.api_run_seconds = LIFECYCLE_RUN_SECONDS
    _dags_test(home, env, emulator, LIFECYCLE_DAG_ID)
    why = f"created by {LIFECYCLE_DAG_ID}.train_openai (task succeeded; job succeeded, kept by its teardown)"
    return [
        SeededJob(ACCOUNT_OF_VENDOR[vendor].conn_id, vendor, job_id, "lifecycle", why)
        for vendor, job_id in sorted(_job_ids(emulator) - before)
    ]


def _run_orphan_dag(
    home: Path, env: Mapping[str, str], emulator: FineTuningEmulator, say: Callable[[str], None]
) -> list[SeededJob]:
    """Run ``ft_leave_running_on_timeout`` once, waiting seconds instead of an hour: four failed tasks, four jobs
    left training."""
    install_dag(
        home / "dags",
        f"{ORPHAN_DAG_ID}.py",
        {"WAIT = timedelta(hours=1)": f"WAIT = timedelta(seconds={ORPHAN_WAIT_SECONDS})", "= 60.0": "= 1.0"},
    )
    say(f"airflow dags test {ORPHAN_DAG_ID} (each task gives up after {ORPHAN_WAIT_SECONDS} s, its job trains on)")
    before = _job_ids(emulator)
    emulator.api_run_seconds = ORPHAN_RUN_SECONDS
    _dags_test(home, env, emulator, ORPHAN_DAG_ID, expect_failure=True)
    states = _task_states(home / "airflow.db", ORPHAN_DAG_ID)
    return [
        SeededJob(
            ACCOUNT_OF_VENDOR[vendor].conn_id,
            vendor,
            job_id,
            "orphan",
            f"created by {ORPHAN_DAG_ID}.start_{vendor}, whose task is {states.get(f'start_{vendor}')}; still training",
        )
        for vendor, job_id in sorted(_job_ids(emulator) - before)
    ]


def _dags_test(
    home: Path, env: Mapping[str, str], emulator: FineTuningEmulator, dag_id: str, *, expect_failure: bool = False
) -> None:
    """``airflow dags test``, the connections also given as ``AIRFLOW_CONN_*`` variables (the same as in the
    database): the triggers it runs in line find no connection of the metadata database on Airflow 3.3.2."""
    variables = {
        f"AIRFLOW_CONN_{account.conn_id.upper()}": connection_variable(
            account.conn_type, emulator.url(account.vendor), namespace=NAMESPACE
        )
        for account in ACCOUNTS
    }
    result = airflow(["dags", "test", dag_id], {**env, **variables}, check=False)
    (home / f"{dag_id}.log").write_text(result.stdout + result.stderr)
    if (result.returncode != 0) != expect_failure:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"airflow dags test {dag_id} ended with {result.returncode}; log in {home / dag_id}.log")


def _job_ids(emulator: FineTuningEmulator) -> set[tuple[str, str]]:
    return {(account.vendor, _id_of(job)) for account in ACCOUNTS for job in emulator.jobs(account.vendor)}


def _id_of(job: Mapping[str, object]) -> str:
    return str(job.get("id") or job.get("job_id"))


def _task_states(database: Path, dag_id: str) -> dict[str, str | None]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ?", (dag_id,)).fetchall()
    return dict(rows)


def _seed(emulator: FineTuningEmulator) -> list[SeededJob]:
    """Jobs as a shared account holds them, besides those the DAG runs made."""
    ours_gone = TaskIdentity("ft_nightly_retrain", "train", "scheduled__2026-01-05T02:00:00+00:00", -1, NAMESPACE)
    theirs = TaskIdentity(LIFECYCLE_DAG_ID, "train_openai", "scheduled__2026-01-05T00:00:00+00:00", -1, OTHER_NAMESPACE)
    seed = emulator.seed_job
    jobs = [
        (
            "openai",
            seed("openai", age=_h(1), runs_for=_h(3), metadata=identity_metadata(ours_gone)),
            "orphan",
            f"identity of {ours_gone.describe()} in namespace {NAMESPACE}: that DAG is gone, the job trains on",
        ),
        (
            "openai",
            seed("openai", age=4 * _MIN, runs_for=16 * _MIN, metadata=identity_metadata(theirs)),
            "other-deployment",
            f"identity of {theirs.describe()} in namespace {OTHER_NAMESPACE}; training (a loss point every 2 min)",
        ),
        ("openai", seed("openai", status="failed", age=_h(30), error="Invalid training file format."), "finished", ""),
        ("openai", seed("openai", status="cancelled", age=_h(50), runs_for=_h(1)), "finished", "cancelled"),
        (
            "dashscope",
            seed("dashscope", age=4 * _MIN, runs_for=6 * _MIN, name="console-sft-qwen-plus", model="qwen-plus"),
            "training",
            "created in DashScope's console (no Airflow identity); a loss point every minute, ends in 6 minutes",
        ),
        (
            "dashscope",
            seed("dashscope", age=10 * _MIN, runs_for=_h(2), name=_other(LIFECYCLE_DAG_ID, "train_dashscope").tag),
            "other-deployment",
            f"job_name tag of {LIFECYCLE_DAG_ID}.train_dashscope in namespace {OTHER_NAMESPACE}",
        ),
        ("dashscope", seed("dashscope", status="SUCCEEDED", age=_h(72), runs_for=_h(2)), "finished", "succeeded"),
        (
            "dashscope",
            seed("dashscope", status="FAILED", age=_h(26), error="Training file has invalid format."),
            "finished",
            "failed",
        ),
        (
            "azure",
            seed("azure", age=20 * _MIN, runs_for=_h(1), name=_other(ORPHAN_DAG_ID, "start_azure").tag),
            "other-deployment",
            f"suffix tag of {ORPHAN_DAG_ID}.start_azure in namespace {OTHER_NAMESPACE}",
        ),
        ("azure", seed("azure", status="succeeded", age=_h(20), runs_for=_h(1)), "finished", "succeeded"),
        (
            "together",
            seed("together", age=5 * _MIN, runs_for=15 * _MIN, name="notebook-llama"),
            "training",
            "created from a notebook (no Airflow identity); a loss point every 2 minutes",
        ),
        (
            "together",
            seed("together", age=2 * _MIN, runs_for=_h(1), name=_other(ORPHAN_DAG_ID, "start_together").tag),
            "other-deployment",
            f"suffix tag of {ORPHAN_DAG_ID}.start_together in namespace {OTHER_NAMESPACE}",
        ),
        ("together", seed("together", status="completed", age=_h(48), runs_for=_h(2)), "finished", "completed"),
        ("together", seed("together", status="cancelled", age=_h(5), runs_for=_h(1)), "finished", "cancelled"),
    ]
    return [
        SeededJob(ACCOUNT_OF_VENDOR[vendor].conn_id, vendor, job_id, kind, why or _status(emulator, vendor, job_id))
        for vendor, job_id, kind, why in jobs
    ]


def _h(hours: float) -> timedelta:
    return timedelta(hours=hours)


def _other(dag_id: str, task_id: str) -> TaskIdentity:
    """An identity from another deployment: its own run of ``dag_id``, in ``OTHER_NAMESPACE``."""
    return TaskIdentity(dag_id, task_id, "manual__2026-01-05T09:00:00+00:00", -1, OTHER_NAMESPACE)


def _status(emulator: FineTuningEmulator, vendor: str, job_id: str) -> str:
    job = emulator.job(vendor, job_id)
    return "deleted" if job is None else str(job["status"])


@contextmanager
def _api_server(home: Path, env: Mapping[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``airflow api-server`` on 127.0.0.1:``port``, in a process group of its own; returns once it answers. On
    leaving: SIGTERM to the server, then SIGKILL to whatever is left of its group."""
    log = home / "api-server.log"
    args = ["api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args],
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_until_answering(process, f"http://127.0.0.1:{port}/api/v2/monitor/health", log)
            yield process
        finally:
            _stop_group(process)


def _wait_until_answering(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + API_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"airflow api-server exited with {process.returncode}; see {log}")
        with suppress(OSError), urllib.request.urlopen(url, timeout=2) as answer:
            if answer.status == 200:
                return
        time.sleep(0.5)
    raise SystemExit(f"airflow api-server did not answer {url} within {API_START_SECONDS:g} s; see {log}")


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the leader, wait for it (without reaping it, so its pid, the group's id, stays ours), then SIGKILL
    the group and reap the leader."""
    with suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while (
        time.monotonic() < deadline and os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
    ):
        time.sleep(0.2)
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _print_stack(stack: UiStack) -> None:
    print(f"\n{'vendor':<10} {'connection':<21} {'job':<40} {'kind':<17} what it is")
    for job in stack.jobs:
        print(f"{job.vendor:<10} {job.conn_id:<21} {job.job_id:<40} {job.kind:<17} {job.why}")
    print(f"\nOpen {stack.page_url}")
    if not stack.has_plugin:
        print("  (the provider's UI plugin, airflow_provider_ft.ui, is not in this checkout: Airflow's home page)")
    for login in stack.logins.values():
        print(f"  log in as {login.username!r} (role {login.role}), password {login.password!r}")
    print(f"Logs in {stack.home}. Ctrl-C stops everything.", flush=True)


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="the API server's port (default: a free one)")
    options = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    started = time.monotonic()
    try:
        with ui_stack(port=options.port) as stack:
            print(f"\nReady in {time.monotonic() - started:.0f} s.")
            _print_stack(stack)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        print("\nStopped.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

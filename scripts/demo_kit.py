"""What ``make demo`` and ``make demo-ui`` share: a throwaway AIRFLOW_HOME, example DAGs with a short poll interval,
``airflow`` commands run in it, and readings of what a run left (task log lines, XCom, asset events).

Nothing here contacts a real vendor: every connection points at the emulator, with a fake key.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DAGS = ROOT / "example_dags"
#: The only key the demos' emulators accept; a fake, never a real vendor key.
API_KEY = "sk-demo-not-a-real-key"
LIFECYCLE_DAG_ID = "ft_train_and_publish"
#: The lifecycle DAG's poll interval as shipped (30 s), and what the demos use against a sped-up emulator.
SHIPPED_POLL_LINE = "POLL_INTERVAL = 30.0"
DEMO_POLL_INTERVAL = 0.5
COMMAND_TIMEOUT = 600

#: ``2026-01-01T00:00:00.000000Z [info     ] <message> [<logger>] key=value ...``: one record of Airflow's console log.
_RECORD = re.compile(r"^\S+Z \[(?P<level>\w+)\s*\] (?P<message>.*?) \[(?P<logger>\w+(?:\.\w+)+)\]")
_TASK_START = re.compile(r"\[DAG TEST\] starting task_id=(?P<task_id>\S+)")


def fresh_home(home: Path) -> Path:
    """Empty ``home`` (a throwaway AIRFLOW_HOME under .demo/) and give it an empty ``dags`` folder."""
    shutil.rmtree(home, ignore_errors=True)
    (home / "dags").mkdir(parents=True)
    return home


def install_dag(dags_folder: Path, name: str, replacements: Mapping[str, str] | None = None) -> Path:
    """Copy ``example_dags/<name>`` into ``dags_folder``, each of ``replacements`` (shipped text: demo text) made.

    A replaced text that the shipped DAG no longer holds stops the demo: it would otherwise run the DAG unchanged.
    """
    source = (EXAMPLE_DAGS / name).read_text(encoding="utf-8")
    for shipped, demo in (replacements or {}).items():
        if shipped not in source:
            raise SystemExit(f"example_dags/{name} no longer holds {shipped!r}; update the demo")
        source = source.replace(shipped, demo)
    target = dags_folder / name
    target.write_text(source, encoding="utf-8")
    return target


def install_lifecycle_dag(dags_folder: Path) -> Path:
    """The lifecycle DAG as shipped but for its poll interval (30 s as shipped, half a second here)."""
    return install_dag(
        dags_folder, f"{LIFECYCLE_DAG_ID}.py", {SHIPPED_POLL_LINE: f"POLL_INTERVAL = {DEMO_POLL_INTERVAL}"}
    )


def airflow_env(home: Path, **settings: str) -> dict[str, str]:
    """This process's environment without its own ``AIRFLOW*`` settings, for an Airflow in ``home`` (SQLite, its
    ``dags`` folder, no example DAGs), plus ``settings`` (``AIRFLOW__...`` and ``AIRFLOW_CONN_...`` variables)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        NO_COLOR="1",
    )
    env.update(settings)
    return env


def connection_variable(conn_type: str, host: str, **extra: str) -> str:
    """An ``AIRFLOW_CONN_*`` value (JSON) for a connection of ``conn_type`` to the emulator at ``host``."""
    connection: dict[str, object] = {"conn_type": conn_type, "host": host, "password": API_KEY}
    if extra:
        connection["extra"] = dict(extra)
    return json.dumps(connection)


def airflow(args: list[str], env: Mapping[str, str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``airflow <args>`` with this interpreter; its output is captured. With ``check``, a failure stops the
    demo with that output."""
    result = subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
        timeout=COMMAND_TIMEOUT,
    )
    if check and result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"airflow {' '.join(args)} failed with exit code {result.returncode}")
    return result


@dataclass(frozen=True)
class LogLine:
    """One line the provider logged during ``airflow dags test``, with the task it was logged for."""

    task_id: str
    message: str


def provider_log_lines(output: str) -> list[LogLine]:
    """The provider's own log lines in the output of ``airflow dags test``, each with its task.

    ``dags test`` runs the tasks (and their triggers, in line) one after the other; a line belongs to the task
    started last.
    """
    lines = []
    task_id = "-"
    for raw in output.splitlines():
        record = _RECORD.match(raw)
        if record is None:
            continue
        started = _TASK_START.search(record["message"])
        if started is not None:
            task_id = started["task_id"]
        elif "airflow_provider_ft" in record["logger"]:
            lines.append(LogLine(task_id, record["message"]))
    return lines


def xcom_values(database: Path, dag_id: str, key: str) -> dict[str, object]:
    """The XCom values under ``key`` of every task of ``dag_id``'s runs, by task id."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT task_id, value FROM xcom WHERE dag_id = ? AND key = ? ORDER BY task_id", (dag_id, key)
        ).fetchall()
    return {task_id: json.loads(value) for task_id, value in rows}


@dataclass(frozen=True)
class AssetEvent:
    """An asset event as the metadata database holds it."""

    uri: str
    source_task_id: str
    extra: dict[str, object]


def asset_events(database: Path) -> list[AssetEvent]:
    """Every asset event in the metadata database, oldest first."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT asset.uri, asset_event.source_task_id, asset_event.extra FROM asset_event "
            "JOIN asset ON asset.id = asset_event.asset_id ORDER BY asset_event.timestamp"
        ).fetchall()
    return [AssetEvent(uri, task_id, json.loads(extra or "{}")) for uri, task_id, extra in rows]

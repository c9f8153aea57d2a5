"""`make demo`: a seeded emulator, the cleanup example DAG run by `airflow dags test`, and what it changed.

Everything lives in a throwaway AIRFLOW_HOME under .demo/; no real vendor is contacted.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from airflow_provider_ft_emulator import FineTuningEmulator, seed_demo

ROOT = Path(__file__).resolve().parent.parent
DEMO_DAG_ID = "ft_cleanup_stale_jobs"
API_KEY = "sk-demo-not-a-real-key"


def main() -> int:
    home = ROOT / ".demo" / "airflow-home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    with FineTuningEmulator(api_key=API_KEY) as emulator:
        seed_demo(emulator)
        before = _snapshot(emulator)
        env = _airflow_env(home, emulator)
        print(f"Emulator: {emulator.url('dashscope')} and {emulator.url('openai')}")
        print(f"AIRFLOW_HOME: {home}\n")
        _run([sys.executable, "-m", "airflow", "db", "migrate"], env, quiet=True)
        result = _run([sys.executable, "-m", "airflow", "dags", "test", DEMO_DAG_ID], env, quiet=True)
        after = _snapshot(emulator)
        acted = _acted_on(emulator)
    _print_changes(before, after, acted)
    _print_summaries(home / "airflow.db")
    print(f"\nThe DAG run {'succeeded' if result.returncode == 0 else 'FAILED'}; full log in {home / 'dags-test.log'}")
    (home / "dags-test.log").write_text(result.stdout + result.stderr)
    return result.returncode


def _airflow_env(home: Path, emulator: FineTuningEmulator) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "example_dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        AIRFLOW_CONN_DASHSCOPE_DEFAULT=json.dumps(
            {"conn_type": "dashscope", "host": emulator.url("dashscope"), "password": API_KEY}
        ),
        AIRFLOW_CONN_OPENAI_DEFAULT=json.dumps(
            {"conn_type": "openaifinetuning", "host": emulator.url("openai"), "password": API_KEY}
        ),
    )
    return env


def _run(command: list[str], env: dict[str, str], *, quiet: bool) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, env=env, capture_output=quiet, text=True, check=False, timeout=600)
    if result.returncode != 0 and command[-1] == "migrate":
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"{' '.join(command[2:])} failed")
    return result


def _snapshot(emulator: FineTuningEmulator) -> dict[tuple[str, str], str]:
    snapshot = {}
    for vendor, id_key in (("dashscope", "job_id"), ("openai", "id")):
        for job in emulator.jobs(vendor):
            snapshot[(vendor, str(job[id_key]))] = str(job["status"])
    return snapshot


def _acted_on(emulator: FineTuningEmulator) -> dict[tuple[str, str], str]:
    """The jobs the DAG sent a cancel or delete for, from the emulator's request log."""
    acted = {}
    for request in emulator.requests:
        parts = request.path.rstrip("/").split("/")
        if request.vendor and request.method == "POST" and parts[-1] == "cancel":
            acted[(request.vendor, parts[-2])] = "cancelled by the DAG"
        elif request.vendor and request.method == "DELETE":
            acted[(request.vendor, parts[-1])] = "deleted by the DAG"
    return acted


def _print_changes(
    before: dict[tuple[str, str], str], after: dict[tuple[str, str], str], acted: dict[tuple[str, str], str]
) -> None:
    print("Jobs in the emulator before and after the run (queued jobs also move on by themselves as time passes):\n")
    print(f"{'vendor':<10} {'job':<32} {'before':<17} {'after':<17} what the DAG did")
    for key, status in sorted(before.items()):
        print(f"{key[0]:<10} {key[1]:<32} {status:<17} {after.get(key, '(deleted)'):<17} {acted.get(key, '-')}")


def _print_summaries(database: Path) -> None:
    """Each cleanup task's summary, as it pushed it to XCom."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT task_id, value FROM xcom WHERE key = 'cleanup_summary' ORDER BY task_id")
        summaries = [(task_id, json.loads(value)) for task_id, value in rows]
    print("\nWhat each cleanup task returned (XCom):")
    for task_id, summary in summaries:
        counts = ", ".join(f"{name} {summary[name]}" for name in ("seen", "matched", "acted", "skipped", "failed"))
        print(f"  {task_id}: {summary['action']}{' (dry run)' if summary['dry_run'] else ''}: {counts}")


if __name__ == "__main__":
    raise SystemExit(main())

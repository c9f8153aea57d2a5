"""`make demo`: a seeded emulator, the cleanup example DAG run by `airflow dags test`, and what it changed.

Everything lives in a throwaway AIRFLOW_HOME under .demo/; no real vendor is contacted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from airflow_provider_ft.emulator import FineTuningEmulator, seed_demo

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
    _print_changes(before, after)
    _print_summaries(result.stdout)
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
            {"conn_type": "openai_fine_tuning", "host": emulator.url("openai"), "password": API_KEY}
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


def _print_changes(before: dict[tuple[str, str], str], after: dict[tuple[str, str], str]) -> None:
    print(f"{'vendor':<10} {'job':<34} {'before':<12} after")
    for key, status in sorted(before.items()):
        now = after.get(key, "(deleted)")
        marker = "  <- changed" if now != status else ""
        print(f"{key[0]:<10} {key[1]:<34} {status:<12} {now}{marker}")


def _print_summaries(output: str) -> None:
    lines = [line for line in output.splitlines() if "Cleanup summary" in line or line.lstrip().startswith("|")]
    if lines:
        print("\nWhat the cleanup tasks reported:")
        print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())

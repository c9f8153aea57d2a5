"""`make demo`: the lifecycle example DAG (upload, create once, the vendor's progress and loss, the model's asset
event, teardown) against a sped-up emulator, then the cleanup example DAG against a seeded one; what each did.

Both run with `airflow dags test` in a throwaway AIRFLOW_HOME under .demo/; no real vendor is contacted.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

from airflow_provider_ft_emulator import FineTuningEmulator, seed_demo
from scripts.demo_kit import (
    API_KEY,
    LIFECYCLE_DAG_ID,
    ROOT,
    airflow,
    airflow_env,
    asset_events,
    connection_variable,
    fresh_home,
    install_dag,
    install_lifecycle_dag,
    provider_log_lines,
    xcom_values,
)

DEMO_DAG_ID = "ft_cleanup_stale_jobs"
#: Emulated seconds per real second of the lifecycle's emulator: a created job (5 s queued, 600 s running) ends in
#: about 2 real seconds, as in tests/operators/test_dags.py.
LIFECYCLE_TIME_SCALE = 300.0
LIFECYCLE_VENDORS = ("dashscope", "openai")
#: The path (below the vendor's mount) of the request that creates a job.
CREATE_PATHS = {"dashscope": "/fine-tunes", "openai": "/fine_tuning/jobs"}
#: Width of a printed log line.
WIDTH = 150


def main() -> int:
    home = fresh_home(ROOT / ".demo" / "airflow-home")
    install_lifecycle_dag(home / "dags")
    install_dag(home / "dags", f"{DEMO_DAG_ID}.py")
    print(f"AIRFLOW_HOME: {home}\n")
    airflow(["db", "migrate"], airflow_env(home))
    lifecycle_ok = _lifecycle(home)
    with FineTuningEmulator(api_key=API_KEY) as emulator:
        seed_demo(emulator)
        before = _snapshot(emulator)
        print(f"\n== 2. {DEMO_DAG_ID}: the emulator seeded with stale and fresh jobs, the cleanup DAG run once\n")
        result = airflow(["dags", "test", DEMO_DAG_ID], _airflow_env(home, emulator), check=False)
        after = _snapshot(emulator)
        acted = _acted_on(emulator)
    (home / "dags-test.log").write_text(result.stdout + result.stderr)
    _print_changes(before, after, acted)
    _print_summaries(home / "airflow.db")
    print(f"\nThe DAG run {'succeeded' if result.returncode == 0 else 'FAILED'}; full log in {home / 'dags-test.log'}")
    print("\nTo see these jobs in Airflow's UI (the Fine-tuning page: where each came from, orphans, loss, cost):")
    print("  make demo-ui    (prints the URL and the admin and viewer logins; Ctrl-C stops it)")
    return 0 if lifecycle_ok and result.returncode == 0 else 1


def _lifecycle(home: Path) -> bool:
    """Run the lifecycle DAG once against an emulator whose jobs end in seconds; print what it did."""
    print(f"== 1. {LIFECYCLE_DAG_ID}: train on DashScope and OpenAI, publish the models, tear the jobs down\n")
    with FineTuningEmulator(api_key=API_KEY, time_scale=LIFECYCLE_TIME_SCALE) as emulator:
        result = airflow(["dags", "test", LIFECYCLE_DAG_ID], _airflow_env(home, emulator), check=False)
        created = _created_jobs(emulator)
    log = home / "lifecycle-dags-test.log"
    log.write_text(result.stdout + result.stderr)
    _print_created(created)
    _print_task_log(result.stdout + result.stderr)
    _print_models_and_assets(home / "airflow.db")
    print(f"\nThe DAG run {'succeeded' if result.returncode == 0 else 'FAILED'}; full log in {log}")
    return result.returncode == 0 and all(len(created[vendor]) == 1 for vendor in LIFECYCLE_VENDORS)


def _created_jobs(emulator: FineTuningEmulator) -> dict[str, list[str]]:
    """The ids of the jobs each vendor's API created, from the emulator's request log (successful creates)."""
    created: dict[str, list[str]] = {vendor: [] for vendor in LIFECYCLE_VENDORS}
    for request in emulator.requests:
        vendor = request.vendor
        answered = 200 <= request.status < 300
        if vendor in created and (request.method, request.path) == ("POST", CREATE_PATHS[vendor]) and answered:
            answer = json.loads(request.answer_body)
            created[vendor].append(str(answer.get("id") or answer["output"]["job_id"]))
    return created


def _print_created(created: dict[str, list[str]]) -> None:
    print("Jobs created (successful create requests the emulator answered):")
    for vendor, ids in created.items():
        verdict = "exactly one" if len(ids) == 1 else f"{len(ids)}: NOT exactly one"
        print(f"  {vendor:<10} {verdict}: {', '.join(ids) or '-'}")


def _print_task_log(output: str) -> None:
    """The provider's lines of the task logs: uploads, the create, the vendor's progress and loss, the outcome."""
    print("\nFrom the task logs (the provider's lines; the wait's come from the trigger, run in line):")
    task_id = None
    for line in provider_log_lines(output):
        if line.task_id != task_id:
            task_id = line.task_id
            print(f"  {task_id}")
        message = re.sub(r"^(job \S+ progress: )", "", line.message)
        print(f"    {message[: WIDTH - 4]}")


def _print_models_and_assets(database: Path) -> None:
    print("\nFine-tuned models (XCom fine_tuned_model):")
    for task_id, model in xcom_values(database, LIFECYCLE_DAG_ID, "fine_tuned_model").items():
        print(f"  {task_id}: {model}")
    print("\nAsset events (metadata database):")
    for event in asset_events(database):
        extra = ", ".join(f"{key}={value}" for key, value in sorted(event.extra.items()))
        print(f"  {event.uri} from {event.source_task_id}: {extra}")


def _airflow_env(home: Path, emulator: FineTuningEmulator) -> dict[str, str]:
    """Airflow in ``home``, its ``dashscope_default`` and ``openai_default`` connections on ``emulator``."""
    return airflow_env(
        home,
        AIRFLOW_CONN_DASHSCOPE_DEFAULT=connection_variable("dashscope", emulator.url("dashscope")),
        AIRFLOW_CONN_OPENAI_DEFAULT=connection_variable("openaifinetuning", emulator.url("openai")),
    )


def _snapshot(emulator: FineTuningEmulator) -> dict[tuple[str, str], str]:
    snapshot = {}
    for vendor, id_key in (("dashscope", "job_id"), ("openai", "id")):
        for job in emulator.jobs(vendor):
            snapshot[(vendor, str(job[id_key]))] = str(job["status"])
    return snapshot


def _acted_on(emulator: FineTuningEmulator) -> dict[tuple[str, str], str]:
    """The jobs the DAG sent a cancel or delete for, from the emulator's request log."""
    acted: dict[tuple[str, str], str] = {}
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

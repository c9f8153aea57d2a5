"""System test: the deferrable sensor under real Airflow processes, against the emulator's command-line server.

The session's cluster (``harness.py``: PostgreSQL, Redis, Celery workers, two triggerers) runs one DAG whose two
sensors wait for a DashScope and an OpenAI job created through the API of ``python -m airflow_provider_ft_emulator``.
The test checks that each sensor was ``deferred`` with a ``FineTuningJobTrigger`` taken by a triggerer (so a
triggerer, not a worker, waited), then resumed and succeeded with the final job in XCom.

Skipped unless ``FT_SYSTEM_TESTS=1`` (``make system-test`` sets it, and starts PostgreSQL and Redis around the run).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import pytest

from tests.system.harness import create_job, wait_for

if TYPE_CHECKING:
    from tests.system.conftest import CliEmulator
    from tests.system.harness import AirflowCluster

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(os.environ.get("FT_SYSTEM_TESTS") != "1", reason="system test: set FT_SYSTEM_TESTS=1 to run"),
    pytest.mark.timeout(600),
]

DAG_ID = "ft_system_deferral"
TRIGGER_CLASSPATH = "airflow_provider_ft.triggers.fine_tuning.FineTuningJobTrigger"
BUDGET_SECONDS = 120.0

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


@pytest.mark.scenario(
    "1d. Deferrable sensors",
    "2 deferrable sensors on jobs created through the API of the emulator's command-line server",
)
def test_deferrable_sensor_waits_in_the_triggerer_and_resumes(
    cluster: AirflowCluster, cli_emulator: CliEmulator, scenario_notes: list[str]
) -> None:
    deadline = time.monotonic() + BUDGET_SECONDS
    logs = [*cluster.all_logs, cli_emulator.log]
    cluster.add_dag(DAG_ID, DAG_SOURCE.format(dag_id=DAG_ID), deadline)
    jobs = {
        "dashscope_job": create_job(cli_emulator.url, "dashscope", cli_emulator.api_key),
        "openai_job": create_job(cli_emulator.url, "openai", cli_emulator.api_key),
    }
    run_id = cluster.trigger(DAG_ID, jobs)

    seen_states: dict[str, set[str]] = {"wait_dashscope": set(), "wait_openai": set()}
    triggers: dict[str, set[tuple[str, bool]]] = {"wait_dashscope": set(), "wait_openai": set()}

    def finished() -> bool:
        for task_id, state in cluster.task_states(DAG_ID, run_id).items():
            if task_id in seen_states and state:
                seen_states[task_id].add(state)
        for task_id, (classpath, triggerer_id) in cluster.triggers(DAG_ID, run_id).items():
            triggers.setdefault(task_id, set()).add((classpath, triggerer_id is not None))
        return cluster.run_state(DAG_ID, run_id) in ("success", "failed")

    wait_for("the DAG run to finish", finished, deadline, logs, interval=0.2)

    final = cluster.task_states(DAG_ID, run_id)
    assert cluster.run_state(DAG_ID, run_id) == "success", f"{final}\n{[str(log) for log in logs]}"
    assert final == {"wait_dashscope": "success", "wait_openai": "success"}
    for task_id, states in seen_states.items():
        assert "deferred" in states, f"{task_id} was never seen deferred (saw {sorted(states)})"
    for task_id, seen in triggers.items():
        assert (TRIGGER_CLASSPATH, True) in seen, f"{task_id}: no FineTuningJobTrigger taken by a triggerer: {seen}"

    results = cluster.xcom_results(DAG_ID, run_id)
    assert results["wait_dashscope"]["id"] == jobs["dashscope_job"]
    assert results["wait_openai"]["id"] == jobs["openai_job"]
    assert {result["status"] for result in results.values()} == {"SUCCEEDED"}
    scenario_notes.append("both sensors deferred to a triggerer, resumed when their jobs succeeded")

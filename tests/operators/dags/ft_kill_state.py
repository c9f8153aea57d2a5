"""Test DAG: a task reads task instances' states as ``on_kill`` does (``airflow_provider_ft.kill.read_state``): its
own while it runs, an upstream one that has ended, and one that does not exist."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_ft.kill import Unread, read_state

with DAG(dag_id="ft_test_kill_state", schedule=None, start_date=datetime(2025, 1, 1)) as dag:

    @task
    def ended() -> str:
        return "done"

    @task
    def probe(ti: Any = None) -> dict[str, Any]:
        def state(task_id: str) -> Any:
            found = read_state(SimpleNamespace(dag_id=ti.dag_id, task_id=task_id, run_id=ti.run_id, map_index=-1), 30)
            return f"unread: {found.why}" if isinstance(found, Unread) else found

        return {"self": state(ti.task_id), "ended": state("ended"), "missing": state("no_such_task")}

    ended() >> probe()

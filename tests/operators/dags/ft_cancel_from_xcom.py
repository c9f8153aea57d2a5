"""Test DAG: the cancel operator takes its job id from a setup task's XCom and its connection from params."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_ft.operators.fine_tuning import CancelFineTuningJobOperator

with DAG(
    dag_id="ft_test_cancel_from_xcom",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    params={"job_id": "", "conn_id": ""},
) as dag:

    @task
    def receive_job(params: dict[str, Any] | None = None) -> str:
        return str((params or {})["job_id"])

    cancel = CancelFineTuningJobOperator(
        task_id="cancel",
        job_id="{{ ti.xcom_pull(task_ids='receive_job') }}",
        conn_id="{{ params.conn_id }}",
    )
    receive_job() >> cancel

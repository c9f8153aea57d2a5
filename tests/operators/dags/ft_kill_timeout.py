"""Test DAG: a create task that waits in the worker past its ``execution_timeout``: Airflow calls ``on_kill``."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_ft.operators.create import CreateFineTuningJobOperator

with DAG(
    dag_id="ft_test_kill_timeout",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    params={"conn_id": "", "model": "", "training_file": ""},
) as dag:
    CreateFineTuningJobOperator(
        task_id="train",
        conn_id="{{ params.conn_id }}",
        model="{{ params.model }}",
        training_file="{{ params.training_file }}",
        deferrable=False,
        poll_interval=0.2,
        log_events=False,
        execution_timeout=timedelta(seconds=3),
    )

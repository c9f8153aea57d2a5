"""Test DAG: one create task that may be retried once at once; its connection, model and file come from params."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_ft.operators.create import CreateFineTuningJobOperator

with DAG(
    dag_id="ft_test_create_retry",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    params={"conn_id": "", "model": "", "training_file": ""},
) as dag:
    CreateFineTuningJobOperator(
        task_id="train",
        retries=1,
        retry_delay=timedelta(0),
        conn_id="{{ params.conn_id }}",
        model="{{ params.model }}",
        training_file="{{ params.training_file }}",
        settle_delays=(0.0, 0.05),
        deferrable=False,
        poll_interval=0.2,
        log_events=False,
    )

"""Test DAG: one create task that starts its job and returns at once; connection, model and file from params."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_ft.operators.create import CreateFineTuningJobOperator

with DAG(
    dag_id="ft_test_plugin_create",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    params={"conn_id": "", "model": "", "training_file": ""},
) as dag:
    CreateFineTuningJobOperator(
        task_id="train",
        conn_id="{{ params.conn_id }}",
        model="{{ params.model }}",
        training_file="{{ params.training_file }}",
        settle_delays=(0.0, 0.05),
        deferrable=False,
        wait_for_completion=False,
    )

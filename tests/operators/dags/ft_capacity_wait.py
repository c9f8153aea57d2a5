"""Test DAG: a deferrable create task on an account at its job limit waits for room in the triggerer, then creates
its job from the worker. Connection, model and training file (a vendor file id) come from params."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_ft.operators.create import CreateFineTuningJobOperator

with DAG(
    dag_id="ft_test_capacity_wait",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    default_args={"retries": 0},
    params={"conn_id": "", "model": "", "training_file": ""},
) as dag:
    CreateFineTuningJobOperator(
        task_id="train",
        conn_id="{{ params.conn_id }}",
        model="{{ params.model }}",
        training_file="{{ params.training_file }}",
        wait_for_capacity=timedelta(minutes=5),
        wait_for_completion=False,
        deferrable=True,
        poll_interval=0.2,
        log_events=False,
    )

"""Test DAG: a create task (a local training file, a ``file://`` validation file), then a cancel of a given job and a
cleanup of stale jobs, all on one connection from params: the lineage test reads back what each emitted."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_ft.operators.cleanup import CleanupFineTuningJobsOperator
from airflow_provider_ft.operators.create import CreateFineTuningJobOperator
from airflow_provider_ft.operators.fine_tuning import CancelFineTuningJobOperator

with DAG(
    dag_id="ft_test_lineage",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    params={"conn_id": "", "model": "", "training_file": "", "validation_file": "", "cancel_job": ""},
) as dag:
    train = CreateFineTuningJobOperator(
        task_id="train",
        conn_id="{{ params.conn_id }}",
        model="{{ params.model }}",
        training_file="{{ params.training_file }}",
        validation_file="{{ params.validation_file }}",
        hyperparameters={"n_epochs": 2},
        poll_interval=0.2,
        log_events=False,
    )
    cancel = CancelFineTuningJobOperator(
        task_id="cancel", job_id="{{ params.cancel_job }}", conn_id="{{ params.conn_id }}"
    )
    cleanup = CleanupFineTuningJobsOperator(
        task_id="cleanup", conn_id="{{ params.conn_id }}", older_than=timedelta(days=1), statuses=["RUNNING"]
    )
    train >> cancel >> cleanup

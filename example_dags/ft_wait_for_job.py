"""Wait for a fine-tuning job in deferrable mode, then branch on how it ended.

Trigger it with the job's id (and, if not ``dashscope_default``, the connection to use)::

    airflow dags trigger ft_wait_for_job --conf '{"job_id": "ft-202501011200-abcd", "conn_id": "openai_default"}'

The sensor waits in the triggerer (no worker slot held) and returns the final job to XCom. With
``fail_on_failure=False`` a failed or cancelled job does not fail the sensor: the branch routes it to
``report_failure`` instead of ``publish_model``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

# airflow.sdk on Airflow 3; common-compat finds the same names on Airflow 2.11 too.
from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_ft.sensors.fine_tuning import FineTuningJobSensor

log = logging.getLogger(__name__)

with DAG(
    dag_id="ft_wait_for_job",
    description="Wait for a fine-tuning job (deferrable), then publish the model or report the failure",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["fine-tuning", "example"],
    params={
        "job_id": Param(type="string", minLength=1, description="The vendor's fine-tuning job id"),
        "conn_id": Param("dashscope_default", type="string", description="Connection of the vendor account"),
    },
) as dag:
    wait_for_job = FineTuningJobSensor(
        task_id="wait_for_job",
        job_id="{{ params.job_id }}",
        conn_id="{{ params.conn_id }}",
        deferrable=True,
        poke_interval=60,
        timeout=timedelta(days=2),
        fail_on_failure=False,
    )

    @task.branch
    def route(job: dict[str, Any]) -> str:
        """``publish_model`` if the job succeeded, ``report_failure`` if it failed or was cancelled."""
        return "publish_model" if job["status"] == "SUCCEEDED" else "report_failure"

    @task
    def publish_model(job: dict[str, Any]) -> str:
        """Stand-in for registering the fine-tuned model; returns its name."""
        log.info("Job %s produced %s; publishing it", job["id"], job["fine_tuned_model"])
        return str(job["fine_tuned_model"])

    @task
    def report_failure(job: dict[str, Any]) -> str:
        """Stand-in for alerting the owners; returns the summary it would send."""
        summary = f"Fine-tuning job {job['id']} ended {job['status']}: {job['error'] or 'no reason given'}"
        log.warning("%s", summary)
        return summary

    route(wait_for_job.output) >> [publish_model(wait_for_job.output), report_failure(wait_for_job.output)]

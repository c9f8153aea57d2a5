"""A fine-tuning pipeline that always tears its jobs down, whether it succeeded or failed.

The pipeline receives the ids of its fine-tuning jobs in the run's conf (a real pipeline would start them in
the setup tasks), does its work, and then, in teardown tasks that run even when the work failed:

- deletes the DashScope job, cancelling it first if it is still running;
- cancels the OpenAI job (OpenAI cannot delete jobs).

Trigger it with ``{"dashscope_job_id": "...", "openai_job_id": "...", "fail": false}``; ``"fail": true`` makes
the work fail on purpose, to see the teardown run anyway. Connections: ``dashscope_default`` and
``openai_default``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

# airflow.sdk on Airflow 3; common-compat finds the same names on Airflow 2.11 too.
from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_ft.operators.fine_tuning import CancelFineTuningJobOperator, DeleteFineTuningJobOperator

with DAG(
    dag_id="ft_pipeline_teardown",
    description="Fine-tuning pipeline whose jobs are cancelled or deleted in teardown tasks",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={
        "dashscope_job_id": Param("", type="string", description="DashScope fine-tuning job of this run"),
        "openai_job_id": Param("", type="string", description="OpenAI fine-tuning job of this run"),
        "fail": Param(False, type="boolean", description="Make the pipeline fail, to see the teardown run"),
    },
    tags=["fine-tuning", "teardown"],
) as dag:

    @task
    def receive_job(param: str, params: dict[str, Any] | None = None) -> str:
        """The job id passed in the run's conf (a real pipeline would start the job here)."""
        job_id = str((params or {}).get(param) or "")
        if not job_id:
            raise ValueError(f"Trigger the DAG with a {param!r} in its conf")
        return job_id

    @task
    def evaluate(dashscope_job_id: str, openai_job_id: str, params: dict[str, Any] | None = None) -> None:
        """The pipeline's work on the jobs; fails on purpose when the ``fail`` param is set."""
        if (params or {}).get("fail"):
            raise RuntimeError("Failing on purpose (param 'fail'); the teardown tasks still run")
        print(f"Evaluating jobs {dashscope_job_id} and {openai_job_id}")

    dashscope_job = receive_job.override(task_id="receive_dashscope_job")("dashscope_job_id")
    openai_job = receive_job.override(task_id="receive_openai_job")("openai_job_id")
    work = evaluate(dashscope_job, openai_job)

    delete_dashscope_job = DeleteFineTuningJobOperator(
        task_id="delete_dashscope_job",
        conn_id="dashscope_default",
        job_id=dashscope_job,
        cancel_if_running=True,
        ignore_if_missing=True,
        poll_interval=5,
        timeout=600,
    )
    cancel_openai_job = CancelFineTuningJobOperator(
        task_id="cancel_openai_job",
        conn_id="openai_default",
        job_id=openai_job,
        ignore_if_missing=True,
    )

    work >> delete_dashscope_job.as_teardown(setups=dashscope_job)
    work >> cancel_openai_job.as_teardown(setups=openai_job)


if __name__ == "__main__":
    dag.test(run_conf={"dashscope_job_id": "ft-replace-me", "openai_job_id": "ftjob-replace-me"})

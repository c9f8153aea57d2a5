"""Daily cleanup of stale fine-tuning jobs on DashScope and OpenAI.

Every day: cancel jobs that have been queued, running or paused for longer than ``STALE_AFTER`` on both vendors
(forgotten experiments keep billing), then delete finished DashScope jobs older than ``DELETE_AFTER`` (OpenAI has
no job deletion). Each task returns a summary to XCom and fails, after trying every job, if any job failed.

Connections: ``dashscope_default`` (type ``dashscope``) and ``openai_default`` (type ``openaifinetuning``),
e.g. from ``AIRFLOW_CONN_DASHSCOPE_DEFAULT`` / ``AIRFLOW_CONN_OPENAI_DEFAULT``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

# airflow.sdk on Airflow 3; common-compat finds the same names on Airflow 2.11 too.
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_ft.operators.cleanup import CleanupFineTuningJobsOperator

STALE_AFTER = timedelta(hours=6)
DELETE_AFTER = timedelta(days=7)
#: Never touch more than this many jobs in one run; a larger match fails the task instead (check the filters).
MAX_JOBS = 200

with DAG(
    dag_id="ft_cleanup_stale_jobs",
    description="Cancel stale fine-tuning jobs; delete old finished DashScope jobs",
    schedule="@daily",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["fine-tuning", "cleanup"],
) as dag:
    cancel_stale_dashscope = CleanupFineTuningJobsOperator(
        task_id="cancel_stale_dashscope_jobs",
        conn_id="dashscope_default",
        action="cancel",
        older_than=STALE_AFTER,
        statuses=["QUEUED", "RUNNING", "PAUSED"],
        max_jobs=MAX_JOBS,
    )
    cancel_stale_openai = CleanupFineTuningJobsOperator(
        task_id="cancel_stale_openai_jobs",
        conn_id="openai_default",
        action="cancel",
        older_than=STALE_AFTER,
        statuses=["QUEUED", "RUNNING", "PAUSED"],
        max_jobs=MAX_JOBS,
    )
    delete_old_dashscope = CleanupFineTuningJobsOperator(
        task_id="delete_old_finished_dashscope_jobs",
        conn_id="dashscope_default",
        action="delete",
        older_than=DELETE_AFTER,
        max_jobs=MAX_JOBS,
    )

    cancel_stale_dashscope >> delete_old_dashscope


if __name__ == "__main__":
    dag.test()

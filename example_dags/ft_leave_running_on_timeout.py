"""Start a long fine-tuning job on each of four vendors, wait a bounded time, and leave the job running after that.

For trainings that outlive a run: each ``start_<vendor>`` task starts its job exactly once and waits in the triggerer
at most ``WAIT``; when that time is up the task fails (``FineTuningTimeout``) but, with ``cancel_on_timeout=False``,
the job goes on training on the vendor's side. Such a job is an orphan: it still runs (and costs) while the task that
created it has ended. The provider's Fine-tuning page lists it as one, with a link to the failed task; from there it
can be cancelled, or a later run can pick the model up once it is done.

Connections: ``dashscope_default``, ``openai_default``, ``azure_openai_default`` and ``together_default``.
"""

from __future__ import annotations

import json
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

# airflow.sdk on Airflow 3; common-compat finds the same names on Airflow 2.11 too.
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_ft.operators.fine_tuning import CreateFineTuningJobOperator

#: How long each task waits for its job before it fails and leaves the job running.
WAIT = timedelta(hours=1)
#: Seconds between checks of each job, in the triggerer.
POLL_INTERVAL = 60.0
LANES = {
    "dashscope": {"conn_id": "dashscope_default", "model": "qwen-plus"},
    "openai": {"conn_id": "openai_default", "model": "gpt-4o-mini-2024-07-18"},
    "azure": {"conn_id": "azure_openai_default", "model": "gpt-4o-mini-2024-07-18"},
    "together": {"conn_id": "together_default", "model": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"},
}

with DAG(
    dag_id="ft_leave_running_on_timeout",
    description="Start a long fine-tuning job per vendor, wait at most an hour, leave it running after that",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["fine-tuning", "example"],
) as dag:

    @task
    def prepare_training_data() -> str:
        """Write a few chat examples, one JSON record per line, and return the file's path."""
        record = {"messages": [{"role": "user", "content": "Ping?"}, {"role": "assistant", "content": "Pong."}]}
        path = Path(tempfile.gettempdir()) / "ft_leave_running_on_timeout.jsonl"
        path.write_text(json.dumps(record) + "\n", encoding="utf-8")
        return str(path)

    training_data = prepare_training_data()
    for vendor, lane in LANES.items():
        CreateFineTuningJobOperator(
            task_id=f"start_{vendor}",
            conn_id=lane["conn_id"],
            model=lane["model"],
            training_file=training_data,
            deferrable=True,
            poll_interval=POLL_INTERVAL,
            timeout=WAIT,
            cancel_on_timeout=False,
        )


if __name__ == "__main__":
    dag.test()

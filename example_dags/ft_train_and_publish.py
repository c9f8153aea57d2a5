"""Train and publish a fine-tuned model, once per run, on DashScope and on OpenAI side by side.

Each vendor's lane:

1. ``prepare_training_data`` writes the run's chat examples to a JSONL file (a real pipeline would export them);
2. ``train_<vendor>`` checks the file line by line, uploads it (or reuses an identical upload), starts the job
   exactly once (a retry or a cleared task re-attaches to the job it already has) and waits for it in the
   triggerer, logging the vendor's progress; a kill or a timeout cancels the job; on success the fine-tuned
   model goes to XCom (``fine_tuned_model``) and an asset event for downstream DAGs;
3. ``evaluate_<vendor>`` stands in for an evaluation of the model;
4. ``teardown_<vendor>`` runs whatever happened: it deletes the DashScope job (cancelling it first if it still
   runs) and cancels the OpenAI job if it still runs (OpenAI cannot delete jobs; a finished one is left as it is).

Params: ``bad_record`` writes a line that is no chat record, so both train tasks fail before sending anything;
``fail_evaluation`` fails the evaluations, to see the teardown run anyway. Connections: ``dashscope_default`` and
``openai_default``.
"""

from __future__ import annotations

import json
import re
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

# airflow.sdk on Airflow 3; common-compat finds the same names (Asset: Dataset) on Airflow 2.11 too.
from airflow.providers.common.compat.sdk import DAG, Asset, Param, task

from airflow_provider_ft.operators.fine_tuning import (
    CancelFineTuningJobOperator,
    CreateFineTuningJobOperator,
    DeleteFineTuningJobOperator,
)

EXAMPLES = [
    ("What is the capital of France?", "Paris."),
    ("How many legs does a spider have?", "Eight."),
    ("What is 12 times 12?", "144."),
]
#: Seconds between checks of each job, in the triggerer.
POLL_INTERVAL = 30.0
LANES = {
    "dashscope": {"conn_id": "dashscope_default", "model": "qwen-turbo"},
    "openai": {"conn_id": "openai_default", "model": "gpt-4o-mini-2024-07-18"},
}

with DAG(
    dag_id="ft_train_and_publish",
    description="Fine-tune a model exactly once per run, evaluate it, publish it as an asset, tear the job down",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    params={
        "bad_record": Param(False, type="boolean", description="Write a record that is not a chat example"),
        "fail_evaluation": Param(False, type="boolean", description="Fail the evaluation on purpose"),
    },
    tags=["fine-tuning", "lifecycle"],
) as dag:

    @task
    def prepare_training_data(run_id: str | None = None, params: dict[str, Any] | None = None) -> str:
        """Write the run's chat examples, one JSON record per line, and return the file's path."""
        records = [
            {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}
            for question, answer in EXAMPLES
        ]
        if (params or {}).get("bad_record"):
            records.append({"prompt": "not a chat record"})
        safe_run = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id or "manual")
        path = Path(tempfile.gettempdir()) / f"ft_train_and_publish.{safe_run}.jsonl"
        path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
        return str(path)

    @task
    def evaluate(job: dict[str, Any], params: dict[str, Any] | None = None) -> str:
        """A placeholder for evaluating the fine-tuned model; fails on purpose with the ``fail_evaluation`` param."""
        if (params or {}).get("fail_evaluation"):
            raise RuntimeError("Failing the evaluation on purpose (param 'fail_evaluation'); the teardown still runs")
        model = str(job["fine_tuned_model"])
        print(f"Evaluated {model} of job {job['id']}")
        return model

    training_data = prepare_training_data()
    for vendor, lane in LANES.items():
        train = CreateFineTuningJobOperator(
            task_id=f"train_{vendor}",
            conn_id=lane["conn_id"],
            model=lane["model"],
            training_file=training_data,
            deferrable=True,
            poll_interval=POLL_INTERVAL,
            timeout=timedelta(hours=12),
            max_runtime=timedelta(hours=6),
            outlets=[Asset(f"fine-tuned-model://{vendor}/ft_train_and_publish")],
        )
        evaluation = evaluate.override(task_id=f"evaluate_{vendor}")(train.output)
        job_id = f"{{{{ ti.xcom_pull(task_ids='train_{vendor}', key='job_id') or 'none' }}}}"
        if vendor == "dashscope":
            teardown = DeleteFineTuningJobOperator(
                task_id=f"teardown_{vendor}",
                conn_id=lane["conn_id"],
                job_id=job_id,
                cancel_if_running=True,
                ignore_if_missing=True,
            )
        else:
            teardown = CancelFineTuningJobOperator(
                task_id=f"teardown_{vendor}", conn_id=lane["conn_id"], job_id=job_id, ignore_if_missing=True
            )
        # The teardown's setup is the data step, not the training: it then also runs when the training failed.
        train >> evaluation >> teardown.as_teardown(setups=training_data.operator)


if __name__ == "__main__":
    dag.test()

"""The lifecycle DAG on the README's first screen is a DAG Airflow can parse, wired as the text says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.airflow_versions import AIRFLOW_V_3

README = Path(__file__).resolve().parents[1] / "README.md"

pytestmark = pytest.mark.skipif(not AIRFLOW_V_3, reason="the README's DAG imports airflow.sdk (Airflow 3)")


def first_python_block() -> str:
    found = re.search(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert found, "the README shows a DAG"
    return found.group(1)


def test_the_readme_dag_parses_with_the_lifecycle_wired(tmp_path: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    dag_file = tmp_path / "readme_dag.py"
    dag_file.write_text(first_python_block(), encoding="utf-8")
    bag = DagBag(dag_folder=dag_file, safe_mode=False)

    assert bag.import_errors == {}
    dag = bag.dags["train_support_bot"]
    assert set(dag.task_ids) == {"export_data", "train", "evaluate", "stop"}
    train, stop = dag.get_task("train"), dag.get_task("stop")
    assert type(train).__name__ == "CreateFineTuningJobOperator"
    assert (train.deferrable, train.cancel_on_kill, train.cancel_on_timeout) == (True, True, True)
    assert [outlet.uri for outlet in train.outlets] == ["fine-tuned-model://openai/support-bot"]
    assert stop.is_teardown
    assert "export_data" in stop.upstream_task_ids, "the setup of the teardown is the data step"
    assert "evaluate" in stop.upstream_task_ids

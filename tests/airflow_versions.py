"""What the tests read from Airflow's internals, the same on every Airflow the suite runs on (2.11, 3.0, 3.3).

The provider itself never looks at versions outside ``airflow_provider_ft/_compat.py``; the tests need a few
internals that moved between versions (the XCom table's model, task reschedules, where extra links are stored,
serde). They go through these helpers, which pick by feature where they can and by major version where the
behaviour itself differs.
"""

from __future__ import annotations

import importlib
from typing import Any

import airflow
from packaging.version import Version

AIRFLOW_VERSION = Version(Version(airflow.__version__).base_version)
AIRFLOW_V_3 = Version("3.0") <= AIRFLOW_VERSION
AIRFLOW_V_3_1 = Version("3.1") <= AIRFLOW_VERSION
#: Airflow 3.3 brought the task state store (AIP-103): ``context["task_state_store"]``, kept across a task's tries.
HAS_TASK_STATE_STORE = Version("3.3") <= AIRFLOW_VERSION

#: Whether a task's ``on_failure_callback`` finds the exception in ``context["exception"]`` under ``dag.test()``.
#: Airflow 3.0's in-process runner (``InProcessTestSupervisor``) calls the callback without it; 2.x and 3.1+ set it.
CALLBACKS_SEE_THE_EXCEPTION = not Version("3.0") <= AIRFLOW_VERSION < Version("3.1")
#: Whether ``dag.test()`` records a task instance as ``running`` while it executes. Airflow 3's runner does; 2.11's
#: leaves it ``scheduled`` (in a worker, ``LocalTaskJob`` marks it running before the task starts).
DAG_TEST_MARKS_RUNNING = AIRFLOW_V_3


def import_string(dotted_path: str) -> Any:
    """The attribute a dotted path names, as Airflow imports a trigger from its class path."""
    module_name, _, attribute = dotted_path.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


def serde_round_trip(value: Any) -> Any:
    """``value`` through Airflow's serde, as trigger kwargs go on defer (task SDK serde on 3.2+, core before)."""
    try:
        from airflow.sdk.serde import deserialize, serialize
    except ImportError:
        from airflow.serialization.serde import deserialize, serialize
    return deserialize(serialize(value))


def _xcom_model() -> Any:
    try:
        from airflow.models.xcom import XComModel  # Airflow 3
    except ImportError:
        from airflow.models.xcom import XCom as XComModel  # Airflow 2: the ORM model is XCom itself
    return XComModel


def xcoms_of(dag_run: Any) -> dict[tuple[str, str], Any]:
    """Every XCom of the run, deserialized, by (task id, key)."""
    from airflow.utils.session import create_session

    model = _xcom_model()
    with create_session() as session:
        rows = session.query(model).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id).all()
        return {(row.task_id, row.key): _value(model, row) for row in rows}


def _value(model: Any, row: Any) -> Any:
    if AIRFLOW_V_3:
        return model.deserialize_value(row)
    return row.value  # Airflow 2's XCom deserializes its value when the row is loaded (init_on_load)


def xcom(dag_run: Any, task_id: str, key: str) -> Any:
    """One XCom of the run, deserialized; ``None`` if the task pushed none under ``key``."""
    return xcoms_of(dag_run).get((task_id, key))


def reschedules_of(dag_run: Any, task_id: str) -> int:
    """How many times the task instance was rescheduled (reschedule mode frees its slot between looks)."""
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session

    ti = dag_run.get_task_instance(task_id)
    with create_session() as session:
        query = session.query(TaskReschedule)
        if hasattr(TaskReschedule, "ti_id"):  # Airflow 3: linked to the task instance's id
            query = query.filter(TaskReschedule.ti_id == ti.id)
        else:  # Airflow 2: by the task instance's key
            query = query.filter_by(dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id, map_index=ti.map_index)
        return int(query.count())


def extra_link(dag_run: Any, task_id: str, link: Any) -> str | None:
    """The URL the UI shows for ``link`` (an operator link instance) on the run's task instance.

    Airflow 3 calls ``get_link`` in the task runner when the task ends and stores the URL as the XCom
    ``_link_<class name>``, which the UI reads. Airflow 2's web server calls ``get_link`` when the page is shown:
    here it is called the same way.
    """
    if AIRFLOW_V_3:
        value = xcom(dag_run, task_id, f"_link_{type(link).__name__}")
        return None if value is None else str(value)
    ti = dag_run.get_task_instance(task_id)
    return str(link.get_link(None, ti_key=ti.key)) or None


def asset_events_of(dag_run: Any) -> list[tuple[str, dict[str, Any]]]:
    """(uri, extra) of every asset event (dataset event on Airflow 2) the run's tasks produced, oldest first."""
    from airflow.utils.session import create_session

    try:
        from airflow.models.asset import AssetEvent as Event  # Airflow 3
        from airflow.models.asset import AssetModel as Model
    except ImportError:
        from airflow.models.dataset import DatasetEvent as Event  # Airflow 2
        from airflow.models.dataset import DatasetModel as Model

    target = "asset_id" if hasattr(Event, "asset_id") else "dataset_id"
    with create_session() as session:
        rows = (
            session.query(Event, Model)
            .filter(getattr(Event, target) == Model.id)
            .filter(Event.source_dag_id == dag_run.dag_id, Event.source_run_id == dag_run.run_id)
            .order_by(Event.timestamp)
            .all()
        )
        return [(model.uri, dict(event.extra or {})) for event, model in rows]


def register_assets_of(dag: Any) -> None:
    """Make the DAG's outlets known (and active) in the metadata database, so that a ``dag.test()`` run records
    their events: Airflow 3.1+'s ``dag.test()`` does it itself; 2.11's drops events of a dataset without a row,
    and 3.0's fails a task whose outlet asset is not active."""
    if AIRFLOW_V_3_1:
        return
    from airflow.models.dag import DAG

    if not AIRFLOW_V_3:
        DAG.bulk_write_to_db([dag])
    else:
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.serialization.serialized_objects import SerializedDAG

        DagBundlesManager().sync_bundles_to_db()
        DAG.bulk_write_to_db("dags-folder", None, [SerializedDAG.from_dict(SerializedDAG.to_dict(dag))])


def clear_and_run_again(dag_file: Any, dag_run: Any, task_id: str) -> str:
    """Clear a task instance of a finished ``dag.test()`` run and run it again in this process; its state then.

    The clear is Airflow's own ``clear_task_instances`` (what the UI's and the REST API's clear and ``dag.clear()``
    call); the run again is ``dag.test()``'s (its ``_run_task``), on the same DAG run: a second ``dag.test()`` would
    replace the run instead. Airflow 3.3+ only.

    :param dag_file: the DAG's file, as given to the ``run_dag`` fixture (its copy in the dags folder is loaded)
    :param dag_run: the run ``dag.test()`` returned
    :param task_id: the task to clear
    """
    import importlib.util
    from pathlib import Path

    from airflow.configuration import conf
    from airflow.models.taskinstance import TaskInstance, clear_task_instances
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    copy = Path(conf.get("core", "dags_folder")) / Path(dag_file).name
    spec = importlib.util.spec_from_file_location(f"_rerun_{copy.stem}", copy)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = next(value for value in vars(module).values() if getattr(value, "dag_id", None) == dag_run.dag_id)
    key = {"dag_id": dag_run.dag_id, "run_id": dag_run.run_id, "task_id": task_id}
    with create_session() as session:
        clear_task_instances(session.query(TaskInstance).filter_by(**key).all(), session)
    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(**key).one()
        ti.try_number += 1  # as the scheduler (and dag.test()) does when it schedules a cleared task instance
        ti.state = TaskInstanceState.SCHEDULED
        session.commit()
        _run_task(ti=ti, task=dag.task_dict[task_id])
    with create_session() as session:
        return str(session.query(TaskInstance).filter_by(**key).one().state)

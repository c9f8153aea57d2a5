"""What the Fine-tuning page reads from Airflow's metadata database: our connections, the task instances that may
have created jobs, and the jobs live task instances wait on. Runs in the api-server, which owns a database session.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, tuple_

from airflow_provider_ft.links import JOB_REF_XCOM_KEY
from airflow_provider_ft.ui.provenance import LIVE_STATES, TaskRecord

#: The operators whose task instances create jobs (``TaskInstance.operator`` is the class name).
CREATING_OPERATORS = ("CreateFineTuningJobOperator",)
#: The most creating task instances read for one page: the newest first.
MAX_CREATORS = 20_000
#: The most task instances looked up by the ids a job's metadata names, per page.
MAX_NAMED = 1_000


@dataclass(frozen=True, slots=True)
class ConnectionRow:
    """One connection of a type this provider serves.

    :param conn_id: its id
    :param conn_type: its type (which vendor)
    """

    conn_id: str
    conn_type: str


@dataclass(frozen=True, slots=True)
class JobRef:
    """A task instance's word on which job it works on (``JOB_REF_XCOM_KEY``).

    :param conn_id: the task's connection
    :param job_id: the vendor's job id
    """

    conn_id: str
    job_id: str


def fine_tuning_connections(conn_types: Iterable[str]) -> list[ConnectionRow]:
    """The connections stored in the metadata database whose type is one of ``conn_types``, by id."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    query = select(Connection.conn_id, Connection.conn_type).where(Connection.conn_type.in_(list(conn_types)))
    with create_session() as session:
        rows = session.execute(query.order_by(Connection.conn_id)).all()
    return [ConnectionRow(str(conn_id), str(conn_type)) for conn_id, conn_type in rows]


def creating_task_instances(since: datetime | None, named: Iterable[TaskRecord]) -> list[TaskRecord]:
    """The task instances of creating operators that started after ``since`` (newest first, at most
    ``MAX_CREATORS``), and those ``named`` by jobs' metadata whatever their operator or age."""
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.session import create_session

    columns = (TI.dag_id, TI.task_id, TI.run_id, TI.map_index, TI.state)
    recent = select(*columns).where(TI.operator.in_(CREATING_OPERATORS))
    if since is not None:
        recent = recent.where(or_(TI.start_date.is_(None), TI.start_date >= since))
    recent = recent.order_by(TI.start_date.desc()).limit(MAX_CREATORS)
    keys = [(r.dag_id, r.task_id, r.run_id, r.map_index) for r in named][:MAX_NAMED]
    with create_session() as session:
        rows = list(session.execute(recent).all())
        if keys:
            by_name = select(*columns).where(tuple_(TI.dag_id, TI.task_id, TI.run_id, TI.map_index).in_(keys))
            rows.extend(session.execute(by_name).all())
    return [_record(row) for row in rows]


def watched_jobs() -> set[JobRef]:
    """The jobs that task instances in a live state say they work on."""
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    query = (
        select(XComModel.value)
        .join(
            TI,
            (TI.dag_id == XComModel.dag_id)
            & (TI.task_id == XComModel.task_id)
            & (TI.run_id == XComModel.run_id)
            & (TI.map_index == XComModel.map_index),
        )
        .where(XComModel.key == JOB_REF_XCOM_KEY, TI.state.in_(LIVE_STATES))
    )
    with create_session() as session:
        values = session.scalars(query).all()
    return {ref for ref in map(job_ref, values) if ref is not None}


def task_job_ref(dag_id: str, run_id: str, task_id: str, map_index: int) -> JobRef | None:
    """The job the task instance says it works on, or ``None`` (not one of ours, or it has not started one)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    query = select(XComModel.value).where(
        XComModel.key == JOB_REF_XCOM_KEY,
        XComModel.dag_id == dag_id,
        XComModel.run_id == run_id,
        XComModel.task_id == task_id,
        XComModel.map_index == map_index,
    )
    with create_session() as session:
        value = session.scalars(query.limit(1)).first()
    return job_ref(value)


def job_ref(value: Any) -> JobRef | None:
    """A stored ``JOB_REF_XCOM_KEY`` value (a dict, or its JSON text) as a ``JobRef``; ``None`` if it is not one."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, dict):
        return None
    conn_id, job_id = value.get("conn_id"), value.get("job_id")
    if isinstance(conn_id, str) and isinstance(job_id, str) and conn_id and job_id:
        return JobRef(conn_id, job_id)
    return None


def _record(row: Any) -> TaskRecord:
    dag_id, task_id, run_id, map_index, state = row
    return TaskRecord(str(dag_id), str(task_id), str(run_id), int(map_index), None if state is None else str(state))

"""Where a listed job came from, and whether it is an orphan: plain data in, a verdict out (no Airflow, no I/O).

A job names its task instance by the identity the create operator wrote (``identity.py``): the identity's key in
OpenAI's ``metadata`` (with the readable ids beside it), its tag (``af-`` and 29 hex digits) in the job name or
suffix elsewhere. The task instances this Airflow knows are looked up by that key or tag.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from airflow_provider_ft.identity import TaskIdentity
from airflow_provider_ft.jobs import FineTuningJob

#: Task instance states in which a task still runs or will run again: its job is not an orphan.
LIVE_STATES = frozenset(
    {"running", "deferred", "queued", "scheduled", "up_for_retry", "up_for_reschedule", "restarting"}
)
#: The OpenAI metadata keys the create operator writes (``vendors/openai.py``, ``identity_metadata``).
_KEY, _DAG, _TASK, _RUN, _MAP = "airflow_ti", "airflow_dag_id", "airflow_task_id", "airflow_run_id", "airflow_map_index"
_TAG = re.compile(r"af-[0-9a-f]{29}")
_KEY_FORM = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """What Airflow's metadata database says of one task instance.

    :param dag_id: the DAG's id
    :param task_id: the task's id
    :param run_id: the DAG run's id
    :param map_index: ``-1`` when not mapped
    :param state: the task instance's state now (``None``: no state, as after a clear)
    """

    dag_id: str
    task_id: str
    run_id: str
    map_index: int
    state: str | None

    @property
    def is_live(self) -> bool:
        return self.state in LIVE_STATES

    def identity(self, namespace: str) -> TaskIdentity:
        return TaskIdentity(self.dag_id, self.task_id, self.run_id, self.map_index, namespace)


class Origin(enum.StrEnum):
    TASK = "task"
    """Created by a task instance this Airflow knows."""
    GONE = "gone"
    """Created by this deployment (its identity verifies with the connection's namespace), but the task instance is
    gone: its DAG or run was deleted."""
    ELSEWHERE = "elsewhere"
    """Tagged by Airflow, but by no task instance known here: another deployment, or another namespace."""
    NONE = "none"
    """Carries no Airflow identity: made by hand, or by another tool."""


@dataclass(frozen=True, slots=True)
class Provenance:
    """A job's origin, the task instance that created it where known, and whether a live task waits on it.

    :param origin: where the job came from
    :param creator: the creating task instance (``TASK``: its record; ``GONE``: its ids with no state)
    :param watched: a live task instance (a create operator or a sensor) says it waits on this job
    """

    origin: Origin
    creator: TaskRecord | None = None
    watched: bool = False


def tasks_by_identity(records: Collection[TaskRecord], namespaces: Collection[str]) -> dict[str, TaskRecord]:
    """Each record under the key and the tag of its identity in each of ``namespaces`` (the connections' own)."""
    found: dict[str, TaskRecord] = {}
    for record in records:
        for namespace in namespaces:
            identity = record.identity(namespace)
            found[identity.key] = record
            found[identity.tag] = record
    return found


def provenance(
    job: FineTuningJob, namespace: str, tasks: Mapping[str, TaskRecord], watched_ids: Collection[str] = ()
) -> Provenance:
    """Where ``job`` came from, in a connection whose namespace is ``namespace``.

    :param job: a listed job
    :param namespace: the connection's ``namespace`` extra
    :param tasks: ``tasks_by_identity`` of the task instances that may have created jobs
    :param watched_ids: ids of the jobs this connection's live task instances say they wait on
    """
    watched = job.id in watched_ids
    key = job.metadata.get(_KEY)
    tag = job.name if job.name is not None and _TAG.fullmatch(job.name) else None
    for mark in (key, tag):
        if mark is not None and mark in tasks:
            return Provenance(Origin.TASK, tasks[mark], watched)
    named = named_creator(job)
    if named is not None and key == named.identity(namespace).key:
        return Provenance(Origin.GONE, named, watched)
    if tag is not None or (key is not None and _KEY_FORM.fullmatch(key)):
        return Provenance(Origin.ELSEWHERE, named, watched)
    return Provenance(Origin.NONE, None, watched)


def is_orphan(job: FineTuningJob, origin: Provenance) -> bool:
    """Whether ``job`` still runs with no task of this Airflow waiting on it: its creator ended (failed, succeeded,
    was cleared or removed) or is gone, and no live task says it waits on it. A job whose creator is unknown here
    (another deployment, or no Airflow identity) is never called an orphan."""
    if job.is_terminal or origin.watched:
        return False
    if origin.origin is Origin.GONE:
        return True
    return origin.origin is Origin.TASK and origin.creator is not None and not origin.creator.is_live


def named_creator(job: FineTuningJob) -> TaskRecord | None:
    """The task instance the job's OpenAI metadata names in readable ids (no state: it was not looked up)."""
    metadata = job.metadata
    dag_id, task_id, run_id = metadata.get(_DAG), metadata.get(_TASK), metadata.get(_RUN)
    if not (dag_id and task_id and run_id):
        return None
    try:
        map_index = int(metadata.get(_MAP, "-1"))
    except ValueError:
        return None
    return TaskRecord(dag_id, task_id, run_id, map_index, None)

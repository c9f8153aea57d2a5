"""The identity of a task instance's job: what finds the job again after a retry, a clear or a lost answer.

Pure: no Airflow, no I/O. The key depends on the task instance (DAG, task, run, map index) and a namespace, never
on the try number, so every try of one task instance derives the same key and looks for the same job.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Protocol

#: Bumped only if the key's recipe changes (jobs tagged by an older recipe are then not found again).
_RECIPE = "v1"
#: DashScope ``job_name`` tags are ``af-`` and this many hex digits of the key.
_TAG_DIGITS = 29


class TaskInstanceRef(Protocol):
    """What names a task instance: a ``RuntimeTaskInstance``, a triggerer's ``TaskInstanceDTO``, a ``TaskIdentity``."""

    @property
    def dag_id(self) -> str: ...
    @property
    def task_id(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def map_index(self) -> int | None: ...


@dataclass(frozen=True)
class TaskIdentity:
    """Who a job is for: one task instance, in one namespace (one Airflow deployment).

    :param dag_id: the DAG's id
    :param task_id: the task's id
    :param run_id: the DAG run's id
    :param map_index: the mapped task's index (``-1`` when not mapped)
    :param namespace: keeps deployments that share a vendor account apart (connection extra ``namespace``)
    """

    dag_id: str
    task_id: str
    run_id: str
    map_index: int = -1
    namespace: str = ""

    @property
    def key(self) -> str:
        """64 hex digits: the SHA-256 of the namespace and the task instance's ids (not its try number)."""
        parts = [_RECIPE, self.namespace, self.dag_id, self.task_id, self.run_id, self.map_index]
        # A JSON array, so that no two task instances give the same text whatever characters their ids hold.
        return hashlib.sha256(json.dumps(parts, ensure_ascii=True).encode()).hexdigest()

    @property
    def tag(self) -> str:
        """A short form of the key for vendors that can only carry a name: ``af-`` and 29 hex digits."""
        return f"af-{self.key[:_TAG_DIGITS]}"

    @classmethod
    def of(cls, ti: Any, namespace: str) -> TaskIdentity:
        """The identity of a running task instance (``context["ti"]``) in ``namespace`` (the connection extra)."""
        map_index = getattr(ti, "map_index", -1)
        return cls(
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            run_id=ti.run_id,
            map_index=-1 if map_index is None else int(map_index),
            namespace=namespace,
        )

    def describe(self) -> str:
        mapped = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return f"{self.dag_id}.{self.task_id}{mapped} of run {self.run_id}"

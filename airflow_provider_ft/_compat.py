"""The only module that knows which Airflow it runs on (2.11, 3.0 to 3.3).

Everything else imports Airflow names from here. The names themselves come from
``apache-airflow-providers-common-compat`` (``airflow.providers.common.compat.sdk``), which tries the Airflow 3 home
of each name first (``airflow.sdk``, ``airflow.sdk.exceptions``) and falls back to its Airflow 2 home
(``airflow.models.baseoperator``, ``airflow.exceptions``, ...); on Airflow 3.0 some names are not in the SDK yet
(``BaseHook``, the exceptions) and come from core. Nothing more than that is imported here at import time:
DAG parsing should not pay for SQLAlchemy, triggers or the secrets masker.

mypy checks against the Airflow of ``requirements/dev.lock`` (3.3): under ``TYPE_CHECKING`` the names are the SDK's.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    AirflowTaskTimeout,
    BaseHook,
    BaseOperator,
    BaseOperatorLink,
    BaseSensorOperator,
    PokeReturnValue,
    TaskDeferred,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.openlineage.facet import ExternalQueryRunFacet, InputDataset, OutputDataset
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Connection, Context
    from airflow.sdk.execution_time.context import NEVER_EXPIRE
    from airflow.sdk.execution_time.xcom import XCom
    from airflow.triggers.base import BaseTrigger, TriggerEvent

    from airflow_provider_ft.identity import TaskInstanceRef
else:

    def __getattr__(name: str) -> Any:
        # Triggers are only needed by the triggerer and by a task about to defer: import on first use.
        # ``airflow.triggers.base`` is their home on every supported Airflow.
        if name in ("BaseTrigger", "TriggerEvent"):
            from airflow.triggers import base

            return getattr(base, name)
        if name in ("Connection", "Context", "XCom"):
            from airflow.providers.common.compat import sdk

            return getattr(sdk, name)
        if name == "OperatorLineage":  # the OpenLineage provider is optional: asked for only when it calls us
            from airflow.providers.openlineage.extractors import OperatorLineage

            return OperatorLineage
        if name in ("ExternalQueryRunFacet", "InputDataset", "OutputDataset"):
            from airflow.providers.common.compat.openlineage import facet

            return getattr(facet, name)
        if name == "NEVER_EXPIRE":  # the task state store's "keep until the DAG run goes" (Airflow 3.3+)
            from airflow.sdk.execution_time.context import NEVER_EXPIRE

            return NEVER_EXPIRE
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "NEVER_EXPIRE",
    "AirflowException",
    "AirflowFailException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "AirflowTaskTimeout",
    "BaseHook",
    "BaseOperator",
    "BaseOperatorLink",
    "BaseSensorOperator",
    "BaseTrigger",
    "Connection",
    "Context",
    "ExternalQueryRunFacet",
    "InputDataset",
    "OperatorLineage",
    "OutputDataset",
    "PokeReturnValue",
    "TaskDeferred",
    "TaskStateStore",
    "TriggerEvent",
    "XCom",
    "aget_connection",
    "annotate_outlet_events",
    "connection_form_widgets",
    "default_deferrable",
    "handling_task_timeout",
    "mask_secret",
    "object_storage_path",
    "task_instance_states",
    "task_state_store",
]


class TaskStateStore(Protocol):
    """What the provider uses of Airflow 3.3's ``context["task_state_store"]`` (``TaskStateStoreAccessor``)."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any, *, retention: timedelta | None = None) -> None: ...


def task_state_store(context: Context) -> TaskStateStore | None:
    """The task instance's state store (AIP-103: kept across its tries), or ``None`` where Airflow has none.

    Airflow 3.3 puts it in the context as ``task_state_store``; 2.11 to 3.2 have no store and no such key.
    """
    store: TaskStateStore | None = context.get("task_state_store")
    return store


def mask_secret(secret: str) -> None:
    """Register ``secret`` with Airflow's secrets masker so that no task log line shows it."""
    from airflow.providers.common.compat.sdk import mask_secret as _mask_secret

    _mask_secret(secret)


def object_storage_path(url: str) -> Any:
    """Airflow's ``ObjectStoragePath`` for ``url`` (``s3://...``, ``gs://...``, ``file://...``): ``airflow.sdk``'s on
    Airflow 3, ``airflow.io.path``'s on 2.11."""
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    return ObjectStoragePath(url)


def annotate_outlet_events(context: Context, outlets: list[Any], extra: dict[str, Any]) -> None:
    """Add ``extra`` to the events Airflow records for the task's asset outlets (dataset outlets on 2.11) when the
    task succeeds, so a downstream DAG scheduled on the asset reads them from its triggering event.

    Airflow 2.10+ and 3 both offer ``context["outlet_events"][outlet].extra``; outlets that are not assets
    (aliases, other objects) are left alone.
    """
    from airflow.providers.common.compat.sdk import Asset

    accessors = context.get("outlet_events")
    if accessors is None:
        return
    for outlet in outlets:
        if isinstance(outlet, Asset):
            accessors[outlet].extra.update(extra)


def default_deferrable() -> bool:
    """``[operators] default_deferrable``, read when an operator is built (not at import time)."""
    from airflow.providers.common.compat.sdk import conf

    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


async def aget_connection(hook: BaseHook, conn_id: str) -> Connection:
    """The connection ``conn_id``, read without blocking the event loop (for triggers).

    ``BaseHook.aget_connection`` only exists from Airflow 3.1, and before 3.3.2 it masks secrets with a blocking
    call; common-compat's ``get_async_connection`` uses it where it is safe and reads the connection in a worker
    thread elsewhere.
    """
    from airflow.providers.common.compat.connection import get_async_connection

    return await get_async_connection(conn_id, hook=hook)


def connection_form_widgets(conn_fields: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The WTForms fields of the connection form, for Airflow versions that build it from the hook (2.11, 3.0).

    From Airflow 3.2 the form is read from ``conn-fields`` in the provider info and the hook's
    ``get_connection_form_widgets`` is never called (``ProvidersManager`` skips it, without a deprecation warning,
    when the provider info declares the fields), so WTForms is only imported on the versions that need it.

    :param conn_fields: the ``conn-fields`` of one connection type in ``get_provider_info()``
    """
    from wtforms import IntegerField, StringField
    from wtforms.validators import NumberRange, Optional

    try:  # Airflow 2's web UI styles its inputs with FAB's widget; Airflow 3.0's API server mocks it, if present
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
    except ImportError:
        widget: Any = None
    else:
        widget = BS3TextFieldWidget()

    widgets: dict[str, Any] = {}
    for name, field in conn_fields.items():
        schema = field.get("schema", {})
        types = schema.get("type", "string")
        kwargs: dict[str, Any] = {"description": field.get("description", "")}
        if widget is not None:
            kwargs["widget"] = widget
        if "integer" in types:
            bounds = {key: schema[key] for key in ("minimum", "maximum") if key in schema}
            validators: list[Any] = [Optional()]
            if bounds:
                validators.append(NumberRange(min=bounds.get("minimum"), max=bounds.get("maximum")))
            widgets[name] = IntegerField(field["label"], validators=validators, **kwargs)
        else:
            widgets[name] = StringField(field["label"], validators=[Optional()], **kwargs)
    return widgets


def task_instance_states(ti: TaskInstanceRef) -> dict[str, dict[str, Any]]:
    """The state of one task instance now, as Airflow's ``GetTaskStates`` answers: ``{run_id: {key: state}}``, the
    key being the task id (``<task_id>_<map_index>`` for a mapped one); ``{}`` if Airflow has no such task instance.

    Airflow 3: ``RuntimeTaskInstance.get_task_states``, a request to the supervisor of the task process or of the
    triggerer (the Execution API reads the task instance table; Airflow's own cross-DAG triggers read states this
    way). It raises outside a task or triggerer process, where there is no supervisor. Airflow 2.11: the metadata
    database, as a task process there has it. Blocking: call it from a thread of its own.

    :param ti: the task instance (its ``dag_id``, ``task_id``, ``run_id`` and ``map_index``)
    """
    map_index = -1 if ti.map_index is None else int(ti.map_index)
    try:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
    except ImportError:  # Airflow 2.11
        from airflow.models.taskinstance import TaskInstance

        found = TaskInstance.get_task_instance(
            dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=map_index
        )
        if found is None:
            return {}
        key = ti.task_id if map_index < 0 else f"{ti.task_id}_{map_index}"
        return {ti.run_id: {key: found.state}}
    states = RuntimeTaskInstance.get_task_states(
        dag_id=ti.dag_id, task_ids=[ti.task_id], run_ids=[ti.run_id], map_index=map_index
    )
    return dict(states)


def handling_task_timeout() -> bool:
    """Whether the caller runs while ``AirflowTaskTimeout`` is being handled: how a task's ``on_kill`` knows that its
    own ``execution_timeout`` called it (Airflow 2.11 and 3 call it from ``except AirflowTaskTimeout:``), rather
    than a SIGTERM."""
    return isinstance(sys.exc_info()[1], AirflowTaskTimeout)

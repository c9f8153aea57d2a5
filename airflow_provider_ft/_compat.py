"""The only module that knows which Airflow it runs on.

Everything else imports Airflow names from here. Airflow 3 exposes the authoring API in ``airflow.sdk``;
we import from there, and from ``airflow.sdk.exceptions`` rather than ``airflow.exceptions`` (the latter
pulls in SQLAlchemy, which DAG parsing should not pay for).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook, BaseOperator, BaseOperatorLink, BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)

if TYPE_CHECKING:
    from airflow.sdk import Connection, Context
    from airflow.sdk.execution_time.xcom import XCom
    from airflow.triggers.base import BaseTrigger, TriggerEvent
else:

    def __getattr__(name: str) -> Any:
        # Triggers are only needed by the triggerer and by a task about to defer: import on first use.
        if name in ("BaseTrigger", "TriggerEvent"):
            from airflow.triggers import base

            return getattr(base, name)
        if name == "XCom":
            from airflow.sdk.execution_time.xcom import XCom

            return XCom
        if name in ("Connection", "Context"):
            import airflow.sdk

            return getattr(airflow.sdk, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "BaseHook",
    "BaseOperator",
    "BaseOperatorLink",
    "BaseSensorOperator",
    "BaseTrigger",
    "Connection",
    "Context",
    "PokeReturnValue",
    "TaskDeferred",
    "TriggerEvent",
    "XCom",
    "default_deferrable",
    "mask_secret",
]


def mask_secret(secret: str) -> None:
    """Register ``secret`` with Airflow's secrets masker so that no task log line shows it."""
    from airflow.sdk.log import mask_secret as _mask_secret

    _mask_secret(secret)


def default_deferrable() -> bool:
    """``[operators] default_deferrable``, read when an operator is built (not at import time)."""
    from airflow.sdk.configuration import conf

    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))

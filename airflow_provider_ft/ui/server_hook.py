"""``ServerSideHook``: ``FineTuningHook`` in the api-server, which reads connections as Airflow's own REST API does."""

from __future__ import annotations

from typing import Any

from airflow_provider_ft.hooks.fine_tuning import FineTuningHook


class ServerSideHook(FineTuningHook):
    """A ``FineTuningHook`` that reads its connection through the api-server's secrets backends (environment
    variables, a configured backend, the metadata database): the Task SDK's ``BaseHook.get_connection`` asks a task
    supervisor, and there is none in the api-server."""

    @classmethod
    def get_connection(cls, conn_id: str) -> Any:
        from airflow.models.connection import Connection

        return Connection.get_connection_from_secrets(conn_id)

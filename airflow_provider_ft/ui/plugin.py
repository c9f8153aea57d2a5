"""``FineTuningPlugin``: the Fine-tuning page in Airflow's UI (Airflow 3.1+), registered by ``get_provider_info()``.

Airflow imports this module in every process that loads plugins (the scheduler, the DAG processor, workers); it
imports nothing heavy. The FastAPI app is built on the first request the api-server hands it (``_LazyApp``).
On Airflow before 3.1, which has no external views, the plugin adds nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import airflow
from airflow.plugins_manager import AirflowPlugin

MOUNT = "/fine-tuning"
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class _LazyApp:
    """An ASGI app that builds the page's FastAPI app when it is first called."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            from airflow_provider_ft.ui.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)

    def __repr__(self) -> str:
        return "airflow_provider_ft.ui.app:create_app"


def _supports_external_views(version: str) -> bool:
    major, minor = (int(part) for part in version.split(".")[:2])
    return (major, minor) >= (3, 1)


def _fastapi_apps() -> list[dict[str, Any]]:
    return [{"app": _LazyApp(), "url_prefix": MOUNT, "name": "Fine-tuning jobs"}]


def _external_views() -> list[dict[str, Any]]:
    return [
        {
            "name": "Fine-tuning",
            "href": f"{MOUNT}/ui/jobs",
            "destination": "nav",
            "category": "browse",
            "url_route": "fine-tuning",
        },
        {
            "name": "Fine-tuning",
            "href": f"{MOUNT}/ui/task-instance/{{DAG_ID}}/{{RUN_ID}}/{{TASK_ID}}/{{MAP_INDEX}}",
            "destination": "task_instance",
            "url_route": "fine-tuning-job",
        },
    ]


class FineTuningPlugin(AirflowPlugin):
    """The Fine-tuning page (under Browse) and a "Fine-tuning" tab on task instances."""

    name = "fine_tuning"
    if _supports_external_views(airflow.__version__):
        fastapi_apps = _fastapi_apps()
        external_views = _external_views()

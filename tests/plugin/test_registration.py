"""How Airflow finds the Fine-tuning page: the provider info and the ``airflow.plugins`` entry point name the plugin,
Airflow's plugins manager loads it with its views on 3.1+, nothing on older versions, and every process that loads
plugins stays light (the app is built on the api-server's first request)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from airflow_provider_ft.get_provider_info import get_provider_info
from airflow_provider_ft.ui import plugin

PLUGIN_CLASS = "airflow_provider_ft.ui.plugin.FineTuningPlugin"


def test_the_provider_info_and_the_entry_point_name_the_plugin() -> None:
    assert get_provider_info()["plugins"] == [{"name": "fine_tuning", "plugin-class": PLUGIN_CLASS}]
    (found,) = [entry for entry in entry_points(group="airflow.plugins") if entry.name == "fine_tuning"]
    assert found.value == "airflow_provider_ft.ui.plugin:FineTuningPlugin"


@pytest.mark.parametrize(
    ("version", "has_views"),
    [("2.11.2", False), ("3.0.6", False), ("3.1.0", True), ("3.3.2", True), ("3.10.0.dev0", True), ("4.0.0", True)],
)
def test_views_only_where_airflow_has_them(version: str, has_views: bool) -> None:
    assert plugin._supports_external_views(version) is has_views


def test_loading_the_plugin_stays_light() -> None:
    # Schedulers, DAG processors and workers load plugins too: the plugin may not bring the web stack with it.
    code = (
        "import sys, json; import airflow.plugins_manager; before = set(sys.modules); "
        "import airflow_provider_ft.ui.plugin; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    added = set(json.loads(result.stdout.strip().splitlines()[-1]))
    # The package itself may come in here (on Airflow 3 it is already loaded by provider discovery): it holds the
    # version and nothing else.
    assert added <= {"airflow_provider_ft", "airflow_provider_ft.ui", "airflow_provider_ft.ui.plugin"}, added


def test_airflow_loads_the_views_of_the_plugin() -> None:
    import airflow

    if not plugin._supports_external_views(airflow.__version__):
        pytest.skip("external views arrived in Airflow 3.1")
    from airflow import plugins_manager

    loaded = {p.name: p for p in plugins_manager._get_plugins()[0]}
    views = {view["url_route"]: view for view in loaded["fine_tuning"].external_views}
    assert views["fine-tuning"]["href"] == "/fine-tuning/ui/jobs"
    assert views["fine-tuning-job"]["destination"] == "task_instance"
    assert "{DAG_ID}" in views["fine-tuning-job"]["href"]
    (app,) = loaded["fine_tuning"].fastapi_apps
    assert app["url_prefix"] == "/fine-tuning"

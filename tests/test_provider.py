"""Registration: Airflow's own ProvidersManager sees the provider, its hooks and the connection form."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from airflow_provider_ft.get_provider_info import get_provider_info


@pytest.fixture(scope="module")
def providers_manager() -> object:
    from airflow.providers_manager import ProvidersManager

    return ProvidersManager()


def test_provider_is_discovered_through_its_entry_point(providers_manager: object) -> None:
    providers = providers_manager.providers  # type: ignore[attr-defined]
    assert "airflow-provider-ft" in providers
    assert providers["airflow-provider-ft"].data["package-name"] == "airflow-provider-ft"


@pytest.mark.parametrize(
    ("conn_type", "hook_class"),
    [
        ("dashscope", "airflow_provider_ft.hooks.fine_tuning.DashScopeFineTuningHook"),
        ("openai_fine_tuning", "airflow_provider_ft.hooks.fine_tuning.OpenAIFineTuningHook"),
    ],
)
def test_both_connection_types_are_registered(providers_manager: object, conn_type: str, hook_class: str) -> None:
    hook = providers_manager.hooks[conn_type]  # type: ignore[attr-defined]
    assert hook is not None
    assert hook.hook_class_name == hook_class
    assert hook.connection_testable
    behaviour = providers_manager.field_behaviours[conn_type]  # type: ignore[attr-defined]
    assert behaviour["relabeling"] == {"host": "Base URL", "password": "API Key"}
    assert "login" in behaviour["hidden_fields"]


def test_connection_form_fields(providers_manager: object) -> None:
    widgets = providers_manager.connection_form_widgets  # type: ignore[attr-defined]
    for field in ("workspace", "timezone", "timeout", "max_retries"):
        assert f"extra__dashscope__{field}" in widgets
    for field in ("organization", "project", "timeout", "max_retries"):
        assert f"extra__openai_fine_tuning__{field}" in widgets


def test_provider_info_is_plain_data() -> None:
    info = get_provider_info()
    assert json.loads(json.dumps(info)) == info


def test_every_class_named_in_provider_info_imports() -> None:
    import importlib

    info = get_provider_info()
    names = [entry["hook-class-name"] for entry in info["connection-types"]]
    names += info.get("extra-links", [])
    for entry in info.get("triggers", []):
        names += [f"{module}" for module in entry["python-modules"]]
    for dotted in names:
        module_name, _, attribute = dotted.rpartition(".")
        module = importlib.import_module(module_name)
        if not hasattr(module, attribute):
            importlib.import_module(dotted)
    for section in ("operators", "sensors", "hooks"):
        for entry in info.get(section, []):
            for module_name in entry["python-modules"]:
                importlib.import_module(module_name)


def test_dag_authoring_path_imports_nothing_heavy() -> None:
    """Importing our operators, sensor and hook must not pull in the emulator, FastAPI, uvicorn or requests."""
    probe = (
        "import sys\n"
        "import airflow_provider_ft.operators.fine_tuning, airflow_provider_ft.sensors.fine_tuning\n"
        "import airflow_provider_ft.hooks.fine_tuning\n"
        "heavy = ['airflow_provider_ft.emulator', 'fastapi', 'uvicorn', 'requests',\n"
        "         'airflow_provider_ft.triggers.fine_tuning']\n"
        "print([name for name in heavy if name in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "[]"

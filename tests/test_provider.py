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
        ("dashscope", "DashScopeFineTuningHook"),
        ("openaifinetuning", "OpenAIFineTuningHook"),
        ("azureopenaifinetuning", "AzureOpenAIFineTuningHook"),
        ("togetherfinetuning", "TogetherFineTuningHook"),
        # the names before the types lost their underscores, kept for stored connections
        ("openai_fine_tuning", "OpenAIFineTuningHookOldType"),
        ("azure_openai_fine_tuning", "AzureOpenAIFineTuningHookOldType"),
        ("together_fine_tuning", "TogetherFineTuningHookOldType"),
    ],
)
def test_every_connection_type_is_registered(providers_manager: object, conn_type: str, hook_class: str) -> None:
    hook = providers_manager.hooks[conn_type]  # type: ignore[attr-defined]
    assert hook is not None
    assert hook.hook_class_name == f"airflow_provider_ft.hooks.connection_types.{hook_class}"
    assert hook.connection_testable
    behaviour = providers_manager.field_behaviours[conn_type]  # type: ignore[attr-defined]
    required = "required" if conn_type in ("azureopenaifinetuning", "azure_openai_fine_tuning") else "optional"
    assert behaviour["relabeling"] == {"host": f"Base URL ({required})", "password": "API Key"}
    assert "login" in behaviour["hidden_fields"]


def test_connection_form_fields(providers_manager: object) -> None:
    widgets = providers_manager.connection_form_widgets  # type: ignore[attr-defined]
    common = (
        "timeout",
        "max_retries",
        "backoff_base",
        "retry_after_max",
        "namespace",
        "max_requests_per_second",
        "price_per_million_tokens",
        "currency",
    )
    for field in ("workspace", "timezone", *common):
        assert f"extra__dashscope__{field}" in widgets
    for field in ("organization", "project", *common):
        assert f"extra__openaifinetuning__{field}" in widgets
        assert f"extra__openai_fine_tuning__{field}" in widgets
    for field in ("api_version", *common):
        assert f"extra__azureopenaifinetuning__{field}" in widgets
    for field in common:
        assert f"extra__togetherfinetuning__{field}" in widgets


def test_no_placeholder_reads_like_a_value_and_every_key_placeholder_names_its_vendor() -> None:
    """A greyed default URL in an empty Base URL reads as filled in (issue 24): each placeholder is an instruction."""
    for entry in get_provider_info()["connection-types"]:
        placeholders = entry["ui-field-behaviour"]["placeholders"]
        assert not placeholders["host"].startswith(("http://", "https://")), entry["connection-type"]
        assert not placeholders["password"].startswith("sk-"), entry["connection-type"]
        vendor = entry["hook-name"].removeprefix("Fine-tuning: ").split(" (old type")[0]
        assert vendor.split()[0] in placeholders["password"], (entry["connection-type"], placeholders["password"])


def ui_picker_choice(typed: str, hook_names: dict[str, str]) -> str | None:
    """The connection type Airflow 3.3's connection form selects when ``typed`` is typed into its type picker and
    Enter is pressed.

    The picker (airflow/ui, ``ConnectionForm``) lists every type sorted by hook name (``localeCompare``); its
    react-select keeps, in that order, the options whose ``"<label> <value>"`` holds the typed text, ignoring case
    (react-select's default ``createFilter``: ``matchFrom: "any"``), and Enter takes the first one kept.

    :param typed: what the user typed
    :param hook_names: the hook name of each registered connection type
    """
    ordered = sorted(hook_names.items(), key=lambda item: (item[1].casefold(), item[1]))
    kept = [conn_type for conn_type, name in ordered if typed.strip().casefold() in f"{name} {conn_type}".casefold()]
    return kept[0] if kept else None


def test_typing_a_hook_name_into_the_type_picker_and_pressing_enter_selects_that_type(
    providers_manager: object,
) -> None:
    """Issue 24: typing "OpenAI fine-tuning" and Enter selected "Azure OpenAI fine-tuning", which sorts first and
    holds the typed name. Every connection type of ours, among all types the installed providers register."""
    hooks = providers_manager.hooks  # type: ignore[attr-defined]
    hook_names = {conn_type: hook.hook_name for conn_type, hook in hooks.items() if hook is not None}
    ours = [entry["connection-type"] for entry in get_provider_info()["connection-types"]]
    assert set(ours) <= set(hook_names)
    assert {conn_type: ui_picker_choice(hook_names[conn_type], hook_names) for conn_type in ours} == {
        conn_type: conn_type for conn_type in ours
    }
    # what a user used to type now leads to the OpenAI type itself, not to Azure's
    assert ui_picker_choice("Fine-tuning: OpenAI", hook_names) == "openaifinetuning"


def test_our_connection_types_are_uri_schemes_airflow_reads_back_without_a_warning() -> None:
    """Issue 24: "Connection schemes (type: openai_fine_tuning) shall not contain '_' according to RFC3986", logged
    by ``airflow.models.Connection.get_uri`` each time the API server hands a stored connection to a task (the
    execution API's connection route reads it through ``get_connection_from_secrets``, which caches its URI). The
    current types have no ``_``: no warning, and the URI reads back as the same type. The old names still warn: the
    reason they were renamed (CHANGELOG.md, docs/connections/README.md)."""
    probe = (
        "import json\n"
        "from airflow.models.connection import Connection\n"
        "from airflow_provider_ft.get_provider_info import get_provider_info\n"
        "result = {}\n"
        "for entry in get_provider_info()['connection-types']:\n"
        "    conn_type = entry['connection-type']\n"
        "    print('probing', conn_type, flush=True)\n"
        "    uri = Connection(conn_id='probe', conn_type=conn_type, host='https://example.com/v1', password='k' * 20)"
        ".get_uri()\n"
        "    result[conn_type] = Connection(conn_id='probe', uri=uri).conn_type\n"
        "print('probed', flush=True)\n"
        "print(json.dumps(result))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    output = done.stdout + done.stderr
    read_back = json.loads(done.stdout.strip().splitlines()[-1])
    warned = {conn_type for conn_type in read_back if f"(type: {conn_type}) shall not contain" in output}
    renamed = {"openai_fine_tuning", "azure_openai_fine_tuning", "together_fine_tuning"}
    assert warned == renamed
    assert {conn_type: back for conn_type, back in read_back.items() if conn_type not in renamed} == {
        "dashscope": "dashscope",
        "openaifinetuning": "openaifinetuning",
        "azureopenaifinetuning": "azureopenaifinetuning",
        "togetherfinetuning": "togetherfinetuning",
    }


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
    """Importing our operators, sensor and hook must not pull in the emulator, FastAPI, uvicorn or requests, nor the
    trigger, the submit, file-check and task-state machinery that only a running task needs, nor OpenLineage.

    Only what they add to Airflow's own base classes counts: on Airflow 2 those import ``requests`` themselves.
    """
    probe = (
        "import sys\n"
        "from airflow_provider_ft._compat import BaseHook, BaseOperator, BaseSensorOperator\n"
        "before = set(sys.modules)\n"
        "import airflow_provider_ft.operators.fine_tuning, airflow_provider_ft.sensors.fine_tuning\n"
        "import airflow_provider_ft.operators.create\n"
        "import airflow_provider_ft.hooks.fine_tuning\n"
        "heavy = ['airflow_provider_ft_emulator', 'fastapi', 'uvicorn', 'requests',\n"
        "         'airflow_provider_ft.triggers.fine_tuning', 'airflow_provider_ft.triggers.capacity',\n"
        "         'airflow_provider_ft.core.submit',\n"
        "         'airflow_provider_ft.training_files', 'airflow_provider_ft.operators._task_state',\n"
        "         'airflow_provider_ft.lineage', 'openlineage', 'airflow.providers.openlineage']\n"
        "print([name for name in heavy if name in set(sys.modules) - before])\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "[]"


# -- the connection form on Airflow 2.11 and 3.0 ---------------------------------------------------------------
# Airflow 3.2+ reads the form from conn-fields / ui-field-behaviour in the provider info; 2.11 and 3.0 ask the hook
# class of each connection type (get_connection_form_widgets / get_ui_field_behaviour, defined on that very class).

#: Every connection type's hook class (those after the first two are made from the provider info on first use).
HOOK_CLASSES = {
    entry["connection-type"]: entry["hook-class-name"].rsplit(".", 1)[1]
    for entry in get_provider_info()["connection-types"]
}


@pytest.mark.parametrize("conn_type", sorted(HOOK_CLASSES))
def test_hook_field_behaviour_matches_provider_info(conn_type: str) -> None:
    from airflow_provider_ft.get_provider_info import connection_type_info
    from airflow_provider_ft.hooks import connection_types

    hook_class = getattr(connection_types, HOOK_CLASSES[conn_type])
    assert hook_class.conn_type == conn_type
    assert "get_ui_field_behaviour" in vars(hook_class), "Airflow 2 only reads methods defined on the class itself"
    declared = connection_type_info(conn_type)["ui-field-behaviour"]
    assert hook_class.get_ui_field_behaviour() == {
        "hidden_fields": declared["hidden-fields"],
        "relabeling": declared["relabeling"],
        "placeholders": declared["placeholders"],
    }


@pytest.mark.parametrize("conn_type", sorted(HOOK_CLASSES))
def test_hook_form_widgets_match_provider_info(conn_type: str) -> None:
    # Not installed with Airflow 3.3 (which never calls the method): runs on the 2.11 and 3.0 lanes.
    pytest.importorskip("wtforms", reason="WTForms is not installed: Airflow 3.2+ builds the form from conn-fields")
    from wtforms import IntegerField, StringField

    from airflow_provider_ft.get_provider_info import connection_type_info
    from airflow_provider_ft.hooks import connection_types

    hook_class = getattr(connection_types, HOOK_CLASSES[conn_type])
    assert "get_connection_form_widgets" in vars(hook_class), "Airflow 2 only reads methods defined on the class"
    declared = connection_type_info(conn_type)["conn-fields"]
    widgets = hook_class.get_connection_form_widgets()
    assert set(widgets) == set(declared)
    for name, widget in widgets.items():
        assert widget.args[0] == declared[name]["label"]
        assert widget.kwargs["description"] == declared[name]["description"]
        expected = IntegerField if "integer" in declared[name]["schema"]["type"] else StringField
        assert widget.field_class is expected, name


def test_providers_manager_warns_about_nothing_of_ours() -> None:
    """Loading our hooks and their form through ProvidersManager raises no (deprecation) warning on any lane.

    On Airflow 3.2+ defining ``get_connection_form_widgets`` on a hook is deprecated, but ``ProvidersManager`` skips
    the method (and its warning) when the provider info declares ``conn-fields``, as ours does.
    """
    probe = (
        "import json, sys, types, warnings\n"
        "try:\n"
        "    import wtforms\n"
        "except ImportError:  # Airflow imports WTForms before it looks at the hook's form methods: a stand-in\n"
        "    wtforms = sys.modules['wtforms'] = types.ModuleType('wtforms')\n"
        "    for name in ('BooleanField', 'IntegerField', 'PasswordField', 'StringField'):\n"
        "        setattr(wtforms, name, type(name, (), {}))\n"
        "from airflow.providers_manager import ProvidersManager  # before recording: Airflow routes warnings to logs\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    manager = ProvidersManager()\n"
        f"    types = {tuple(HOOK_CLASSES)!r}\n"
        "    hooks = [manager.hooks[conn_type] for conn_type in types]\n"
        "    manager.connection_form_widgets, manager.field_behaviours\n"
        "ours = [f'{w.category.__name__}: {w.message}' for w in caught\n"
        "        if 'airflow_provider_ft' in str(w.message) or 'FineTuningHook' in str(w.message)\n"
        "        or 'airflow_provider_ft' in str(w.filename)]\n"
        "print(json.dumps({'hooks': [hook.hook_class_name if hook else None for hook in hooks], 'warnings': ours}))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["hooks"] == [f"airflow_provider_ft.hooks.connection_types.{name}" for name in HOOK_CLASSES.values()]
    assert loaded["warnings"] == []

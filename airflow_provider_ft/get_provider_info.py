"""Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point.

Kept free of imports beyond the package version and defaults: Airflow calls it in every process listing providers.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_ft import __version__, defaults

_INTEGRATIONS = ("DashScope fine-tuning", "OpenAI fine-tuning", "Azure OpenAI fine-tuning", "Together AI fine-tuning")
_COMMON_FIELDS: dict[str, Any] = {
    "namespace": {
        "label": "Job identity namespace",
        "schema": {"type": ["string", "null"]},
        "description": "Part of the identity that finds a task's job again after a retry; give each Airflow "
        "deployment sharing this account its own.",
    },
    "timeout": {
        "label": "Timeout (seconds)",
        "schema": {"type": ["number", "null"], "default": defaults.TIMEOUT},
        "description": "Connect and read timeout of each request; its whole answer must arrive within twice that.",
    },
    "max_retries": {
        "label": "Max retries",
        "schema": {
            "type": ["integer", "null"],
            "default": defaults.MAX_RETRIES,
            "minimum": 0,
            "maximum": defaults.MAX_RETRIES_LIMIT,
        },
        "description": "Retries on connection errors, timeouts, 408, 429 and 5xx answers.",
    },
    "max_response_bytes": {
        "label": "Largest answer (bytes)",
        "schema": {"type": ["integer", "null"], "default": defaults.MAX_RESPONSE_BYTES, "minimum": 1},
        "description": "An answer that decodes to more bytes than this is refused.",
    },
    "max_pages": {
        "label": "Longest listing (pages)",
        "schema": {"type": ["integer", "null"], "default": defaults.MAX_PAGES, "minimum": 1},
        "description": "A job listing that still has more after this many pages ends with an error.",
    },
    "max_requests_per_second": {
        "label": "Max requests per second",
        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 10000},
        "description": "A ceiling on the requests to this account from one process, shared by all its tasks and "
        "triggers; empty for none.",
    },
}


def _behaviour(default_base_url: str, key_placeholder: str = "sk-...") -> dict[str, Any]:
    return {
        "hidden-fields": ["schema", "port", "login"],
        "relabeling": {"host": "Base URL", "password": "API Key"},
        "placeholders": {"host": default_base_url, "password": key_placeholder},
    }


def _per_integration(*modules: str) -> list[dict[str, Any]]:
    return [{"integration-name": name, "python-modules": list(modules)} for name in _INTEGRATIONS]


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-ft",
        "name": "Fine-tuning jobs (DashScope, OpenAI, Azure OpenAI, Together AI)",
        "description": "Cancel, delete, clean up and wait for remote LLM fine-tuning jobs on DashScope, OpenAI, "
        "Azure OpenAI and Together AI.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "DashScope fine-tuning",
                "external-doc-url": "https://www.alibabacloud.com/help/en/model-studio/",
                "tags": ["software"],
            },
            {
                "integration-name": "OpenAI fine-tuning",
                "external-doc-url": "https://platform.openai.com/docs/api-reference/fine-tuning",
                "tags": ["software"],
            },
            {
                "integration-name": "Azure OpenAI fine-tuning",
                "external-doc-url": "https://learn.microsoft.com/azure/ai-foundry/openai/how-to/fine-tuning",
                "tags": ["software"],
            },
            {
                "integration-name": "Together AI fine-tuning",
                "external-doc-url": "https://docs.together.ai/docs/fine-tuning-overview",
                "tags": ["software"],
            },
        ],
        "operators": _per_integration(
            "airflow_provider_ft.operators.fine_tuning",
            "airflow_provider_ft.operators.create",
            "airflow_provider_ft.operators.cleanup",
        ),
        "sensors": _per_integration("airflow_provider_ft.sensors.fine_tuning"),
        "triggers": _per_integration(
            "airflow_provider_ft.triggers.fine_tuning", "airflow_provider_ft.triggers.capacity"
        ),
        "hooks": _per_integration("airflow_provider_ft.hooks.fine_tuning"),
        "extra-links": ["airflow_provider_ft.links.FineTuningJobLink"],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_ft.hooks.fine_tuning.DashScopeFineTuningHook",
                "hook-name": "DashScope fine-tuning",
                "connection-type": "dashscope",
                "conn-fields": {
                    "workspace": {
                        "label": "Workspace ID",
                        "schema": {"type": ["string", "null"]},
                        "description": "Sent as X-DashScope-WorkSpace to act inside a sub-workspace.",
                    },
                    "timezone": {
                        "label": "Time zone of job times",
                        "schema": {"type": ["string", "null"], "default": defaults.DASHSCOPE_TIMEZONE},
                        "description": "DashScope sends times without a zone; they are read in this zone.",
                    },
                    **_COMMON_FIELDS,
                },
                "ui-field-behaviour": _behaviour(defaults.DASHSCOPE_BASE_URL),
            },
            {
                "hook-class-name": "airflow_provider_ft.hooks.fine_tuning.OpenAIFineTuningHook",
                "hook-name": "OpenAI fine-tuning",
                "connection-type": "openai_fine_tuning",
                "conn-fields": {
                    "organization": {
                        "label": "Organization ID",
                        "schema": {"type": ["string", "null"]},
                        "description": "Sent as OpenAI-Organization.",
                    },
                    "project": {
                        "label": "Project ID",
                        "schema": {"type": ["string", "null"]},
                        "description": "Sent as OpenAI-Project.",
                    },
                    **_COMMON_FIELDS,
                },
                "ui-field-behaviour": _behaviour(defaults.OPENAI_BASE_URL),
            },
            {
                "hook-class-name": "airflow_provider_ft.hooks.fine_tuning.AzureOpenAIFineTuningHook",
                "hook-name": "Azure OpenAI fine-tuning",
                "connection-type": "azure_openai_fine_tuning",
                "conn-fields": {
                    "api_version": {
                        "label": "API version",
                        "schema": {"type": ["string", "null"], "default": "2024-10-21"},
                        "description": "A dated api-version (sent as ?api-version= below /openai), or v1 for the "
                        "v1 API (below /openai/v1, no version).",
                    },
                    **_COMMON_FIELDS,
                },
                "ui-field-behaviour": _behaviour("https://<resource>.openai.azure.com", "Azure OpenAI key"),
            },
            {
                "hook-class-name": "airflow_provider_ft.hooks.fine_tuning.TogetherFineTuningHook",
                "hook-name": "Together AI fine-tuning",
                "connection-type": "together_fine_tuning",
                "conn-fields": dict(_COMMON_FIELDS),
                "ui-field-behaviour": _behaviour("https://api.together.ai/v1"),
            },
        ],
    }


def connection_type_info(conn_type: str) -> dict[str, Any]:
    """The ``connection-types`` entry of ``conn_type`` (its hook, form fields and field behaviour)."""
    for entry in get_provider_info()["connection-types"]:
        if entry["connection-type"] == conn_type:
            return dict(entry)
    raise KeyError(f"this provider has no connection type {conn_type!r}")

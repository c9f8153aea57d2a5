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
    "backoff_base": {
        "label": "First retry wait (seconds)",
        "schema": {"type": ["number", "null"], "default": defaults.BACKOFF_BASE, "exclusiveMinimum": 0},
        "description": "The wait before the first retry; it doubles with each retry, up to "
        f"{defaults.BACKOFF_MAX:g} s, plus up to {defaults.JITTER:.0%} at random.",
    },
    "retry_after_max": {
        "label": "Longest Retry-After obeyed (seconds)",
        "schema": {"type": ["number", "null"], "default": defaults.RETRY_AFTER_MAX, "exclusiveMinimum": 0},
        "description": "A server asking to wait longer before the next retry (Retry-After) waits this long.",
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
    "price_per_million_tokens": {
        "label": "Price per million trained tokens",
        "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "description": "What the vendor charges for one million trained tokens: each job's estimated cost, and "
        "what a task's max_cost is measured with; empty for none (no price is built in).",
    },
    "currency": {
        "label": "Currency of the price",
        "schema": {"type": ["string", "null"], "maxLength": 8},
        "description": "Shown after each cost, e.g. USD; empty to show costs without a unit.",
    },
}


#: The connection types of this provider before they lost their underscores (0.1.0 before issue 24): Airflow 3.3's
#: ``Connection.get_uri`` warns "Connection schemes ... shall not contain '_'" each time it reads one from the metadata
#: database, so the types are now spelled without one. These stay registered, same form and hook, so that stored
#: connections keep working; the form marks them old. Each maps to the type that replaces it.
RENAMED_CONNECTION_TYPES = {
    "openai_fine_tuning": "openaifinetuning",
    "azure_openai_fine_tuning": "azureopenaifinetuning",
    "together_fine_tuning": "togetherfinetuning",
}


def _behaviour(base_url: str, key: str, *, base_url_required: bool = False) -> dict[str, Any]:
    """The standard fields: only Base URL and API Key are shown. Airflow's form gives a standard field a label and a
    placeholder but no help text nor a required mark, so the label says whether it is required and the placeholder
    says what to put there (never a value that could pass for one already filled in).

    :param base_url: the Base URL's placeholder
    :param key: the API Key's placeholder
    :param base_url_required: whether the connection needs a Base URL (no default one)
    """
    return {
        "hidden-fields": ["schema", "port", "login"],
        "relabeling": {
            "host": "Base URL (required)" if base_url_required else "Base URL (optional)",
            "password": "API Key",
        },
        "placeholders": {"host": base_url, "password": key},
    }


def _per_integration(*modules: str) -> list[dict[str, Any]]:
    return [{"integration-name": name, "python-modules": list(modules)} for name in _INTEGRATIONS]


def _connection_types() -> list[dict[str, Any]]:
    """Each vendor's connection type; the hook names all start "Fine-tuning: " so that none is a part of another
    (Airflow's type picker offers, and Enter takes, the first name in alphabetical order that holds what was typed:
    "OpenAI fine-tuning" typed used to select "Azure OpenAI fine-tuning")."""
    current = [
        {
            "hook-class-name": "airflow_provider_ft.hooks.connection_types.DashScopeFineTuningHook",
            "hook-name": "Fine-tuning: DashScope",
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
            "ui-field-behaviour": _behaviour(
                f"Leave empty for {defaults.DASHSCOPE_BASE_URL} (Singapore); Beijing: "
                "https://dashscope.aliyuncs.com/api/v1",
                "Your DashScope API key (sent as a bearer token)",
            ),
        },
        {
            "hook-class-name": "airflow_provider_ft.hooks.connection_types.OpenAIFineTuningHook",
            "hook-name": "Fine-tuning: OpenAI",
            "connection-type": "openaifinetuning",
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
            "ui-field-behaviour": _behaviour(
                f"Leave empty for {defaults.OPENAI_BASE_URL}, or the URL of a compatible gateway",
                "Your OpenAI API key (sent as a bearer token)",
            ),
        },
        {
            "hook-class-name": "airflow_provider_ft.hooks.connection_types.AzureOpenAIFineTuningHook",
            "hook-name": "Fine-tuning: Azure OpenAI",
            "connection-type": "azureopenaifinetuning",
            "conn-fields": {
                "api_version": {
                    "label": "API version",
                    "schema": {"type": ["string", "null"], "default": "2024-10-21"},
                    "description": "A dated api-version (sent as ?api-version= below /openai), or v1 for the "
                    "v1 API (below /openai/v1, no version).",
                },
                **_COMMON_FIELDS,
            },
            "ui-field-behaviour": _behaviour(
                "Your resource's endpoint, no path: https://<resource>.openai.azure.com",
                "A key of the Azure OpenAI resource (sent as api-key)",
                base_url_required=True,
            ),
        },
        {
            "hook-class-name": "airflow_provider_ft.hooks.connection_types.TogetherFineTuningHook",
            "hook-name": "Fine-tuning: Together AI",
            "connection-type": "togetherfinetuning",
            "conn-fields": dict(_COMMON_FIELDS),
            "ui-field-behaviour": _behaviour(
                "Leave empty for https://api.together.ai/v1",
                "Your Together AI API key (sent as a bearer token)",
            ),
        },
    ]
    by_type = {entry["connection-type"]: entry for entry in current}
    renamed = [
        {
            **by_type[new_type],
            "hook-class-name": f"{by_type[new_type]['hook-class-name']}OldType",
            "hook-name": f"{by_type[new_type]['hook-name']} (old type {old_type})",
            "connection-type": old_type,
        }
        for old_type, new_type in RENAMED_CONNECTION_TYPES.items()
    ]
    return current + renamed


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
        "plugins": [{"name": "fine_tuning", "plugin-class": "airflow_provider_ft.ui.plugin.FineTuningPlugin"}],
        "connection-types": _connection_types(),
    }


def connection_type_info(conn_type: str) -> dict[str, Any]:
    """The ``connection-types`` entry of ``conn_type`` (its hook, form fields and field behaviour)."""
    for entry in get_provider_info()["connection-types"]:
        if entry["connection-type"] == conn_type:
            return dict(entry)
    raise KeyError(f"this provider has no connection type {conn_type!r}")

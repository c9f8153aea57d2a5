"""Vendor dialects and the registry that maps an Airflow connection type to one.

Adding an API means one new module beside these and one line in ``_DIALECTS``. The dialects are imported on first
use (``DIALECTS_BY_CONN_TYPE`` or a dialect's name from here): operators that only check a job id in a DAG file
never load them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_ft.vendors.azure_openai import AzureOpenAIDialect
    from airflow_provider_ft.vendors.base import Dialect
    from airflow_provider_ft.vendors.dashscope import DashScopeDialect
    from airflow_provider_ft.vendors.openai import OpenAIDialect
    from airflow_provider_ft.vendors.together import TogetherDialect
    from airflow_provider_ft.vendors.wire import ApiRequest, ApiResponse, JobPage

    DIALECTS_BY_CONN_TYPE: dict[str, type[Dialect]]

#: Every dialect: its class name and the module it lives in.
_DIALECTS = {
    "DashScopeDialect": "dashscope",
    "OpenAIDialect": "openai",
    "AzureOpenAIDialect": "azure_openai",
    "TogetherDialect": "together",
}
_OTHER_NAMES = {"Dialect": "base", "ApiRequest": "wire", "ApiResponse": "wire", "JobPage": "wire"}

__all__ = [
    "DIALECTS_BY_CONN_TYPE",
    "ApiRequest",
    "ApiResponse",
    "AzureOpenAIDialect",
    "DashScopeDialect",
    "Dialect",
    "JobPage",
    "OpenAIDialect",
    "TogetherDialect",
]


def __getattr__(name: str) -> Any:
    if name == "DIALECTS_BY_CONN_TYPE":
        dialects = [getattr(import_module(f"{__name__}.{module}"), cls) for cls, module in _DIALECTS.items()]
        registry = {conn_type: dialect for dialect in dialects for conn_type in dialect.conn_types}
        globals()[name] = registry
        return registry
    module = _DIALECTS.get(name) or _OTHER_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)

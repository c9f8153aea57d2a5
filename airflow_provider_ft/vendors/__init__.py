"""Vendor dialects and the registry that maps an Airflow connection type to one.

Adding an API means one new module beside these and one line in ``_DIALECTS``.
"""

from __future__ import annotations

from airflow_provider_ft.vendors.base import Dialect
from airflow_provider_ft.vendors.dashscope import DashScopeDialect
from airflow_provider_ft.vendors.openai import OpenAIDialect
from airflow_provider_ft.vendors.wire import ApiRequest, ApiResponse, JobPage

_DIALECTS: tuple[type[Dialect], ...] = (DashScopeDialect, OpenAIDialect)

DIALECTS_BY_CONN_TYPE: dict[str, type[Dialect]] = {
    conn_type: dialect for dialect in _DIALECTS for conn_type in dialect.conn_types
}

__all__ = [
    "DIALECTS_BY_CONN_TYPE",
    "ApiRequest",
    "ApiResponse",
    "DashScopeDialect",
    "Dialect",
    "JobPage",
    "OpenAIDialect",
]

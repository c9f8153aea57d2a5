"""Helpers shared by the vendor routers: shared state, request ids, body and query parsing."""

from __future__ import annotations

import json
from typing import Any, cast

from fastapi import Request

from airflow_provider_ft_emulator.errors import ApiFailure
from airflow_provider_ft_emulator.state import EmulatorState
from airflow_provider_ft_emulator.vocabulary import Vendor


def state_of(request: Request) -> EmulatorState:
    """The emulator state attached to the application."""
    return cast("EmulatorState", request.app.state.emulator)


def vendor_of(request: Request) -> Vendor:
    """The vendor whose mount the request came in on (the OpenAI wire serves OpenAI's and Azure's)."""
    vendor = request.scope.get("state", {}).get("vendor")
    return "azure" if vendor == "azure" else "openai"


def request_id(request: Request) -> str:
    """The id the middleware assigned to this request (also sent as ``x-request-id``)."""
    return str(request.scope.get("state", {}).get("request_id", ""))


def body_json(raw: bytes, vendor: Vendor) -> Any:
    """Parse a JSON request body or raise the vendor's 400."""
    try:
        return json.loads(raw) if raw.strip() else None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        if vendor == "dashscope":
            raise ApiFailure(400, "InvalidParameter", "The request body is not valid JSON.") from exc
        message = (
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
            "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"
        )
        raise ApiFailure(400, None, message) from exc


def int_param(request: Request, name: str, default: int, low: int, high: int | None, vendor: Vendor) -> int:
    """An integer query parameter within ``[low, high]`` or the vendor's 400."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad_int(vendor, name, f"Invalid '{name}': expected an integer, but got {raw!r} instead.") from None
    if value < low:
        raise _bad_int(
            vendor,
            name,
            f"Invalid '{name}': integer below minimum value. Expected a value >= {low}, but got {value} instead.",
            "integer_below_min_value",
        )
    if high is not None and value > high:
        raise _bad_int(
            vendor,
            name,
            f"Invalid '{name}': integer above maximum value. Expected a value <= {high}, but got {value} instead.",
            "integer_above_max_value",
        )
    return value


def _bad_int(vendor: Vendor, name: str, message: str, code: str = "invalid_type") -> ApiFailure:
    if vendor == "dashscope":
        return ApiFailure(400, "InvalidParameter", message)
    return ApiFailure(400, code, message, param=name)

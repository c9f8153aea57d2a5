"""Error bodies in each vendor's wire shape, and the exception the routers raise to send them."""

from __future__ import annotations

from typing import Any

from airflow_provider_ft_emulator.vocabulary import Vendor

#: DashScope error code for a generic HTTP status (used by status faults and framework errors).
DASHSCOPE_CODES = {
    400: "InvalidParameter",
    401: "InvalidApiKey",
    403: "AccessDenied",
    404: "NotFound",
    409: "Conflict",
    429: "Throttling",
}
DASHSCOPE_MESSAGES = {
    "InvalidParameter": "Invalid parameter.",
    "InvalidApiKey": "Invalid API-key provided.",
    "AccessDenied": "Access denied.",
    "NotFound": "Not Found!",
    "Conflict": "Conflict.",
    "Throttling": "Requests throttling triggered.",
    "InternalError": "Internal server error!",
}


#: Azure OpenAI's ErrorCode words (Microsoft's authoring spec) for a generic HTTP status.
AZURE_CODES = {
    400: "invalidPayload",
    401: "unauthorized",
    403: "forbidden",
    404: "notFound",
    409: "conflict",
    429: "tooManyRequests",
    503: "serviceUnavailable",
}
#: The emulator's own codes that have an Azure word of their own.
_AZURE_WORDS = {"invalid_state": "unexpectedEntityState", "quota_exceeded": "quotaExceeded"}
AZURE_UNAUTHORIZED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an "
    "active subscription and use a correct regional API endpoint for your resource."
)


class ApiFailure(Exception):
    """An error answer: HTTP ``status`` with a vendor-shaped body built by :func:`error_body`."""

    def __init__(
        self, status: int, code: str | None, message: str, *, param: str | None = None, kind: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.kind = kind


def dashscope_error(request_id: str, code: str, message: str) -> dict[str, Any]:
    """``{"request_id", "code", "message"}``."""
    return {"request_id": request_id, "code": code, "message": message}


def openai_error(
    message: str, *, kind: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_body(vendor: Vendor | None, request_id: str, error: ApiFailure) -> dict[str, Any]:
    """Render ``error`` for ``vendor`` (OpenAI shape when the vendor is unknown)."""
    if vendor == "dashscope":
        return dashscope_error(request_id, error.code or dashscope_code(error.status), error.message)
    if vendor == "azure":
        return azure_error(error)
    kind = error.kind or openai_type(error.status)
    return openai_error(error.message, kind=kind, param=error.param, code=error.code)


def azure_error(error: ApiFailure) -> dict[str, Any]:
    """``{"error": {"code", "message"}}`` (Microsoft REST guidelines): the code is Azure's word for the error."""
    given = error.code or ""
    # Azure's own words and the bare status codes its gateway sends pass; the emulator's OpenAI codes are mapped.
    kept = given.isdigit() or given in AZURE_CODES.values() or given in _AZURE_WORDS.values()
    code = given if kept else _AZURE_WORDS.get(given) or azure_code(error.status)
    return {"error": {"code": code, "message": error.message}}


def azure_code(status: int) -> str:
    """The Azure ``ErrorCode`` word that best matches an HTTP status."""
    return AZURE_CODES.get(status, "internalFailure" if status >= 500 else "invalidPayload")


def resource_not_found() -> ApiFailure:
    """Azure's 404 for a path it does not serve (or the dated API without an api-version)."""
    return ApiFailure(404, "404", "Resource not found")


def dashscope_code(status: int) -> str:
    """The DashScope code that best matches an HTTP status."""
    return DASHSCOPE_CODES.get(status, "InternalError" if status >= 500 else "InvalidParameter")


def openai_type(status: int) -> str:
    """The OpenAI error ``type`` that matches an HTTP status."""
    if status == 429:
        return "requests"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def status_fault_error(vendor: Vendor | None, status: int) -> ApiFailure:
    """The error a gateway would send for a bare status (429, 5xx, ...)."""
    if vendor == "dashscope":
        code = dashscope_code(status)
        return ApiFailure(status, code, DASHSCOPE_MESSAGES.get(code, "Request failed."))
    if vendor == "azure":
        return ApiFailure(status, azure_code(status), "The service could not handle the request; please retry.")
    if status == 429:
        return ApiFailure(
            429, "rate_limit_exceeded", "Rate limit reached for requests. Please try again later.", kind="requests"
        )
    if status >= 500:
        message = "The server had an error while processing your request. Sorry about that!"
        return ApiFailure(status, "server_error", message, kind="server_error")
    return ApiFailure(status, None, f"Request failed with status {status}.")


def redact_key(key: str) -> str:
    """Redact a presented API key the way OpenAI does: first 3 + ``***`` + last 4 (``***`` if short)."""
    if len(key) < 12:
        return "***"
    return f"{key[:3]}***{key[-4:]}"


def unauthorized(vendor: Vendor, presented: str | None) -> ApiFailure:
    """The 401 for a missing or wrong key; never contains the full key."""
    if vendor == "dashscope":
        return ApiFailure(401, "InvalidApiKey", "Invalid API-key provided.")
    if vendor == "azure":
        return ApiFailure(401, "401", AZURE_UNAUTHORIZED)
    if vendor == "together":
        return ApiFailure(401, "invalid_api_key", f"Invalid API key provided: {redact_key(presented or '')}")
    if not presented:
        message = (
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
    else:
        message = (
            f"Incorrect API key provided: {redact_key(presented)}. "
            "You can find your API key at https://platform.openai.com/account/api-keys."
        )
    return ApiFailure(401, "invalid_api_key", message)


def not_found_route(vendor: Vendor | None, method: str, path: str) -> ApiFailure:
    """404 for a path (or method) no route serves."""
    if vendor == "dashscope":
        return ApiFailure(404, "NotFound", "Not Found!")
    if vendor == "azure":
        return resource_not_found()
    return ApiFailure(404, None, f"Invalid URL ({method} {path})")

"""Decoding an answer: the JSON object of a success, or the one typed error anything else becomes.

JSON is read strictly (no ``NaN`` or ``Infinity``, at most ``MAX_JSON_DEPTH`` levels); an error names the vendor,
the call, the code and message the body carries (or the start of the body), escaped with ``printable``, and says
whether trying again may help. What a vendor's error bodies say is the dialect's (``ErrorReading``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from airflow_provider_ft._text import printable
from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningCapacityError, JobNotFoundError
from airflow_provider_ft.retry import is_retryable_status, parse_retry_after
from airflow_provider_ft.vendors.readers import json_type, optional_str
from airflow_provider_ft.vendors.wire import ApiRequest, ApiResponse, ErrorDetails

#: Deepest nesting of arrays and objects an answer may have (a real job object nests about five levels deep).
MAX_JSON_DEPTH = 64

_SNIPPET_LENGTH = 160
_SNIPPET_BYTES = 4096
_MESSAGE_LENGTH = 500
_CODE_LENGTH = 100


class ErrorReading(Protocol):
    """What decoding asks of a dialect: how its answers report an error (``Dialect`` documents each)."""

    @property
    def display_name(self) -> str: ...
    def vendor_error(self, response: ApiResponse, payload: Mapping[str, Any] | None) -> ErrorDetails | None: ...
    def request_id(self, response: ApiResponse, payload: Mapping[str, Any] | None) -> str | None: ...
    def is_retryable_code(self, code: str | None) -> bool: ...
    def is_rate_limit_code(self, code: str | None) -> bool: ...
    def is_job_limit(self, status: int, failure: ErrorDetails) -> bool: ...


def decode(vendor: ErrorReading, request: ApiRequest, response: ApiResponse) -> dict[str, Any]:
    """The JSON object a successful (2xx) answer carries; a typed error for anything else.

    1xx and 3xx answers are errors too: redirects are not followed (the connection's host must be the API's).
    """
    if response.status < 200 or 300 <= response.status < 400:
        raise _unfinished_error(vendor, request, response)
    payload, problem = _json_object(response.body)
    failure = vendor.vendor_error(response, payload)
    if failure is not None or response.status >= 400:
        raise _api_error(vendor, request, response, failure or ErrorDetails())
    if payload is None:
        raise FineTuningApiError(
            f"{vendor.display_name} answered {request.method} {request.path} with a body that {problem.text}: "
            f"'{body_snippet(response.body) or '<empty>'}'",
            http_status=response.status,
            request_id=_short(vendor.request_id(response, None)),
            retryable=problem.may_heal and not request.is_mutating,
        )
    return payload


def error_object(error: Mapping[str, Any], request_id: str | None) -> ErrorDetails:
    """``{"code" or "type", "message"}``: the ``error`` object of OpenAI's (and Together AI's) error bodies."""
    return ErrorDetails(
        code=optional_str(error.get("code")) or optional_str(error.get("type")),
        message=optional_str(error.get("message")),
        request_id=request_id,
    )


def body_snippet(body: bytes) -> str:
    """The start of a body for an error message: whitespace collapsed, non-printable characters escaped, short."""
    head = body[:_SNIPPET_BYTES]
    snippet = printable(" ".join(head.decode("utf-8", errors="replace").split()), _SNIPPET_LENGTH)
    if len(body) > len(head) and not snippet.endswith("..."):
        snippet += "..."
    return snippet


def _api_error(
    vendor: ErrorReading, request: ApiRequest, response: ApiResponse, failure: ErrorDetails
) -> FineTuningApiError:
    error_class = FineTuningApiError
    if failure.message:
        described = printable(failure.message, _MESSAGE_LENGTH)
    else:
        described = body_snippet(response.body) or "no error message"
    if response.status == 404 and request.job_id is not None:
        error_class = JobNotFoundError
        described = f"job {request.job_id} not found: {described}"
    at_job_limit = request.operation == "create" and vendor.is_job_limit(response.status, failure)
    if at_job_limit:
        error_class = FineTuningCapacityError
    return error_class(
        f"{vendor.display_name} {request.operation} failed: {described}",
        http_status=response.status,
        vendor_code=_short(failure.code),
        request_id=_short(failure.request_id or vendor.request_id(response, None)),
        retryable=is_retryable_status(response.status) or vendor.is_retryable_code(failure.code),
        retry_after=parse_retry_after(response.headers),
        rate_limited=not at_job_limit and (response.status == 429 or vendor.is_rate_limit_code(failure.code)),
    )


def _unfinished_error(vendor: ErrorReading, request: ApiRequest, response: ApiResponse) -> FineTuningApiError:
    """The error for an answer that is neither a success nor an error: informational, or a redirect."""
    if 300 <= response.status < 400:
        location = response.headers.get("location")
        target = f" to '{printable(location, _SNIPPET_LENGTH)}'" if location else ""
        described = f"a redirect{target}; redirects are not followed: set the connection's host to the API's own URL"
    else:
        described = "not a final answer (a success is 2xx)"
    return FineTuningApiError(
        f"{vendor.display_name} answered {request.method} {request.path} with HTTP {response.status}, {described}",
        http_status=response.status,
        request_id=_short(vendor.request_id(response, None)),
    )


def _short(text: str | None) -> str | None:
    return printable(text, _CODE_LENGTH) if text else None


@dataclass(frozen=True)
class _BodyProblem:
    """Why a body is not a usable JSON object, and whether reading it again may help."""

    text: str
    may_heal: bool


#: Empty, or not JSON: most likely cut short by a proxy or the network, so a read is worth trying again.
_NOT_JSON = _BodyProblem("is not a JSON object", may_heal=True)
_TOO_DEEP = _BodyProblem(f"is not a JSON object of at most {MAX_JSON_DEPTH} levels (arrays and objects)", False)


class _ConstantRefused(ValueError):
    pass


def _json_object(body: bytes) -> tuple[dict[str, Any] | None, _BodyProblem]:
    """The JSON object ``body`` holds, or ``None`` and why not (a complete document of the wrong kind won't heal)."""
    if not body.strip():
        return None, _NOT_JSON
    try:
        payload = json.loads(body, parse_constant=_refuse_constant)
    except _ConstantRefused as refused:
        return None, _BodyProblem(f"is not a JSON object: it holds {refused}, which JSON does not allow", False)
    except RecursionError:
        return None, _TOO_DEEP
    except ValueError:
        return None, _NOT_JSON
    if not isinstance(payload, dict):
        return None, _BodyProblem(f"is not a JSON object but a JSON {json_type(payload)}", False)
    if _deeper_than(payload, MAX_JSON_DEPTH):
        return None, _TOO_DEEP
    return payload, _NOT_JSON


def _refuse_constant(name: str) -> float:
    # NaN and Infinity are not JSON (RFC 8259); kept, they would make a job's to_dict() unstorable as JSON.
    raise _ConstantRefused(name)


def _deeper_than(value: object, depth: int) -> bool:
    """Whether arrays and objects nest more than ``depth`` levels deep in ``value`` (counted without recursion)."""
    level = [value]
    for _ in range(depth):
        level = [child for container in level for child in _containers_in(container)]
        if not level:
            return False
    return True


def _containers_in(value: object) -> Iterator[object]:
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return (item for item in items if isinstance(item, dict | list))

"""Turning an Airflow connection into ``ClientSettings``, with an error naming the connection for each mistake."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_ft.exceptions import FineTuningConfigError
from airflow_provider_ft.hooks._transport import ClientSettings, RetryPolicy
from airflow_provider_ft.vendors import DIALECTS_BY_CONN_TYPE

if TYPE_CHECKING:
    from airflow_provider_ft._compat import Connection

DEFAULT_TIMEOUT = 30.0
MAX_RETRIES_LIMIT = 10
_PREFIXED_EXTRA = re.compile(r"^extra__[a-z0-9_]+?__")


def settings_from_connection(conn: Connection) -> ClientSettings:
    """Validate ``conn`` and resolve the dialect, base URL, key, timeout and retry policy it describes."""
    conn_id = str(conn.conn_id)
    dialect_class = DIALECTS_BY_CONN_TYPE.get(conn.conn_type or "")
    if dialect_class is None:
        supported = ", ".join(sorted(DIALECTS_BY_CONN_TYPE))
        raise FineTuningConfigError(
            f"Connection {conn_id!r} has conn type {conn.conn_type!r}, which this provider cannot use; "
            f"set its type to one of: {supported}"
        )
    extras = _extras(conn_id, conn.extra)
    try:
        dialect = dialect_class(extras)
    except FineTuningConfigError as error:
        raise FineTuningConfigError(f"Connection {conn_id!r}: {error}") from None
    return ClientSettings(
        conn_id=conn_id,
        dialect=dialect,
        base_url=_base_url(conn_id, conn.host, dialect.default_base_url),
        api_key=_api_key(conn_id, conn.password, dialect.display_name),
        timeout=_positive_number(conn_id, dialect.extras, "timeout", DEFAULT_TIMEOUT),
        retry=RetryPolicy(
            max_retries=_retry_count(conn_id, dialect.extras),
            backoff_base=_positive_number(conn_id, dialect.extras, "backoff_base", RetryPolicy.backoff_base),
            retry_after_max=_positive_number(conn_id, dialect.extras, "retry_after_max", RetryPolicy.retry_after_max),
        ),
    )


def _extras(conn_id: str, extra: str | None) -> dict[str, Any]:
    if not extra:
        return {}
    try:
        parsed = json.loads(extra)
    except ValueError:
        raise FineTuningConfigError(f"Connection {conn_id!r}: its extra is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise FineTuningConfigError(f"Connection {conn_id!r}: its extra must be a JSON object")
    # Forms of Airflow 2 stored custom fields as extra__<conn type>__<name>; accept both spellings.
    return {_PREFIXED_EXTRA.sub("", str(key)): value for key, value in parsed.items()}


def _api_key(conn_id: str, password: str | None, vendor: str) -> str:
    if not password:
        raise FineTuningConfigError(
            f"Connection {conn_id!r} has no API key: put the {vendor} API key in the connection's password field"
        )
    if any(char.isspace() or not char.isprintable() or not char.isascii() for char in password):
        raise FineTuningConfigError(
            f"Connection {conn_id!r}: the API key contains whitespace, a line break or other characters an API key "
            "cannot have; paste it again without surrounding spaces or newlines"
        )
    from airflow_provider_ft._compat import mask_secret

    mask_secret(password)
    return password


def _base_url(conn_id: str, host: str | None, default: str) -> str:
    if not host or not host.strip():
        return default
    parts = urlsplit(host.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise FineTuningConfigError(
            f"Connection {conn_id!r}: host {host!r} is not a base URL; set it to a full http(s) URL such as "
            f"{default!r}, or leave it empty for that default"
        )
    if parts.username or parts.password:
        raise FineTuningConfigError(
            f"Connection {conn_id!r}: the host must not carry a user name or password (user:password@); "
            "put the API key in the password field and the bare URL in the host"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise FineTuningConfigError(f"Connection {conn_id!r}: host {host!r} has an invalid port") from None
    return host.strip().rstrip("/")


def _positive_number(conn_id: str, extras: Mapping[str, Any], name: str, default: float) -> float:
    value = extras.get(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise FineTuningConfigError(f"Connection {conn_id!r}: extra {name!r} must be a positive number of seconds")
    return number


def _retry_count(conn_id: str, extras: Mapping[str, Any]) -> int:
    value = extras.get("max_retries")
    if value is None or value == "":
        return RetryPolicy.max_retries
    try:
        count = int(value)
    except (TypeError, ValueError):
        count = -1
    if isinstance(value, bool) or not 0 <= count <= MAX_RETRIES_LIMIT:
        raise FineTuningConfigError(
            f"Connection {conn_id!r}: extra 'max_retries' must be a whole number from 0 to {MAX_RETRIES_LIMIT}"
        )
    return count

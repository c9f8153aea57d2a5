"""What an ``echo_key`` fault answers: the request's API key planted in every field the server controls.

Bodies are built with :data:`MARKER` where the key goes and encoded once; :func:`encode_planted` then writes the key
(JSON-escaped as a string needs, or with every character ``\\u``-escaped) in place of each marker.
"""

from __future__ import annotations

import json
from typing import Any

from airflow_provider_ft_emulator.exchange import Exchange, encode_json
from airflow_provider_ft_emulator.specimens import is_listing, job_answer, page_answer, shape_of, specimen_job
from airflow_provider_ft_emulator.vocabulary import WORDS

MARKER = "<<planted-key>>"
BEARER = f"Bearer {MARKER}"
MESSAGE = f"Incorrect API key provided: {MARKER}. The upstream saw Authorization: {BEARER}"
#: Fields left as they are, so that the body stays the shape it claims to be: object kinds and times.
_KEPT = frozenset({"object", "create_time", "end_time", "created_at", "updated_at", "started_at"})
#: Jobs on a planted page.
PAGE_JOBS = 2


def planted_text(key: str) -> str:
    """The ``text/plain`` body of the ``text`` variant."""
    return f"upstream rejected Authorization: Bearer {key}"


def planted_headers(key: str) -> dict[str, str]:
    """Response headers carrying the key: the request id, an echo of the credentials, a challenge."""
    return {
        "x-request-id": key,
        "x-upstream-authorization": f"Bearer {key}",
        "www-authenticate": f'Bearer realm="{key}"',
    }


def planted_shape(variant: str, status: int, exchange: Exchange) -> str:
    """``"error"``, ``"job"`` or ``"page"``: the variant's own, or for ``answer``/``escaped`` the one the request
    would get (an error for a status of 400 or more)."""
    if variant in ("error", "job", "page"):
        return variant
    if status >= 400:
        return "error"
    return "page" if is_listing(exchange) else "job"


def planted_body(exchange: Exchange, shape: str) -> dict[str, Any]:
    """The body of ``shape`` with :data:`MARKER` in every server-controlled field."""
    if shape == "error":
        return _error(exchange)
    if shape == "page":
        answer = page_answer(exchange, [_job(exchange) for _ in range(PAGE_JOBS)])
    else:
        answer = job_answer(exchange, _job(exchange))
    if "request_id" in answer:
        answer["request_id"] = MARKER
    return answer


def encode_planted(body: Any, key: str, *, escaped: bool = False) -> bytes:
    """``body`` as JSON with ``key`` in place of every marker.

    :param body: a body built with :data:`MARKER`
    :param key: what to plant
    :param escaped: write each character of the key as ``\\uXXXX`` (the decoded strings still hold the key)
    """
    written = _unicode_escaped(key) if escaped else json.dumps(key, ensure_ascii=False)[1:-1]
    return encode_json(body).replace(MARKER.encode(), written.encode())


def _unicode_escaped(text: str) -> str:
    units = text.encode("utf-16-be")
    return "".join(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2))


def _error(exchange: Exchange) -> dict[str, Any]:
    nested = {"authorization": BEARER, "request": {"headers": {"Authorization": BEARER}}}
    if shape_of(exchange) == "dashscope":
        return {"request_id": MARKER, "code": MARKER, "message": MESSAGE, "data": nested}
    return {"error": {"message": MESSAGE, "type": MARKER, "param": MARKER, "code": MARKER, "data": nested}}


def _job(exchange: Exchange) -> dict[str, Any]:
    words = WORDS[shape_of(exchange)]
    metadata = {"name": MARKER, "owner": BEARER}
    job = specimen_job(exchange, MARKER, status=words.succeeded, name=MARKER, metadata=metadata)
    # Fields a succeeded job leaves out or null, so that they carry the key too.
    if shape_of(exchange) == "dashscope":
        job.update(code=MARKER, message=MESSAGE)
    else:
        job.update(error={"code": MARKER, "message": MESSAGE, "param": MARKER}, validation_file=MARKER)
    planted: dict[str, Any] = _plant(job)
    return planted


def _plant(value: Any, field: str | None = None) -> Any:
    if isinstance(value, dict):
        return {name: _plant(item, name) for name, item in value.items()}
    if isinstance(value, list):
        return [_plant(item, field) for item in value]
    if isinstance(value, str) and field not in _KEPT and MARKER not in value:
        return MESSAGE if field == "message" else MARKER
    return value

"""Acting out the faults of a hostile server (:data:`~airflow_provider_ft_emulator.faults.HOSTILE_FAULT_KINDS`).

``drip`` and ``gzip`` (but not its ``bomb``) serve the request first, so the work is done as with ``latency``, and
then send that answer their way; the other kinds answer without touching any job.
"""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from urllib.parse import quote

from airflow_provider_ft_emulator.endless import endless_page
from airflow_provider_ft_emulator.exchange import JSON_TYPE, Captured, Exchange, Headers, encode_headers, encode_json
from airflow_provider_ft_emulator.faults import BOMB_SIZE, HANG_SECONDS, HUGE_SIZE, Fault
from airflow_provider_ft_emulator.floods import gzip_bomb, huge_job, huge_page, huge_text
from airflow_provider_ft_emulator.planted import (
    encode_planted,
    planted_body,
    planted_headers,
    planted_shape,
    planted_text,
)
from airflow_provider_ft_emulator.specimens import job_answer, job_id_in_path, shape_of, specimen_job
from airflow_provider_ft_emulator.vocabulary import WORDS

Handler = Callable[[Exchange], Awaitable[None]]
Action = Callable[[Fault, Exchange, Handler], Awaitable[None]]

#: Status of the ``error`` and ``text`` echoes given none: the key was "rejected".
ECHO_ERROR_STATUS = 401
REDIRECT_STATUS = 302
HUGE_TEXT_STATUS = 500
#: Bytes a ``drip`` of variant ``content_length`` announces beyond what it sends.
MISSING_BYTES = 1024
TEXT_TYPE = b"text/plain; charset=utf-8"


async def _echo_key(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    variant = fault.chosen_variant or "answer"
    key = exchange.presented_key
    if variant == "text":
        headers = {**planted_headers(key), **fault.headers}
        body = planted_text(key).encode()
        await exchange.respond(fault.status_or(ECHO_ERROR_STATUS), body, TEXT_TYPE, headers)
        return
    status = fault.status_or(ECHO_ERROR_STATUS if variant == "error" else 200)
    answer = planted_body(exchange, planted_shape(variant, status, exchange))
    escaped = variant == "escaped"
    headers = dict(fault.headers) if escaped else {**planted_headers(key), **fault.headers}
    await exchange.respond(status, encode_planted(answer, key, escaped=escaped), JSON_TYPE, headers)


async def _body(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    headers = encode_headers(fault.headers)
    if not any(name == b"content-type" for name, _ in headers):
        headers.insert(0, (b"content-type", JSON_TYPE))
    await exchange.respond_raw(fault.status_or(200), headers, fault.body or b"")


async def _drip(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    answer = await exchange.capture(handle)
    answer.status = fault.status_or(answer.status)
    variant = fault.chosen_variant
    if variant == "headers":
        await _drip_head(fault, exchange, answer)
    elif variant == "content_length":
        await _short_of_length(fault, exchange, answer)
    else:
        await _drip_body(fault, exchange, answer)


async def _drip_body(fault: Fault, exchange: Exchange, answer: Captured) -> None:
    headers = answer.headers_without(b"content-length") + encode_headers(fault.headers)
    await exchange.send({"type": "http.response.start", "status": answer.status, "headers": headers})
    deadline = time.monotonic() + HANG_SECONDS
    for index in range(len(answer.body)):
        if not await exchange.linger(fault.interval) or time.monotonic() > deadline:
            await exchange.drop()
            return
        await exchange.send({"type": "http.response.body", "body": answer.body[index : index + 1], "more_body": True})
    await exchange.send({"type": "http.response.body", "body": b"", "more_body": False})


async def _drip_head(fault: Fault, exchange: Exchange, answer: Captured) -> None:
    # uvicorn writes a response head in one piece, so this one goes straight to the socket, below ASGI.
    headers = answer.headers_without(b"content-length", b"connection") + encode_headers(fault.headers)
    headers += [
        (b"x-request-id", exchange.request_id.encode()),
        (b"content-length", str(len(answer.body)).encode()),
        (b"connection", b"close"),
    ]
    phrase = HTTPStatus(answer.status).phrase if answer.status in HTTPStatus._value2member_map_ else ""
    lines = [
        f"HTTP/1.1 {answer.status} {phrase}\r\n".encode(),
        *(name + b": " + value + b"\r\n" for name, value in headers),
    ]
    exchange.mark_started(answer.status)
    deadline = time.monotonic() + HANG_SECONDS
    for line in [*lines, b"\r\n"]:
        if not exchange.write_to_socket(line):
            return
        if not await exchange.linger(fault.interval) or time.monotonic() > deadline:
            await exchange.drop()
            return
    exchange.write_to_socket(bytes(answer.body))
    await exchange.drop(flush=True)


async def _short_of_length(fault: Fault, exchange: Exchange, answer: Captured) -> None:
    announced = str(len(answer.body) + MISSING_BYTES).encode()
    headers = [
        (b"content-length", announced),
        *answer.headers_without(b"content-length"),
        *encode_headers(fault.headers),
    ]
    await exchange.send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await exchange.send({"type": "http.response.body", "body": bytes(answer.body), "more_body": True})
    await exchange.hold(HANG_SECONDS)
    await exchange.drop()


async def _gzip(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    variant = fault.chosen_variant
    if variant == "bomb":
        headers = [(b"content-type", JSON_TYPE), (b"content-encoding", b"gzip"), *encode_headers(fault.headers)]
        await exchange.respond_raw(fault.status_or(200), headers, gzip_bomb(fault.size_or(BOMB_SIZE)))
        return
    answer = await exchange.capture(handle)
    if variant == "deflate":
        encoding, body = b"deflate", zlib.compress(bytes(answer.body))
    else:
        encoding, body = b"gzip", gzip.compress(bytes(answer.body), mtime=0)
    headers = answer.headers_without(b"content-length", b"content-encoding")
    headers += [(b"content-encoding", encoding), *encode_headers(fault.headers)]
    await exchange.respond_raw(fault.status_or(answer.status), headers, body)


async def _huge(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    size = fault.size_or(HUGE_SIZE)
    variant = fault.chosen_variant
    if variant == "error_text":
        headers: Headers = [(b"content-type", TEXT_TYPE), *encode_headers(fault.headers)]
        await exchange.stream(fault.status_or(HUGE_TEXT_STATUS), headers, huge_text(size))
        return
    chunks = huge_page(exchange, size) if variant == "page" else huge_job(exchange, size)
    headers = [(b"content-type", JSON_TYPE), *encode_headers(fault.headers)]
    await exchange.stream(fault.status_or(200), headers, chunks)


async def _endless_pages(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    page = endless_page(exchange, fault.chosen_variant or "fresh")
    await exchange.respond_json(fault.status_or(200), page, fault.headers)


async def _redirect(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    headers = dict(fault.headers)
    if not any(name.lower() == "location" for name in headers):
        headers["Location"] = redirect_target(exchange)
    body = b""
    if fault.chosen_variant == "job":
        job_id = job_id_in_path(exchange) or "ftjob-redirected000000000000"
        job = specimen_job(exchange, job_id, status=WORDS[shape_of(exchange)].succeeded)
        body = encode_json(job_answer(exchange, job))
    await exchange.respond(fault.status_or(REDIRECT_STATUS), body, JSON_TYPE, headers)


def redirect_target(exchange: Exchange) -> str:
    """Where a redirect points by default: the same path under ``/elsewhere`` on this server.

    Outside both mounts, so a client that follows it shows up in the request log with ``vendor=None``. The path is
    the one the client sent, still percent-encoded: a header value must be latin-1.
    """
    raw_path = exchange.scope.get("raw_path")
    path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else quote(exchange.scope["path"])
    return f"/elsewhere{path}"


ACTIONS: dict[str, Action] = {
    "echo_key": _echo_key,
    "body": _body,
    "drip": _drip,
    "gzip": _gzip,
    "huge": _huge,
    "endless_pages": _endless_pages,
    "redirect": _redirect,
}

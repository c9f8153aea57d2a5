"""Raw ASGI front door: records each request, checks the bearer key, and acts out injected faults."""

from __future__ import annotations

import hmac
import json
import uuid
from typing import Any
from urllib.parse import parse_qsl

from airflow_provider_ft_emulator.acting import act_out
from airflow_provider_ft_emulator.connections import SocketRegistry
from airflow_provider_ft_emulator.errors import ApiFailure, error_body, resource_not_found, unauthorized
from airflow_provider_ft_emulator.exchange import ASGIApp, Exchange, Receive, Scope, Send
from airflow_provider_ft_emulator.faults import FaultBook
from airflow_provider_ft_emulator.recording import LogEntry, RequestLog
from airflow_provider_ft_emulator.state import EmulatorState
from airflow_provider_ft_emulator.vocabulary import MOUNTS, VENDORS, Vendor

#: Bodies up to this size are read whole before the request is served (and recorded, parsed as JSON); the rest of
#: a longer one (an upload) streams through to the application, so it is never held in memory.
BUFFER_LIMIT = 1024 * 1024
#: Bytes of a body kept in the request log.
RECORDED_PREFIX = 64 * 1024


def split_path(path: str) -> tuple[Vendor | None, str]:
    """The vendor whose mount serves ``path`` and the path relative to that mount."""
    for vendor in VENDORS:
        prefix = MOUNTS[vendor]
        if path == prefix or path.startswith(prefix + "/"):
            return vendor, path[len(prefix) :] or "/"
    return None, path


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class EmulatorMiddleware:
    """Wraps the FastAPI app; everything a test can observe about a request passes through here."""

    def __init__(
        self, app: ASGIApp, *, state: EmulatorState, log: RequestLog, faults: FaultBook, sockets: SocketRegistry
    ) -> None:
        self.app = app
        self._state = state
        self._api_key = state.settings.api_key.encode()
        self._log = log
        self._faults = faults
        self._sockets = sockets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        vendor, path = split_path(scope["path"])
        body, more_body = await _read_head(receive)
        headers = _headers(scope)
        # Neither credential header is kept in the log; Azure takes its key in api-key (or, on v1, as a bearer).
        bearer = bearer_token(headers.pop("authorization", None))
        api_key_header = headers.pop("api-key", None)
        presented = (api_key_header or bearer) if vendor == "azure" else bearer
        authorized = presented is not None and hmac.compare_digest(presented.encode(), self._api_key)
        request_id = str(uuid.uuid4())
        scope.setdefault("state", {}).update(request_id=request_id, vendor=vendor)
        parsed = None if more_body else _parse_json(body)
        entry = self._log.start(LogEntry(vendor, scope["method"], path, _query(scope), headers, parsed, authorized))
        entry.body_size, entry.raw_body = len(body), body[:RECORDED_PREFIX]
        exchange = Exchange(
            scope,
            receive,
            send,
            body=body,
            more_body=more_body,
            vendor=vendor,
            request_id=request_id,
            presented_key=presented or "",
            entry=entry,
            state=self._state,
            sockets=self._sockets,
        )

        async def handle(ex: Exchange) -> None:
            await self._serve(ex, authorized=authorized, presented=presented)

        fault = self._faults.take(vendor, scope["method"], path)
        try:
            if fault is None:
                await handle(exchange)
                return
            entry.fault = fault.kind
            await act_out(fault, exchange, handle)
        finally:
            exchange.close()
            self._log.finish(entry)

    async def _serve(self, exchange: Exchange, *, authorized: bool, presented: str | None) -> None:
        vendor = exchange.vendor
        if vendor is not None and not authorized:
            error = unauthorized(vendor, presented)
            await exchange.respond_json(401, error_body(vendor, exchange.request_id, error))
            return
        refused = _unversioned(vendor, exchange.entry.path, exchange.entry.query)
        if refused is not None:
            await exchange.respond_json(refused.status, error_body(vendor, exchange.request_id, refused))
            return
        await self.app(exchange.scope, exchange.receive, exchange.send)


def _unversioned(vendor: Vendor | None, path: str, query: dict[str, str]) -> ApiFailure | None:
    """Azure's 404 for a request to the dated API without a usable ``api-version`` (the v1 API takes none)."""
    if vendor != "azure" or path == "/v1" or path.startswith("/v1/"):
        return None
    version = query.get("api-version", "")
    if len(version) >= 10 and version[:4].isdigit() and version[4] == "-":
        return None
    return resource_not_found()


async def _read_head(receive: Receive) -> tuple[bytes, bool]:
    """The body, or its first :data:`BUFFER_LIMIT` bytes or so, and whether more of it is still to come."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False
        if size >= BUFFER_LIMIT:
            return b"".join(chunks), True


def _headers(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _query(scope: Scope) -> dict[str, str]:
    return dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))


def _parse_json(body: bytes) -> Any:
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None

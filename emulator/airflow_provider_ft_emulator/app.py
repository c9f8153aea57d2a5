"""The ASGI application: the vendor routers, vendor-shaped error handlers, and the front-door middleware."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from airflow_provider_ft_emulator import (
    azure_api,
    dashscope_api,
    dashscope_files,
    openai_api,
    openai_files,
    together_api,
)
from airflow_provider_ft_emulator.connections import SocketRegistry
from airflow_provider_ft_emulator.errors import ApiFailure, error_body, not_found_route
from airflow_provider_ft_emulator.exchange import ASGIApp
from airflow_provider_ft_emulator.faults import FaultBook
from airflow_provider_ft_emulator.middleware import EmulatorMiddleware, split_path
from airflow_provider_ft_emulator.recording import RequestLog
from airflow_provider_ft_emulator.routing import request_id
from airflow_provider_ft_emulator.state import EmulatorState
from airflow_provider_ft_emulator.vocabulary import MOUNTS


def build_app(state: EmulatorState, log: RequestLog, faults: FaultBook, sockets: SocketRegistry) -> ASGIApp:
    """FastAPI app for every vendor, wrapped in :class:`EmulatorMiddleware`."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False)
    app.state.emulator = state
    app.include_router(dashscope_api.router, prefix=MOUNTS["dashscope"])
    app.include_router(dashscope_files.router, prefix=MOUNTS["dashscope"])
    app.include_router(openai_api.router, prefix=MOUNTS["openai"])
    app.include_router(openai_files.router, prefix=MOUNTS["openai"])
    # Azure OpenAI: the OpenAI wire and its own delete, on the dated API and on the v1 API.
    for prefix in (MOUNTS["azure"], f"{MOUNTS['azure']}/v1"):
        app.include_router(azure_api.router, prefix=prefix)
        app.include_router(openai_api.router, prefix=prefix)
        app.include_router(openai_files.router, prefix=prefix)
    app.include_router(together_api.router, prefix=MOUNTS["together"])
    app.add_exception_handler(ApiFailure, _api_failure)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _internal_error)
    return EmulatorMiddleware(app, state=state, log=log, faults=faults, sockets=sockets)


def _render(request: Request, error: ApiFailure) -> JSONResponse:
    vendor, _ = split_path(request.url.path)
    return JSONResponse(error_body(vendor, request_id(request), error), status_code=error.status)


async def _api_failure(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiFailure)
    return _render(request, exc)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Unknown paths and methods: 404 in the vendor's shape (OpenAI's ``Invalid URL (METHOD /v1/...)``)."""
    assert isinstance(exc, HTTPException)
    vendor, path = split_path(request.url.path)
    if exc.status_code in (404, 405):
        shown = f"/v1{path}" if vendor == "openai" else path  # Azure's 404 names no path
        return _render(request, not_found_route(vendor, request.method, shown))
    return _render(request, ApiFailure(exc.status_code, None, str(exc.detail)))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    return _render(request, ApiFailure(400, "InvalidParameter" if _is_dashscope(request) else None, str(exc)))


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    code = "InternalError" if _is_dashscope(request) else "server_error"
    return _render(request, ApiFailure(500, code, "The emulator failed to handle the request.", kind="server_error"))


def _is_dashscope(request: Request) -> bool:
    return split_path(request.url.path)[0] == "dashscope"

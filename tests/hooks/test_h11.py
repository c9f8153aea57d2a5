"""The triggers' HTTP client (h11 over asyncio streams): keep-alive, a connection the server dropped, proxies.

Answers of every shape a hostile server sends are covered for it by tests/reliability (the asyncio rows); these
are the client's own duties, against the emulator or a small loopback server written here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import httpx
import pytest

from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
from airflow_provider_ft.transport.h11client import H11Client, proxy_for
from airflow_provider_ft_emulator import FineTuningEmulator

if TYPE_CHECKING:
    from tests.conftest import Vendor

BODY = b'{"ok": true}'


async def test_polls_of_one_trigger_reuse_one_connection(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str
) -> None:
    job_id = emulator.seed_job(vendor.name)
    opened = emulator.connections_opened
    hook = FineTuningHook(connection)
    async with hook.async_transport() as transport:
        for _ in range(20):
            await hook.aget_job(transport, job_id)
    assert emulator.connections_opened - opened == 1


async def answer_then_hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer one request as if the connection stayed open, then close it (as servers do with idle connections)."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(BODY), BODY)
    )
    await writer.drain()
    writer.close()


@pytest.fixture
async def hanging_up_server() -> AsyncIterator[tuple[str, list[int]]]:
    accepted: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        await answer_then_hang_up(reader, writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}/v1", accepted


@pytest.mark.parametrize("pause", [0.0, 0.2], ids=["at once", "after the close arrived"])
async def test_a_connection_the_server_closed_is_replaced_for_the_next_request(
    hanging_up_server: tuple[str, list[int]], pause: float
) -> None:
    base_url, accepted = hanging_up_server
    client = H11Client(base_url, {"Accept": "application/json"})
    try:
        for _ in range(3):
            async with client.stream("GET", f"{base_url}/fine_tuning/jobs/x", timeout=2.0) as answer:
                assert answer.status_code == 200
                assert b"".join([chunk async for chunk in answer.aiter_raw()]) == BODY
            await asyncio.sleep(pause)
    finally:
        await client.aclose()
    assert len(accepted) == 3, "each request after the server hung up went on a new connection"


def test_a_proxy_set_in_the_environment_is_found_and_no_proxy_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert proxy_for("https://api.openai.com/v1") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert proxy_for("https://api.openai.com/v1") == "http://proxy.example:3128"
    assert proxy_for("http://127.0.0.1:8089/openai/v1") is None
    monkeypatch.setenv("NO_PROXY", "api.openai.com")
    assert proxy_for("https://api.openai.com/v1") is None


async def test_behind_a_proxy_the_triggers_use_httpx_which_knows_proxies(
    emulator: FineTuningEmulator, vendor: Vendor, connection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = FineTuningHook(connection)
    async with hook.async_transport() as transport:
        assert isinstance(transport._new_client(), H11Client)
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        proxied = transport._new_client()
        assert isinstance(proxied, httpx.AsyncClient)
        await proxied.aclose()

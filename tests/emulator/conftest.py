"""Fixtures for the emulator tests: one shared server (reset per test), authenticated sessions, the contract."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

from airflow_provider_ft.vendors.dashscope import text_lines
from airflow_provider_ft_emulator import FineTuningEmulator
from tests.contracts.exchanges import OPENAI_ERROR_SCHEMA

API_KEY = "test-key-0123456789abcdef"
CONTRACT = Path(__file__).parents[1] / "contracts" / "openai-fine-tuning.openapi.yaml"

DASHSCOPE_ERROR_KEYS = {"request_id", "code", "message"}


def dashscope_lines(output: dict[str, Any]) -> list[str]:
    """The lines of a DashScope logs answer's ``output``, in either form it sends them (an array, or one string)."""
    logs = output["logs"]
    return text_lines(logs) if isinstance(logs, str) else list(logs)


#: A small valid fine-tuning file (two chat examples).
TRAINING_JSONL = (
    b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
    b'{"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}\n'
)


@pytest.fixture(scope="session")
def shared_emulator() -> Iterator[FineTuningEmulator]:
    with FineTuningEmulator(api_key=API_KEY) as emu:
        yield emu


@pytest.fixture
def emulator(shared_emulator: FineTuningEmulator) -> Iterator[FineTuningEmulator]:
    shared_emulator.reset()
    yield shared_emulator
    shared_emulator.reset()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """A keep-alive session that sends the right key."""
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {API_KEY}"
        yield session


@pytest.fixture
def ds(emulator: FineTuningEmulator) -> str:
    return emulator.url("dashscope")


@pytest.fixture
def oa(emulator: FineTuningEmulator) -> str:
    return emulator.url("openai")


def _contract(server_url: str, extra_statuses: tuple[str, ...] = ()) -> OpenAPI:
    spec = yaml.safe_load(CONTRACT.read_text())
    spec["servers"] = [{"url": server_url}]
    if extra_statuses:
        status = spec["components"]["schemas"]["FineTuningJob"]["properties"]["status"]
        status["enum"] = [*status["enum"], *extra_statuses]
    # The published spec uses OpenAPI 3.0 keywords (boolean exclusiveMinimum) in a 3.1 document, which the
    # strict spec validator rejects; schema validation of requests and responses still works.
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


@pytest.fixture(scope="session")
def _contracts(shared_emulator: FineTuningEmulator) -> dict[str, OpenAPI]:
    url = shared_emulator.url("openai")
    return {"strict": _contract(url), "paused": _contract(url, ("paused",))}


Validator = Callable[..., Any]


@pytest.fixture
def openai_spec(_contracts: dict[str, OpenAPI]) -> OpenAPI:
    """The OpenAI contract, with its server set to the shared emulator."""
    return _contracts["strict"]


@pytest.fixture
def openai_contract(_contracts: dict[str, OpenAPI]) -> Validator:
    """``validate(response, allow_paused=False)``: check a real response against the OpenAI contract."""

    def validate(response: requests.Response, *, allow_paused: bool = False) -> Any:
        body = response.json()
        if response.status_code >= 400:
            jsonschema.validate(body, OPENAI_ERROR_SCHEMA)
            return body
        api = _contracts["paused" if allow_paused else "strict"]
        api.validate_response(RequestsOpenAPIRequest(response.request), RequestsOpenAPIResponse(response))
        return body

    return validate


@pytest.fixture
def dashscope_error() -> Callable[[requests.Response, int, str], dict[str, Any]]:
    """``check(response, status, code)``: the DashScope error envelope, returned as a dict."""

    def check(response: requests.Response, status: int, code: str) -> dict[str, Any]:
        assert response.status_code == status, response.text
        body = response.json()
        assert set(body) == DASHSCOPE_ERROR_KEYS
        assert body["code"] == code
        assert body["request_id"] == response.headers["x-request-id"]
        return dict(body)

    return check

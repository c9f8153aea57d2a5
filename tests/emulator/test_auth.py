"""Bearer-key checks: vendor-shaped 401s, redaction, and the key never leaving the emulator."""

from __future__ import annotations

import pytest
import requests

from airflow_provider_ft_emulator import FineTuningEmulator

API_KEY = "test-key-0123456789abcdef"  # the key of the shared emulator (conftest.py)
WRONG_KEY = "sk-abcdefghijklmnop-SECRET-wxyz"
SHORT_KEY = "short-key"


def _headers(value: str | None) -> dict[str, str]:
    return {} if value is None else {"Authorization": value}


@pytest.mark.parametrize("authorization", [None, f"Bearer {WRONG_KEY}", f"Basic {API_KEY}", "Bearer ", API_KEY])
def test_dashscope_rejects_bad_credentials(ds: str, dashscope_error, authorization: str | None) -> None:
    response = requests.get(f"{ds}/fine-tunes", headers=_headers(authorization))
    body = dashscope_error(response, 401, "InvalidApiKey")
    assert body["message"] == "Invalid API-key provided."


@pytest.mark.parametrize("authorization", [None, f"Bearer {WRONG_KEY}", f"Token {API_KEY}"])
def test_openai_rejects_bad_credentials(oa: str, openai_contract, authorization: str | None) -> None:
    response = requests.get(f"{oa}/fine_tuning/jobs", headers=_headers(authorization))
    assert response.status_code == 401
    error = openai_contract(response)["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", None, "invalid_api_key")


def test_openai_redacts_the_presented_key(oa: str) -> None:
    long = requests.get(f"{oa}/fine_tuning/jobs", headers=_headers(f"Bearer {WRONG_KEY}"))
    assert "Incorrect API key provided: sk-***wxyz." in long.json()["error"]["message"]
    short = requests.get(f"{oa}/fine_tuning/jobs", headers=_headers(f"Bearer {SHORT_KEY}"))
    assert "Incorrect API key provided: ***." in short.json()["error"]["message"]


def test_key_is_never_echoed_or_recorded(emulator: FineTuningEmulator, ds: str, oa: str) -> None:
    assert emulator.api_key == API_KEY
    job_id = emulator.seed_job("openai")
    responses = [
        requests.get(f"{oa}/fine_tuning/jobs/{job_id}", headers=_headers(f"Bearer {WRONG_KEY}")),
        requests.get(f"{ds}/fine-tunes", headers=_headers(f"Bearer {WRONG_KEY}")),
        requests.get(f"{oa}/fine_tuning/jobs/{job_id}", headers=_headers(f"Bearer {API_KEY}")),
        requests.get(f"{oa}/nowhere", headers=_headers(f"Bearer {API_KEY}")),
    ]
    for response in responses:
        dumped = response.text + repr(dict(response.headers))
        assert WRONG_KEY not in dumped
        assert API_KEY not in dumped
        assert "SECRET" not in dumped
    records = emulator.requests
    assert [r.authorized for r in records] == [False, False, True, True]
    assert all("authorization" not in r.headers for r in records)
    assert WRONG_KEY not in repr(records)
    assert API_KEY not in repr(records)


def test_auth_is_checked_before_routing(ds: str, oa: str, dashscope_error) -> None:
    dashscope_error(requests.get(f"{ds}/no/such/route"), 401, "InvalidApiKey")
    assert requests.get(f"{oa}/no/such/route").status_code == 401


def test_scheme_is_case_insensitive(ds: str) -> None:
    assert requests.get(f"{ds}/fine-tunes", headers=_headers(f"bearer {API_KEY}")).status_code == 200

"""What docs/connections/README.md ("Testing a connection") says of Airflow 3.3's connection test, against the REST
API in process (the route the UI's Test button calls), with a connection of ours stored in the metadata database.

The UI's list button posts the stored connection with ``port: Number(connection.port)`` (0 for none) and the
masked password ``***`` (airflow/ui ``TestConnectionButton``, read in the 3.3.2 bundle); the API server reuses the
stored key only when host and port are the stored ones, and 0 is not NULL: 400. Fixed upstream after 3.3.2
(apache/airflow#73298): when this test starts failing on a newer Airflow, the page's table needs an update.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ft_emulator import FineTuningEmulator
from tests.airflow_versions import AIRFLOW_VERSION
from tests.conftest import API_KEY

pytestmark = pytest.mark.skipif(
    not (3, 3) <= (AIRFLOW_VERSION.major, AIRFLOW_VERSION.minor) < (3, 4),
    reason="documents the connection test route and UI of Airflow 3.3",
)


@pytest.fixture
def api(airflow_db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Airflow's public REST API in process: every caller an admin, connection testing enabled."""
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    monkeypatch.setenv("AIRFLOW__CORE__TEST_CONNECTION", "Enabled")
    with TestClient(create_app(apps="core")) as client:
        yield client
        for connection in client.get("/api/v2/connections", params={"limit": 100}).json()["connections"]:
            if connection["connection_id"].startswith("ft_doc_"):
                client.delete(f"/api/v2/connections/{connection['connection_id']}")


def stored(api: Any, emulator: FineTuningEmulator, conn_id: str, **fields: Any) -> dict[str, Any]:
    """A connection of ours created through the REST API, as the API then serves it (what the UI holds)."""
    body = {"connection_id": conn_id, "conn_type": "openaifinetuning", "host": emulator.url("openai")}
    created = api.post("/api/v2/connections", json={**body, "password": API_KEY, **fields})
    assert created.status_code == 201, created.text
    served: dict[str, Any] = api.get(f"/api/v2/connections/{conn_id}").json()
    assert served["password"] == "***"
    return served


def ui_list_test_body(served: dict[str, Any]) -> dict[str, Any]:
    """The body the 3.3 UI's list button posts for a connection it was served."""
    return {
        "conn_type": served["conn_type"],
        "connection_id": served["connection_id"],
        "description": served["description"] or "",
        "extra": served["extra"] or "{}",
        "host": served["host"] or "",
        "login": served["login"] or "",
        "password": served["password"] or "",
        "port": served["port"] or 0,  # Number(null) is 0
        "schema": served["schema"] or "",
    }


def test_the_ui_list_test_of_a_connection_without_a_port_is_a_bad_request(
    api: Any, emulator: FineTuningEmulator
) -> None:
    served = stored(api, emulator, "ft_doc_no_port")
    assert served["port"] is None

    answer = api.post("/api/v2/connections/test", json=ui_list_test_body(served))

    assert answer.status_code == 400
    assert "host or port to test differs from the stored connection" in answer.json()["detail"]


def test_the_ui_list_test_passes_for_a_connection_stored_with_port_0(api: Any, emulator: FineTuningEmulator) -> None:
    served = stored(api, emulator, "ft_doc_port_0", port=0)

    answer = api.post("/api/v2/connections/test", json=ui_list_test_body(served))

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": True, "message": f"Connected to OpenAI at {emulator.url('openai')}"}


def test_the_rest_api_tests_a_stored_connection_from_its_id_and_type(api: Any, emulator: FineTuningEmulator) -> None:
    stored(api, emulator, "ft_doc_by_id")

    answer = api.post(
        "/api/v2/connections/test", json={"connection_id": "ft_doc_by_id", "conn_type": "openaifinetuning"}
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] is True
    assert API_KEY not in json.dumps(answer.json())


def test_testing_is_off_unless_enabled(api: Any, emulator: FineTuningEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    stored(api, emulator, "ft_doc_disabled")
    monkeypatch.delenv("AIRFLOW__CORE__TEST_CONNECTION")

    answer = api.post(
        "/api/v2/connections/test", json={"connection_id": "ft_doc_disabled", "conn_type": "openaifinetuning"}
    )

    assert answer.status_code == 403
    assert "Testing connections is disabled" in answer.json()["detail"]

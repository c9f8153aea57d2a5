"""Scenario 7: the provider's connections through Airflow's own paths, the REST API and its connection test.

For each connection type of the provider (DashScope, OpenAI, Azure OpenAI, Together AI), a connection is created
with ``POST /api/v2/connections`` and read back, then tested with ``POST /api/v2/connections/test`` (what the UI's
button calls; Airflow tests in the API server's process) as it was stored, with a wrong key, and malformed three
ways. The answers must say clearly what is wrong, without the key. Skipped unless ``FT_SYSTEM_TESTS=1``; the
cluster is the session's.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import API_KEY, CONN_TYPES

if TYPE_CHECKING:
    from airflow_provider_ft_emulator import FineTuningEmulator
    from tests.system.harness import AirflowCluster

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(os.environ.get("FT_SYSTEM_TESTS") != "1", reason="system test: set FT_SYSTEM_TESTS=1 to run"),
    pytest.mark.timeout(300),
]

WRONG_KEY = "sk-wrong-0123456789abcdef"
#: A malformed connection (what is changed in a good one) and a word its test's answer must have.
MALFORMED: dict[str, tuple[dict[str, Any], str]] = {
    "no key": ({"password": ""}, "key"),
    "a host that is no URL": ({"host": "ftp://example.invalid/api"}, "http"),
    "an extra of the wrong type": ({"extra": json.dumps({"timeout": "soon"})}, "timeout"),
}


def good_connection(emulator: FineTuningEmulator, vendor: str) -> dict[str, Any]:
    extra = json.dumps({"timeout": 5, "max_retries": 1, "backoff_base": 0.1})
    return {
        "connection_id": f"ft_rest_{vendor}",
        "conn_type": CONN_TYPES[vendor],
        "host": emulator.url(vendor),
        "password": API_KEY,
        "extra": extra,
    }


@pytest.mark.scenario(
    "7. Connections through Airflow's own paths",
    f"each of the {len(CONN_TYPES)} connection types created with the REST API, then POST /api/v2/connections/test: "
    "good, wrong key, 3 malformed",
)
def test_connections_are_created_and_tested_through_the_rest_api(
    cluster: AirflowCluster, emulator: FineTuningEmulator, scenario_notes: list[str]
) -> None:
    answers: dict[str, tuple[bool, str]] = {}
    started = time.monotonic()
    for vendor in CONN_TYPES:
        connection = good_connection(emulator, vendor)
        cluster.api("POST", "/connections", json=connection)
        stored = cluster.api("GET", f"/connections/{connection['connection_id']}")
        assert (stored["conn_type"], stored["host"]) == (connection["conn_type"], connection["host"])
        assert API_KEY not in json.dumps(stored), "the REST API shows the stored key"

        # Under an id with no stored connection: Airflow fills a field left empty from the stored one of that id.
        unsaved = {**connection, "connection_id": f"ft_unsaved_{vendor}"}
        cases = {"good": connection, "wrong key": {**unsaved, "password": WRONG_KEY}}
        cases |= {name: {**unsaved, **change} for name, (change, _) in MALFORMED.items()}
        for case, body in cases.items():
            answer = cluster.api("POST", "/connections/test", json=body)
            answers[f"{vendor}: {case}"] = (answer["status"], answer["message"])
            assert API_KEY not in answer["message"]
            assert WRONG_KEY not in answer["message"]

    for vendor in CONN_TYPES:
        status, message = answers[f"{vendor}: good"]
        assert status is True, message
        assert message.startswith("Connected to "), message
        assert emulator.url(vendor) in message
        status, message = answers[f"{vendor}: wrong key"]
        assert status is False, message
        assert "401" in message or "key" in message.lower(), message
        for case, (_, word) in MALFORMED.items():
            status, message = answers[f"{vendor}: {case}"]
            assert status is False, f"{case}: {message}"
            assert word in message.lower(), f"{case}: {message}"
    took = time.monotonic() - started
    wrong_key = answers["dashscope: wrong key"][1]
    scenario_notes.append(f"{len(answers)} tests answered as expected in {took:.1f} s; a wrong key: {wrong_key[:90]!r}")

"""The emulator as users test their DAGs with it: the ``ft_emulator`` pytest fixture and ``emulated()``."""

from __future__ import annotations

import os
from contextlib import closing

import pytest

from airflow_provider_ft.hooks.fine_tuning import FineTuningHook
from airflow_provider_ft.jobs import JobStatus
from airflow_provider_ft_emulator import FineTuningEmulator, emulated
from airflow_provider_ft_emulator.testing import DEFAULT_CONNECTIONS

VARIABLES = [f"AIRFLOW_CONN_{conn_id.upper()}" for conn_id, _ in DEFAULT_CONNECTIONS.values()]


@pytest.mark.parametrize("vendor", sorted(DEFAULT_CONNECTIONS))
def test_the_fixture_points_each_default_connection_at_the_emulator(
    ft_emulator: FineTuningEmulator, vendor: str
) -> None:
    job_id = ft_emulator.seed_job(vendor, runs_for=None)
    conn_id, _ = DEFAULT_CONNECTIONS[vendor]
    with closing(FineTuningHook(conn_id)) as hook:
        assert hook.get_job(job_id).status is JobStatus.RUNNING
    assert [request.path.rsplit("/", 1)[-1] for request in ft_emulator.requests] == [job_id]


def test_the_fixture_starts_each_test_empty(ft_emulator: FineTuningEmulator) -> None:
    assert ft_emulator.jobs("openai") == []
    assert ft_emulator.requests == []


def test_emulated_sets_the_connections_for_the_block_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(VARIABLES[0], "theirs")
    with emulated(api_key="sk-block") as emulator:
        job_id = emulator.seed_job("together", runs_for=None)
        with closing(FineTuningHook("together_default")) as hook:
            assert hook.get_job(job_id).id == job_id
        assert all(name in os.environ for name in VARIABLES)
    assert os.environ[VARIABLES[0]] == "theirs"
    assert [name for name in VARIABLES[1:] if name in os.environ] == []

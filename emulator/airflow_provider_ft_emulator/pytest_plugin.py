"""pytest fixtures to test your own DAGs against the emulator; installed with the package (entry point ``pytest11``).

- ``ft_emulator``: the session's emulator, emptied before each test, with the default connection of each API
  (``dashscope_default``, ``openai_default``, ``azure_openai_default``, ``together_default``) pointing at it.
- ``ft_emulator_server``: the session's emulator itself, started once, for fixtures of your own.

``dag.test()`` also needs a metadata database; that is Airflow's to set up (a throwaway ``AIRFLOW_HOME``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_ft_emulator.server import FineTuningEmulator
from airflow_provider_ft_emulator.testing import connections_to


@pytest.fixture(scope="session")
def ft_emulator_server() -> Iterator[FineTuningEmulator]:
    """One emulator for the whole session, on a free loopback port."""
    with FineTuningEmulator() as server:
        yield server


@pytest.fixture
def ft_emulator(ft_emulator_server: FineTuningEmulator) -> Iterator[FineTuningEmulator]:
    """The session's emulator, emptied, with the default connections pointing at it for this test."""
    ft_emulator_server.reset()
    with connections_to(ft_emulator_server):
        yield ft_emulator_server
    ft_emulator_server.reset()

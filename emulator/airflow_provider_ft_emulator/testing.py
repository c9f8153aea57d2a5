"""Point Airflow connections at an emulator for the length of a ``with`` block, as moto's ``mock_aws`` does for AWS.

    with emulated() as emulator:                 # a fresh emulator on a free loopback port
        job_id = emulator.seed_job("openai", status="running")
        dag.test()                               # openai_default, dashscope_default, ... now reach the emulator

``pytest_plugin`` offers the same as the ``ft_emulator`` fixture. Nothing here imports Airflow: the connections are
``AIRFLOW_CONN_*`` environment variables, which every Airflow version reads, restored when the block ends.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from airflow_provider_ft_emulator.server import FineTuningEmulator

#: The default connection of each emulated API, and its connection type.
DEFAULT_CONNECTIONS: Mapping[str, tuple[str, str]] = {
    "dashscope": ("dashscope_default", "dashscope"),
    "openai": ("openai_default", "openaifinetuning"),
    "azure": ("azure_openai_default", "azureopenaifinetuning"),
    "together": ("together_default", "togetherfinetuning"),
}
#: Retries that fail fast: a test that meets a fault should not wait for production backoffs.
FAST_RETRIES: Mapping[str, Any] = {"max_retries": 1, "backoff_base": 0.01}


def connection_variables(emulator: FineTuningEmulator, extra: Mapping[str, Any] = FAST_RETRIES) -> dict[str, str]:
    """The ``AIRFLOW_CONN_*`` variables that point each API's default connection at ``emulator``.

    :param emulator: a running emulator
    :param extra: the connections' extra fields (default: fast retries)
    """
    variables = {}
    for vendor, (conn_id, conn_type) in DEFAULT_CONNECTIONS.items():
        connection = {"conn_type": conn_type, "password": emulator.api_key, "host": emulator.url(vendor)}
        variables[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps({**connection, "extra": dict(extra)})
    return variables


@contextmanager
def connections_to(emulator: FineTuningEmulator, extra: Mapping[str, Any] = FAST_RETRIES) -> Iterator[None]:
    """Inside the block, the default connections reach ``emulator``; after it, the environment is as it was."""
    variables = connection_variables(emulator, extra)
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def emulated(**options: Any) -> Iterator[FineTuningEmulator]:
    """A running emulator with the default connections pointing at it, stopped when the block ends.

    :param options: ``FineTuningEmulator`` arguments (``api_key``, ``time_scale``, ...)
    """
    with FineTuningEmulator(**options) as emulator, connections_to(emulator):
        yield emulator

"""A stateful emulator of the DashScope, OpenAI, Azure OpenAI and Together AI fine-tuning APIs (FastAPI + uvicorn,
loopback only), to test Airflow DAGs offline: embedded (``FineTuningEmulator``, ``emulated()``), as pytest fixtures
(``ft_emulator``) or as a server (``ft-emulator``). It imports nothing of the provider, nor of Airflow.
"""

__version__ = "0.1.0"

from airflow_provider_ft_emulator.demo import seed_demo
from airflow_provider_ft_emulator.faults import FAULT_KINDS, Fault
from airflow_provider_ft_emulator.recording import RecordedRequest
from airflow_provider_ft_emulator.server import DEFAULT_API_KEY, FineTuningEmulator
from airflow_provider_ft_emulator.testing import connection_variables, connections_to, emulated

__all__ = [
    "DEFAULT_API_KEY",
    "FAULT_KINDS",
    "Fault",
    "FineTuningEmulator",
    "RecordedRequest",
    "connection_variables",
    "connections_to",
    "emulated",
    "seed_demo",
]

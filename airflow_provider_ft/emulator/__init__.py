"""Embedded, stateful emulator of the DashScope and OpenAI fine-tuning APIs (FastAPI + uvicorn, loopback only).

Needs the ``emulator`` extra (fastapi, uvicorn). Nothing else in the provider imports this package.
"""

from airflow_provider_ft.emulator.demo import seed_demo
from airflow_provider_ft.emulator.faults import FAULT_KINDS, Fault
from airflow_provider_ft.emulator.recording import RecordedRequest
from airflow_provider_ft.emulator.server import DEFAULT_API_KEY, FineTuningEmulator

__all__ = ["DEFAULT_API_KEY", "FAULT_KINDS", "Fault", "FineTuningEmulator", "RecordedRequest", "seed_demo"]

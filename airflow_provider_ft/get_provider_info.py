"""Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-ft",
        "name": "Fine-tuning jobs (DashScope, OpenAI)",
        "description": "Cancel, delete, clean up and wait for remote LLM fine-tuning jobs.",
        "versions": ["0.1.0"],
    }

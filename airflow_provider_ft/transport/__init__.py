"""HTTP to the vendors: ``ClientSettings`` from a connection, and a blocking and an asyncio transport over it.

The only place with HTTP, timeouts, size caps, secret scrubbing, rate limits and retries (``base`` says how).
"""

from airflow_provider_ft.transport.aio import AsyncTransport
from airflow_provider_ft.transport.settings import ClientSettings, settings_from_connection
from airflow_provider_ft.transport.sync import SyncTransport

__all__ = ["AsyncTransport", "ClientSettings", "SyncTransport", "settings_from_connection"]

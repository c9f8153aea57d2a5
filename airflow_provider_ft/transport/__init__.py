"""HTTP to the vendors: settings from a connection, a blocking and an asyncio transport, and what they share."""

from airflow_provider_ft.transport.base import AsyncTransport, ClientSettings, SyncTransport
from airflow_provider_ft.transport.settings import settings_from_connection

__all__ = ["AsyncTransport", "ClientSettings", "SyncTransport", "settings_from_connection"]

"""``FineTuningHook``: fine-tuning jobs of any supported vendor, chosen by the connection's type."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_ft._compat import BaseHook
from airflow_provider_ft.exceptions import FineTuningApiError, FineTuningConfigError, FineTuningTimeout
from airflow_provider_ft.get_provider_info import connection_type_info
from airflow_provider_ft.hooks import _operations as operations
from airflow_provider_ft.hooks._connection import settings_from_connection
from airflow_provider_ft.hooks._transport import AsyncTransport, ClientSettings, SyncTransport

if TYPE_CHECKING:
    from airflow_provider_ft.jobs import FineTuningJob
    from airflow_provider_ft.vendors.base import Dialect

DEFAULT_PAGE_SIZE = 50


class FineTuningHook(BaseHook):
    """Get, list, cancel, delete and wait for fine-tuning jobs on DashScope or OpenAI.

    The vendor follows from the connection's type (``dashscope``, ``openai_fine_tuning``, or ``openai`` as made
    for the official OpenAI provider). The password holds the API key; the host, if set, the base URL.
    Extras: ``timeout`` (seconds, connect and read; default 30), ``max_retries`` (default 4),
    ``backoff_base`` (seconds, default 0.5), ``retry_after_max`` (longest server-imposed wait, default 60);
    DashScope ``workspace`` and ``timezone`` (zone of its zone-less times, default ``Asia/Shanghai``);
    OpenAI ``organization`` and ``project``.

    :param conn_id: the Airflow connection to use (default: ``default_conn_name`` of the class)
    :param page_size: jobs per page when listing (1 to 100)
    """

    conn_name_attr = "conn_id"
    default_conn_name = "dashscope_default"
    conn_type = "dashscope"
    hook_name = "DashScope fine-tuning"

    def __init__(
        self,
        conn_id: str | None = None,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        logger_name: str | None = None,
    ) -> None:
        super().__init__(logger_name=logger_name)
        if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= 100:
            raise FineTuningConfigError(f"page_size must be a whole number from 1 to 100, got {page_size!r}")
        self.conn_id = conn_id or self.default_conn_name
        self.page_size = page_size

    def __repr__(self) -> str:
        return f"{type(self).__name__}(conn_id={self.conn_id!r})"

    @cached_property
    def settings(self) -> ClientSettings:
        """The connection, validated and resolved (read once per hook)."""
        return settings_from_connection(self.get_connection(self.conn_id))

    @property
    def dialect(self) -> Dialect:
        return self.settings.dialect

    @cached_property
    def transport(self) -> SyncTransport:
        return SyncTransport(self.settings)

    def get_conn(self) -> SyncTransport:
        return self.transport

    def close(self) -> None:
        """Close the keep-alive HTTP session, if one was opened."""
        if "transport" in self.__dict__:
            self.transport.close()

    def get_job(self, job_id: str) -> FineTuningJob:
        """The job as it stands now. Raises ``JobNotFoundError`` if the vendor has no such job."""
        return self.transport.run(operations.get_job(self.dialect, job_id))

    def list_jobs(self, **filters: Any) -> Iterator[FineTuningJob]:
        """Every job of the account, newest first, fetched lazily page by page.

        :param filters: filters the vendor applies server-side: DashScope ``model``; OpenAI ``metadata`` (a dict)
        """
        self._check_filters(filters)
        cursor: str | None = None
        while True:
            page = self.transport.run(operations.list_page(self.dialect, cursor, self.page_size, filters))
            yield from page.jobs
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def cancel_job(self, job_id: str) -> FineTuningJob:
        """Ask the vendor to cancel the job; the job as it stands after the call.

        A job that is already terminal is returned as it is (cancelling is idempotent).
        """
        return self.transport.run(operations.cancel_job(self.dialect, job_id))

    def delete_job(self, job_id: str) -> None:
        """Delete the job (DashScope). OpenAI has no job deletion: ``UnsupportedOperationError`` before sending."""
        self.transport.run(operations.delete_job(self.dialect, job_id))

    def wait_for_job(self, job_id: str, poll_interval: float = 30.0, timeout: float | None = None) -> FineTuningJob:
        """Poll until the job is terminal and return it.

        Errors the vendor may recover from (rate limits, 5xx, lost connections) that outlast the per-call retries
        are logged and polling goes on; anything else is raised.

        :param poll_interval: seconds between polls
        :param timeout: seconds to wait at most (``None``: no limit); ``FineTuningTimeout`` after that
        """
        if poll_interval <= 0:
            raise FineTuningConfigError(f"poll_interval must be positive, got {poll_interval!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self._poll(job_id)
            if job is not None:
                job.log_progress(self.log)
                if job.is_terminal:
                    return job
            if deadline is not None and time.monotonic() + poll_interval > deadline:
                raise FineTuningTimeout(f"Job {job_id} did not reach a terminal state within {timeout} s")
            time.sleep(poll_interval)

    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated call (list one job). The message never contains the API key."""
        try:
            settings = self.settings
            self.transport.run(operations.list_page(self.dialect, None, 1, {}))
        except Exception as error:
            message = str(error)
            if "settings" in self.__dict__:
                message = self.settings.redact(message)
            return False, message
        return True, f"Connected to {settings.dialect.display_name} at {settings.base_url}"

    def console_url(self, job_id: str) -> str:
        """Where a person can see the job in the vendor's web console."""
        return self.dialect.console_url(job_id)

    @asynccontextmanager
    async def async_transport(self, keepalive_expiry: float | None = None) -> AsyncIterator[AsyncTransport]:
        """An asyncio transport for triggers; the connection is read with ``aget_connection``.

        :param keepalive_expiry: seconds an idle connection is kept for the next request (a poller sets it above
            its poll interval so that each poll does not pay a new TCP and TLS handshake)
        """
        if "settings" not in self.__dict__:
            from airflow_provider_ft._compat import aget_connection

            self.__dict__["settings"] = settings_from_connection(await aget_connection(self, self.conn_id))
        transport = AsyncTransport(self.settings, keepalive_expiry=keepalive_expiry)
        try:
            yield transport
        finally:
            await transport.aclose()

    async def aget_job(self, transport: AsyncTransport, job_id: str) -> FineTuningJob:
        """``get_job`` over an asyncio transport from ``async_transport()``."""
        return await transport.run(operations.get_job(self.dialect, job_id))

    def _poll(self, job_id: str) -> FineTuningJob | None:
        try:
            return self.get_job(job_id)
        except FineTuningApiError as error:
            if not error.retryable:
                raise
            self.log.warning("Could not read job %s this time, will poll again: %s", job_id, error)
            return None

    def _check_filters(self, filters: dict[str, Any]) -> None:
        unknown = set(filters) - set(self.dialect.list_filters)
        if unknown:
            supported = ", ".join(self.dialect.list_filters) or "none"
            raise FineTuningConfigError(
                f"{self.dialect.display_name} cannot filter jobs by {', '.join(sorted(unknown))}; "
                f"it filters by: {supported}"
            )


def _form_widgets(conn_type: str) -> dict[str, Any]:
    from airflow_provider_ft._compat import connection_form_widgets

    return connection_form_widgets(connection_type_info(conn_type)["conn-fields"])


def _field_behaviour(conn_type: str) -> dict[str, Any]:
    behaviour: dict[str, Any] = connection_type_info(conn_type)["ui-field-behaviour"]
    return {key.replace("-", "_"): value for key, value in behaviour.items()}


# The connection form of each type is declared once, in get_provider_info(). Airflow 3.2+ reads it from there;
# Airflow 2.11 and 3.0 call the two class methods below instead, and only those defined on the very class that
# registers the connection type (not inherited ones), so each hook class of a connection type defines them.


class DashScopeFineTuningHook(FineTuningHook):
    """``FineTuningHook`` for connections of type ``dashscope`` (the connection form of DashScope)."""

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The form's extra fields, for Airflow before 3.2 (later versions read ``conn-fields``)."""
        return _form_widgets(cls.conn_type)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden and relabelled form fields, for Airflow before 3.2 (later versions read ``ui-field-behaviour``)."""
        return _field_behaviour(cls.conn_type)


class OpenAIFineTuningHook(FineTuningHook):
    """``FineTuningHook`` for connections of type ``openai_fine_tuning`` (the connection form of OpenAI)."""

    default_conn_name = "openai_default"
    conn_type = "openai_fine_tuning"
    hook_name = "OpenAI fine-tuning"

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The form's extra fields, for Airflow before 3.2 (later versions read ``conn-fields``)."""
        return _form_widgets(cls.conn_type)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden and relabelled form fields, for Airflow before 3.2 (later versions read ``ui-field-behaviour``)."""
        return _field_behaviour(cls.conn_type)

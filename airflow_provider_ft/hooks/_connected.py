"""``ConnectedHook``: the connection, its transports and the reads every other call of ``FineTuningHook`` builds on."""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any, Self

from airflow_provider_ft import _validate, defaults
from airflow_provider_ft._compat import BaseHook
from airflow_provider_ft._text import printable
from airflow_provider_ft.exceptions import FineTuningApiError

if TYPE_CHECKING:
    from airflow_provider_ft.core import operations
    from airflow_provider_ft.cost import Price
    from airflow_provider_ft.jobs import FineTuningJob
    from airflow_provider_ft.transport import AsyncTransport, ClientSettings, SyncTransport
    from airflow_provider_ft.vendors.base import Dialect


class ConnectedHook(BaseHook):
    """What every call of ``FineTuningHook`` needs: the connection read once, a blocking transport, asyncio
    transports for triggers, and reading and cancelling one job (the calls a wait repeats).

    :param conn_id: the Airflow connection to use (default: ``default_conn_name`` of the class)
    :param page_size: jobs per page when listing (1 to 100)
    """

    default_conn_name: str

    def __init__(
        self,
        conn_id: str | None = None,
        *,
        page_size: int = defaults.PAGE_SIZE,
        logger_name: str | None = None,
    ) -> None:
        super().__init__(logger_name=logger_name)
        self.conn_id = conn_id or self.default_conn_name
        self.page_size = _validate.whole_number("page_size", page_size, maximum=100)
        self._settings: ClientSettings | None = None
        self._transport: SyncTransport | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(conn_id={self.conn_id!r})"

    @property
    def settings(self) -> ClientSettings:
        """The connection, validated and resolved (read once per hook)."""
        if self._settings is None:
            self._settings = _settings_from(self.get_connection(self.conn_id))
        return self._settings

    @property
    def settings_if_read(self) -> ClientSettings | None:
        """The connection's settings if this hook has read them, else ``None``; never reads the connection."""
        return self._settings

    @property
    def dialect(self) -> Dialect:
        return self.settings.dialect

    @property
    def price(self) -> Price | None:
        """The account's price per million trained tokens, from the connection's extras ``price_per_million_tokens``
        and ``currency``; ``None`` when it gives none. ``FineTuningConfigError`` (naming the extra) for a price that
        is not a finite number above 0, or a currency that is not a short text."""
        return self.settings.price

    @property
    def transport(self) -> SyncTransport:
        """The blocking transport (one keep-alive HTTP session), opened on first use."""
        if self._transport is None:
            self._transport = _transports().SyncTransport(self.settings)
        return self._transport

    def fork(self) -> Self:
        """A new hook on this hook's connection, as already read, with an HTTP session of its own (one per thread).

        The connection is not read again: inside a task, Airflow 3 fetches connections through the task's one
        channel to its supervisor, which threads must not use at the same time.
        """
        twin = type(self)(self.conn_id, page_size=self.page_size)
        twin._settings = self.settings
        return twin

    def get_conn(self) -> SyncTransport:
        return self.transport

    def close(self) -> None:
        """Close the keep-alive HTTP session, if one was opened."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def _run(self, operation: operations.Operation[Any], deadline: float | None = None) -> Any:
        transport = self.transport
        return _operations().run(operation, lambda request: transport.send(request, deadline))

    async def _arun(
        self, transport: AsyncTransport, operation: operations.Operation[Any], deadline: float | None = None
    ) -> Any:
        return await _operations().arun(operation, lambda request: transport.send(request, deadline))

    def get_job(self, job_id: str, *, deadline: float | None = None) -> FineTuningJob:
        """The job as it stands now. Raises ``JobNotFoundError`` if the vendor has no such job.

        :param job_id: the vendor's job id
        :param deadline: ``time.monotonic()`` by which the call must be over, retries included
        """
        job: FineTuningJob = self._run(_operations().get_job(self.dialect, job_id), deadline)
        return job

    def cancel_job(self, job_id: str, *, seen_unfinished: bool = False) -> FineTuningJob:
        """Cancel the job unless it has already finished; the job as it stands after the call.

        A job that is already terminal is returned as it is, and no cancel request is sent (cancelling is
        idempotent: safe for retries and teardown tasks).

        :param job_id: the vendor's job id
        :param seen_unfinished: the caller has just seen the job unfinished (a listing): cancel without reading it
            first (a cancel refused because it ended since is still confirmed by a read)
        """
        operations = _operations()
        operation = operations.cancel_unfinished_job if seen_unfinished else operations.cancel_job
        job: FineTuningJob = self._run(operation(self.dialect, job_id))
        return job

    def poll_job(self, job_id: str, *, deadline: float | None = None) -> FineTuningJob | FineTuningApiError:
        """The job, or the error it could not be read with this time when the vendor may recover from it (rate
        limit, 5xx, lost connection, past the deadline); that is logged. Other errors are raised.

        :param job_id: the vendor's job id
        :param deadline: ``time.monotonic()`` by which the call must be over, retries included
        """
        try:
            return self.get_job(job_id, deadline=deadline)
        except FineTuningApiError as error:
            return self._unread(job_id, error)

    def async_transport(self, keepalive_expiry: float | None = None, *, reuse_seconds: float = 0.0) -> OpenTransport:
        """An asyncio transport for triggers, as ``async with hook.async_transport() as transport``; the connection
        is read with ``aget_connection`` on entering.

        Transports of one account in one event loop share their HTTP connections, identical reads in flight and
        the account's rate-limit state (see ``AsyncTransport``).

        :param keepalive_expiry: seconds an idle connection is kept for the next request (a poller sets it above
            its poll interval so that each poll does not pay a new TCP and TLS handshake)
        :param reuse_seconds: how old another reader's answer to the same read may be to be used instead of asking
            again (a poller passes a little less than its poll interval)
        """
        return OpenTransport(self, keepalive_expiry, reuse_seconds)

    async def aget_job(self, transport: AsyncTransport, job_id: str, *, deadline: float | None = None) -> FineTuningJob:
        """``get_job`` over an asyncio transport from ``async_transport()``."""
        job: FineTuningJob = await self._arun(transport, _operations().get_job(self.dialect, job_id), deadline)
        return job

    async def acancel_job(
        self, transport: AsyncTransport, job_id: str, *, deadline: float | None = None
    ) -> FineTuningJob:
        """``cancel_job`` over an asyncio transport from ``async_transport()``."""
        job: FineTuningJob = await self._arun(transport, _operations().cancel_job(self.dialect, job_id), deadline)
        return job

    async def apoll_job(
        self, transport: AsyncTransport, job_id: str, *, deadline: float | None = None
    ) -> FineTuningJob | FineTuningApiError:
        """``poll_job`` over an asyncio transport from ``async_transport()``."""
        try:
            return await self.aget_job(transport, job_id, deadline=deadline)
        except FineTuningApiError as error:
            return self._unread(job_id, error)

    def _unread(self, job_id: str, error: FineTuningApiError) -> FineTuningApiError:
        """Log a poll that could not read the job and return ``error``; raise it when polling again cannot help."""
        if not error.retryable:
            raise error
        self.log.warning("Could not read job %s this time, will poll again: %s", printable(job_id, 140), error)
        return error


# The HTTP and connection machinery is imported on first use: a DAG file that only builds operators never pays for it.
def _operations() -> ModuleType:
    from airflow_provider_ft.core import operations

    return operations


def _transports() -> ModuleType:
    from airflow_provider_ft import transport

    return transport


def _settings_from(conn: Any, **name: Any) -> ClientSettings:
    from airflow_provider_ft.transport import settings_from_connection

    return settings_from_connection(conn, **name)


class OpenTransport:
    """``async with`` an asyncio transport of a hook's connection: opened on entering, closed on leaving (a small
    object rather than a generator: a waiting trigger holds one for as long as it waits)."""

    __slots__ = ("_hook", "_keepalive_expiry", "_reuse_seconds", "_transport")

    def __init__(self, hook: ConnectedHook, keepalive_expiry: float | None, reuse_seconds: float) -> None:
        self._hook = hook
        self._keepalive_expiry = keepalive_expiry
        self._reuse_seconds = reuse_seconds
        self._transport: AsyncTransport | None = None

    async def __aenter__(self) -> AsyncTransport:
        hook = self._hook
        if hook._settings is None:
            from airflow_provider_ft._compat import aget_connection

            hook._settings = _settings_from(await aget_connection(hook, hook.conn_id))
        self._transport = _transports().AsyncTransport(
            hook._settings, keepalive_expiry=self._keepalive_expiry, reuse_seconds=self._reuse_seconds
        )
        return self._transport

    async def __aexit__(self, *exc_info: object) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.aclose()

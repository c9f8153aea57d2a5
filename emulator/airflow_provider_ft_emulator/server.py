"""``FineTuningEmulator``: the four vendors' APIs on one loopback port, served by uvicorn in a background thread."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo

import uvicorn

from airflow_provider_ft_emulator import dashscope_api, dashscope_files, openai_api, openai_files, together_api
from airflow_provider_ft_emulator.app import build_app
from airflow_provider_ft_emulator.clock import Clock, as_seconds
from airflow_provider_ft_emulator.connections import SocketRegistry, protocol_class
from airflow_provider_ft_emulator.factory import DEFAULT_RUN_SECONDS
from airflow_provider_ft_emulator.faults import Fault, FaultBook
from airflow_provider_ft_emulator.files import FINE_TUNE, StoredFile, digest_bytes
from airflow_provider_ft_emulator.limits import JobLimit
from airflow_provider_ft_emulator.recording import RecordedRequest, RequestLog
from airflow_provider_ft_emulator.specimens import SERIALIZERS
from airflow_provider_ft_emulator.state import LOGS_FORMS, EmulatorState, LogsForm, Settings
from airflow_provider_ft_emulator.store import Job, JobStore
from airflow_provider_ft_emulator.vocabulary import BASE_PATHS, DASHSCOPE_TIMEZONE, vendor_named

DEFAULT_API_KEY = "emulator-key"
BACKLOG = 4096
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0

_SEEDERS: dict[str, Callable[..., Job]] = {
    "dashscope": dashscope_api.seed,
    "openai": openai_api.seed,
    "azure": partial(openai_api.seed, vendor="azure"),
    "together": together_api.seed,
}


class FineTuningEmulator:
    """A stateful fake of the DashScope, OpenAI, Azure OpenAI and Together AI fine-tuning APIs, in their wire formats.

    Use it as a context manager (or call :meth:`start`/:meth:`stop`). ``time_scale`` multiplies real elapsed
    time into emulated time; ``cancel_delay`` is how long (emulated seconds) a cancelled DashScope job stays
    ``CANCELING``; ``port=0`` picks a free port; ``check_files=False`` lets jobs be created through the API with
    file ids that were never uploaded; ``dashscope_logs`` is how DashScope's logs answers carry their lines (``lines``,
    ``text``, or ``alternate``: one string for every other job).
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        time_scale: float = 1.0,
        dashscope_timezone: str = DASHSCOPE_TIMEZONE,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        cancel_delay: float = 0.0,
        check_files: bool = True,
        dashscope_logs: LogsForm = "alternate",
    ) -> None:
        ZoneInfo(dashscope_timezone)  # fail fast on an unknown zone
        if dashscope_logs not in LOGS_FORMS:
            raise ValueError(f"dashscope_logs must be one of {LOGS_FORMS}, got {dashscope_logs!r}")
        self.host = host
        self._requested_port = port
        self._clock = Clock(time_scale)
        settings = Settings(
            api_key=api_key,
            dashscope_timezone=dashscope_timezone,
            check_files=check_files,
            dashscope_logs=dashscope_logs,
        )
        self._state = EmulatorState(store=JobStore(self._clock, cancel_delay), settings=settings)
        self._log = RequestLog()
        self._faults = FaultBook()
        self._sockets = SocketRegistry()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._failure: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------

    def __enter__(self) -> FineTuningEmulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Bind the port and serve in a background thread; returns once requests are being accepted."""
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        self._socket = _listening_socket(self.host, self._requested_port)
        app = build_app(self._state, self._log, self._faults, self._sockets)
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            proxy_headers=False,
            server_header=False,
            http=protocol_class(self._sockets),
            backlog=BACKLOG,
            timeout_keep_alive=30,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._run, args=(self._server, self._socket), name="ft-emulator", daemon=True
        )
        self._thread.start()
        self._wait_started()

    def stop(self) -> None:
        """Release hanging requests, shut uvicorn down and join its thread."""
        if self._server is None or self._thread is None:
            return
        self._sockets.signal_shutdown()
        self._server.should_exit = True
        self._thread.join(STOP_TIMEOUT)
        if self._thread.is_alive():  # pragma: no cover - defensive
            self._server.force_exit = True
            self._thread.join(STOP_TIMEOUT)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def _run(self, server: uvicorn.Server, sock: socket.socket) -> None:
        async def serve() -> None:
            self._sockets.bind_loop()
            await server.serve(sockets=[sock])

        try:
            with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
                runner.run(serve())
        except BaseException as exc:  # surfaced by _wait_started
            self._failure = exc

    def _wait_started(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not (self._server is not None and self._server.started):
            if self._failure is not None or self._thread is None or not self._thread.is_alive():
                self.stop()
                raise RuntimeError("the emulator failed to start") from self._failure
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("the emulator did not start in time")
            time.sleep(0.005)

    # -- addresses ---------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._socket is None:
            raise RuntimeError("the emulator is not running")
        return int(self._socket.getsockname()[1])

    @property
    def api_key(self) -> str:
        """The only key the emulator accepts."""
        return self._state.settings.api_key

    def url(self, vendor: str) -> str:
        """Base URL of ``vendor``: ``http://127.0.0.1:<port>/dashscope/api/v1``, ``.../openai/v1``, or Azure's
        resource endpoint ``.../azure`` (below which its dialect adds ``/openai`` or ``/openai/v1``)."""
        return f"http://{self.host}:{self.port}{BASE_PATHS[vendor_named(vendor)]}"

    # -- jobs ----------------------------------------------------------------------------------------------

    def seed_job(
        self,
        vendor: str,
        *,
        status: str | None = None,
        age: timedelta | float = 0.0,
        name: str | None = None,
        model: str | None = None,
        metadata: dict[str, str] | None = None,
        job_id: str | None = None,
        runs_for: timedelta | float | None = timedelta(minutes=10),
        outcome: str = "succeeded",
        error: str | None = None,
        validation_file: str | None = None,
    ) -> str:
        """Create a job as if it had been submitted ``age`` ago and is in ``status`` now; returns its id.

        ``status`` is the vendor's own word (default ``RUNNING``/``running``); unknown words are served verbatim
        and never change. Lifecycle timers start now: queued jobs run after 5 emulated seconds, running jobs
        end as ``outcome`` after ``runs_for`` (never if ``None``). DashScope: ``name`` is ``job_name``,
        ``metadata`` is kept off the wire. OpenAI: ``name`` is the model suffix and ``metadata["name"]``. Azure
        OpenAI: as OpenAI (its jobs carry the suffix as ``suffix``); its words are Microsoft's (``pending``, ...).
        Together AI: ``name`` is the ``suffix``, ``metadata`` is kept off the wire. ``validation_file``: the id of
        the job's validation file (none by default); a job with one reports a validation loss as it trains.
        """
        kind = vendor_named(vendor)
        options: dict[str, Any] = {
            "job_id": job_id,
            "status": status,
            "model": model,
            "name": name,
            "metadata": metadata,
            "age": as_seconds(age) or 0.0,
            "runs_for": as_seconds(runs_for),
            "outcome": outcome,
            "error": error,
        }
        job: Job = _SEEDERS[kind](self._state, **options)
        if validation_file is not None:
            with self._state.store.lock:
                job.spec["validation_file_ids" if kind == "dashscope" else "validation_file"] = (
                    [validation_file] if kind == "dashscope" else validation_file
                )
        return job.id

    def seed_jobs(self, vendor: str, n: int, **kwargs: Any) -> list[str]:
        """Seed ``n`` jobs with the same options (``job_id`` cannot be given)."""
        if kwargs.get("job_id") is not None:
            raise ValueError("seed_jobs cannot reuse one job_id for several jobs")
        return [self.seed_job(vendor, **kwargs) for _ in range(n)]

    def job(self, vendor: str, job_id: str) -> dict[str, Any] | None:
        """The job as the vendor would serialise it now; ``None`` if unknown or deleted."""
        kind = vendor_named(vendor)
        found = self._state.store.get(kind, job_id)
        return None if found is None else SERIALIZERS[kind](found, self._state)

    def jobs(self, vendor: str) -> list[dict[str, Any]]:
        """Every job of ``vendor`` as serialised now, newest first."""
        kind = vendor_named(vendor)
        return [SERIALIZERS[kind](job, self._state) for job in self._state.store.all(kind)]

    # -- files ---------------------------------------------------------------------------------------------

    def seed_file(
        self,
        vendor: str,
        filename: str,
        content: bytes,
        *,
        description: str | None = None,
        purpose: str = FINE_TUNE,
    ) -> str:
        """Store a file as if uploaded now; returns its id (``file-...`` OpenAI, ``file-ft-...`` DashScope).

        A ``fine-tune`` file must be JSONL as an upload must (``ValueError`` otherwise, naming the line).
        ``description`` is DashScope's (OpenAI files have none).
        """
        kind = vendor_named(vendor)
        found = digest_bytes(filename, content, check=purpose == FINE_TUNE)
        if found.problem is not None:
            raise ValueError(f"{filename} is not fine-tuning JSONL: {found.problem}")
        if kind == "together":
            return together_api.keep(self._state, filename, found, purpose).id
        if kind != "dashscope":
            return openai_files.keep(self._state, filename, found, purpose, kind).id
        return dashscope_files.keep(self._state, filename, found, purpose, description).id

    def files(self, vendor: str) -> list[dict[str, Any]]:
        """Every file of ``vendor`` as the vendor would serialise it now, newest first."""
        kind = vendor_named(vendor)
        stored = self._state.files.all(kind)
        if kind == "together":
            return [together_api.serialize_file(f) for f in stored]
        if kind != "dashscope":
            return [openai_files.serialize(f) for f in stored]
        return [dashscope_files.serialize(f, self._state.settings.dashscope_timezone) for f in stored]

    def file_info(self, vendor: str, file_id: str) -> StoredFile | None:
        """What the emulator keeps of a file (size, SHA-256, whether its content was checked), or ``None``."""
        return self._state.files.get(vendor_named(vendor), file_id)

    def limit_jobs(self, vendor: str, *, active: int | None = None, per_day: int | None = None) -> None:
        """Put the ``vendor`` account at a job limit: a create past it gets the vendor's documented answer (OpenAI:
        ``per_day``, jobs of one model created in the last 24 emulated hours; Azure OpenAI: ``active``, jobs not
        ended yet). ``ValueError`` for a limit the vendor documents no answer for (any of DashScope's and Together
        AI's). ``reset()`` lifts it; so does a new call for the vendor, which replaces it.
        """
        kind = vendor_named(vendor)
        limit = JobLimit(active=active, per_day=per_day)
        limit.check(kind)
        with self._state.store.lock:
            self._state.limits[kind] = limit

    # -- clock, faults, log ----------------------------------------------------------------------------

    def now(self) -> float:
        """Current emulated time (Unix seconds)."""
        return self._clock.now()

    def advance(self, seconds: float) -> None:
        """Move the emulated clock forward."""
        self._clock.advance(seconds)

    def inject(self, fault: Fault) -> None:
        """Arm a fault (checked after those injected earlier)."""
        self._faults.inject(fault)

    def clear_faults(self) -> None:
        """Disarm every fault."""
        self._faults.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in arrival order (a copy)."""
        return self._log.snapshot()

    def clear_requests(self) -> None:
        """Empty the request log."""
        self._log.clear()

    @property
    def connections_opened(self) -> int:
        """TCP connections accepted since start."""
        return self._sockets.opened

    @property
    def api_run_seconds(self) -> float | None:
        """Emulated seconds a job created through the API trains before it succeeds (600 unless set; ``None``:
        it trains until cancelled). Applies to the jobs created after it is set."""
        return self._state.api_run_seconds

    @api_run_seconds.setter
    def api_run_seconds(self, seconds: float | None) -> None:
        if seconds is not None and not seconds > 0:
            raise ValueError("api_run_seconds must be a positive number of seconds or None")
        self._state.api_run_seconds = seconds

    def reset(self) -> None:
        """Drop all jobs, files, faults, job limits, ``api_run_seconds`` and recorded requests, and undo ``advance``
        (nothing dated is left that the clock could contradict; it keeps running at its scale)."""
        self._clock.forget_advances()
        self._state.api_run_seconds = DEFAULT_RUN_SECONDS
        self._state.limits.clear()
        self._state.store.reset()
        self._state.files.reset()
        self._faults.clear()
        self._log.clear()


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock

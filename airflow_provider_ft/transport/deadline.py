"""A whole-request deadline for the blocking transport.

A socket timeout bounds each read, not a request: a server that drips a byte a second never trips it. One watchdog
thread per process holds the deadlines of the requests in flight; when one passes, it shuts the socket of that
request down, so that the blocked read returns at once and the transport raises its deadline error. The sockets
are found through a connection class mounted into the ``requests`` session's pools.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

if TYPE_CHECKING:
    import requests

_current = threading.local()


class Deadline:
    """The moment (``time.monotonic()``) one request must be over by, and the connection it runs on."""

    def __init__(self, at: float) -> None:
        self.at = at
        self.expired = False
        self._connection: HTTPConnection | None = None
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def attach(self, connection: HTTPConnection) -> None:
        with self._lock:
            self._connection = connection
            if self.expired:
                _shut_down(connection)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            if self._connection is not None:
                _shut_down(self._connection)


def _shut_down(connection: HTTPConnection) -> None:
    sock = connection.sock  # read once: its owner may close it meanwhile
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed by its owner
            sock.shutdown(socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread that expires deadlines in time order."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: Deadline) -> None:
        with self._wake:
            heapq.heappush(self._heap, (deadline.at, next(self._order), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="ft-request-deadlines", daemon=True)
                self._thread.start()
            self._wake.notify()

    def forget(self, deadline: Deadline) -> None:
        with self._wake:
            self._heap = [entry for entry in self._heap if entry[2] is not deadline]
            heapq.heapify(self._heap)

    def _run(self) -> None:
        with self._wake:
            while True:
                while self._heap and self._heap[0][0] <= time.monotonic():
                    heapq.heappop(self._heap)[2].expire()
                self._wake.wait(self._heap[0][0] - time.monotonic() if self._heap else None)


_watchdog = _Watchdog()


@contextlib.contextmanager
def request_deadline(at: float) -> Iterator[Deadline]:
    """Within this block, requests of this thread (through ``mount_deadlines`` sessions) end by ``at``."""
    deadline = _current.deadline = Deadline(at)
    _watchdog.watch(deadline)
    try:
        yield deadline
    finally:
        _current.deadline = None
        _watchdog.forget(deadline)


class _DeadlineMixin:
    def request(self, *args: Any, **kwargs: Any) -> None:
        deadline: Deadline | None = getattr(_current, "deadline", None)
        super().request(*args, **kwargs)  # type: ignore[misc]
        if deadline is not None:
            deadline.attach(self)  # type: ignore[arg-type]


class _HTTPConnection(_DeadlineMixin, HTTPConnection):
    pass


class _HTTPSConnection(_DeadlineMixin, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


def mount_deadlines(session: requests.Session) -> None:
    """Make every connection of ``session`` report itself to the current request's deadline."""
    for adapter in session.adapters.values():
        manager = adapter.poolmanager  # type: ignore[attr-defined]
        manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        manager.key_fn_by_scheme = dict(manager.key_fn_by_scheme)

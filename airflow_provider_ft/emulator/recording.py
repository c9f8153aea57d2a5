"""The request log: every request the emulator received, in arrival order."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_ft.emulator.vocabulary import Vendor


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the emulator saw it.

    ``path`` is relative to the vendor mount (``/fine-tunes/ft-1/cancel``); ``headers`` has lowercase names and
    never contains ``authorization``; ``body`` is the parsed JSON body (``None`` when absent or not JSON);
    ``status`` is what was answered (``0`` when the connection was dropped or the request is still in flight);
    ``fault`` is the kind of the fault that hit the request, if any; ``body_size`` is how many body bytes were
    received and ``raw_body`` the first of them (at most 64 KiB: a large upload is never kept whole).
    """

    vendor: Vendor | None
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    authorized: bool
    status: int
    fault: str | None
    body_size: int = 0
    raw_body: bytes = b""


@dataclass
class LogEntry:
    vendor: Vendor | None
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    authorized: bool
    status: int = 0
    fault: str | None = None
    body_size: int = 0
    raw_body: bytes = b""

    def freeze(self) -> RecordedRequest:
        return RecordedRequest(
            vendor=self.vendor,
            method=self.method,
            path=self.path,
            query=dict(self.query),
            headers=dict(self.headers),
            body=self.body,
            authorized=self.authorized,
            status=self.status,
            fault=self.fault,
            body_size=self.body_size,
            raw_body=self.raw_body,
        )


@dataclass
class RequestLog:
    """Thread-safe list of in-flight and answered requests."""

    _entries: list[LogEntry] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, entry: LogEntry) -> LogEntry:
        """Record a request on arrival; the caller fills in ``status``/``fault`` later."""
        with self._lock:
            self._entries.append(entry)
        return entry

    def snapshot(self) -> list[RecordedRequest]:
        """A frozen copy of the log."""
        with self._lock:
            return [entry.freeze() for entry in self._entries]

    def clear(self) -> None:
        """Forget every recorded request."""
        with self._lock:
            self._entries.clear()

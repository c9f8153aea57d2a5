"""The request log: every request the emulator received, in arrival order, with the answer it got."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_ft_emulator.vocabulary import Vendor


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the emulator saw it.

    ``path`` is relative to the vendor mount (``/fine-tunes/ft-1/cancel``); ``headers`` has lowercase names and
    never contains ``authorization``; ``body`` is the parsed JSON body (``None`` when absent or not JSON);
    ``status`` is what was answered (``0`` when the connection was dropped or the request is still in flight);
    ``fault`` is the kind of the fault that hit the request, if any; ``body_size`` is how many body bytes were
    received and ``raw_body`` the first of them (at most 64 KiB: a large upload is never kept whole).
    ``answer_type`` is the answer's ``content-type``, ``answer_body`` the first :data:`ANSWER_PREFIX` bytes of its
    body (none of a fault's answer), ``answer_size`` how many it had, and ``answered`` whether its last byte was
    sent (not when the connection was dropped, nor for a stream cut short).
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
    answer_type: str = ""
    answer_body: bytes = b""
    answer_size: int = 0
    answered: bool = False


#: Bytes of an answer's body kept in the request log.
ANSWER_PREFIX = 256 * 1024
Watcher = Callable[[RecordedRequest], None]
#: Called with every finished exchange of every emulator of the process (see :func:`watch`).
_watchers: list[Watcher] = []


def watch(watcher: Watcher) -> Callable[[], None]:
    """Have ``watcher`` called with each exchange of any emulator of this process once it is over (answered,
    dropped or abandoned), from the emulator's thread; returns the function that stops it.

    A test harness's hook: the suite checks each exchange against the vendors' published API schemas.

    :param watcher: called with the frozen exchange; it must be quick and must not raise
    """
    _watchers.append(watcher)
    return lambda: _watchers.remove(watcher)


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
    answer_type: str = ""
    answer_body: bytearray = field(default_factory=bytearray)
    answer_size: int = 0
    answered: bool = False

    def answer_started(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        """Note the head of the answer: its status and content type."""
        self.status = status
        self.answer_type = next((bytes(v).decode("latin-1") for n, v in headers if n.lower() == b"content-type"), "")

    def answer_sent(self, chunk: bytes, *, last: bool) -> None:
        """Note a piece of the answer's body (``last``: the body ends with it); a fault's answer is only counted."""
        room = ANSWER_PREFIX - len(self.answer_body)
        if room > 0 and self.fault is None:
            self.answer_body += chunk[:room]
        self.answer_size += len(chunk)
        self.answered = last

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
            answer_type=self.answer_type,
            answer_body=bytes(self.answer_body),
            answer_size=self.answer_size,
            answered=self.answered,
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

    def finish(self, entry: LogEntry) -> None:
        """The exchange of ``entry`` is over: show it to the watchers."""
        if _watchers:
            frozen = entry.freeze()
            for watcher in list(_watchers):
                watcher(frozen)

    def snapshot(self) -> list[RecordedRequest]:
        """A frozen copy of the log."""
        with self._lock:
            return [entry.freeze() for entry in self._entries]

    def clear(self) -> None:
        """Forget every recorded request."""
        with self._lock:
            self._entries.clear()

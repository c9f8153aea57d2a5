"""Fault injection: what can go wrong on the wire, which requests it hits, and how often.

How each kind is acted out is in :mod:`~airflow_provider_ft_emulator.acting` (the plain faults of a flaky network
or gateway) and :mod:`~airflow_provider_ft_emulator.hostile` (a server that attacks its client).
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field

#: Faults of a flaky network or gateway.
CLASSIC_FAULT_KINDS = frozenset(
    {
        "status",
        "latency",
        "hang",
        "drop",
        "drop_mid_body",
        "html",
        "truncated",
        "empty",
        "dashscope_200_error",
        "lose_response",
    }
)
#: Faults of a hostile server: what it sends must not leak the key, crash, hang a task or exhaust memory.
HOSTILE_FAULT_KINDS = frozenset({"echo_key", "body", "drip", "gzip", "huge", "endless_pages", "redirect"})
FAULT_KINDS = CLASSIC_FAULT_KINDS | HOSTILE_FAULT_KINDS

#: The variants of each kind that has some; the first is the default.
VARIANTS: dict[str, tuple[str, ...]] = {
    "echo_key": ("answer", "error", "job", "page", "text", "escaped"),
    "drip": ("body", "headers", "content_length"),
    "gzip": ("gzip", "deflate", "bomb"),
    "huge": ("job", "page", "error_text"),
    "endless_pages": ("fresh", "alternate", "same", "total", "non_objects"),
    "redirect": ("empty", "job"),
}
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

#: Upper bound on how long a ``hang`` (or a ``drip``) holds a request when the server keeps running.
HANG_SECONDS = 60.0
#: Default ``size`` of a ``gzip`` bomb (inflated) and of a ``huge`` answer.
BOMB_SIZE = 1024**3
HUGE_SIZE = 50 * 1024**2


@dataclass(frozen=True)
class Fault:
    """A misbehaviour to act out on matching requests.

    A request matches when ``vendor`` and ``method`` are equal (when set) and ``path`` (a regex) is found with
    ``re.search`` in the mount-relative path. Every ``every``-th matching request is hit, ``times`` times in all;
    then the fault is spent. ``delay`` real seconds are waited before any kind but ``hang`` acts (for ``latency``
    that is the whole fault). docs/emulator.md describes each kind and variant.

    :param kind: one of :data:`FAULT_KINDS`
    :param vendor: only requests to this vendor's mount
    :param method: only requests with this HTTP method
    :param path: only mount-relative paths this regex is found in
    :param times: how many requests it hits in all
    :param status: the HTTP status to answer with; ``None``: the kind's own (503 for ``status`` and ``html``,
        302 for ``redirect``, 401 for the ``error`` and ``text`` echoes, 500 for a huge error text, the served
        answer's for ``drip`` and ``gzip`` (200 for its ``bomb``), else 200)
    :param headers: extra response headers
    :param delay: real seconds to wait before acting
    :param every: hit every ``every``-th matching request
    :param code: the business code of ``dashscope_200_error``
    :param variant: which form of the kind (see :data:`VARIANTS`); ``None``: the first
    :param body: the raw body of a ``body`` fault (required there, refused elsewhere)
    :param interval: real seconds between the pieces a ``drip`` sends
    :param size: bytes of a ``huge`` answer (default :data:`HUGE_SIZE`) or of an inflated ``gzip`` bomb (default
        :data:`BOMB_SIZE`)
    """

    kind: str
    vendor: str | None = None
    method: str | None = None
    path: str | None = None
    times: int = 1
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    every: int = 1
    code: str = "InternalError"
    variant: str | None = None
    body: bytes | None = None
    interval: float = 1.0
    size: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if self.times < 1 or self.every < 1:
            raise ValueError("times and every must be >= 1")
        if self.path is not None:
            try:
                re.compile(self.path)
            except re.error as exc:
                raise ValueError(f"invalid path regex {self.path!r}: {exc}") from exc
        self._check_variant()
        self._check_status()
        self._check_body()
        if isinstance(self.interval, bool) or not isinstance(self.interval, int | float):
            raise ValueError(f"interval must be a number of seconds, got {self.interval!r}")
        if not (math.isfinite(self.interval) and self.interval > 0):
            raise ValueError(f"interval must be more than 0 seconds, got {self.interval!r}")
        if self.size is not None and (isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1):
            raise ValueError(f"size must be a whole number of bytes, 1 or more, got {self.size!r}")

    def _check_variant(self) -> None:
        if self.variant is None:
            return
        known = VARIANTS.get(self.kind, ())
        if self.variant not in known:
            expected = f"one of {list(known)}" if known else "none"
            raise ValueError(f"fault kind {self.kind!r} has no variant {self.variant!r}; expected {expected}")

    def _check_status(self) -> None:
        if self.status is None:
            return
        if isinstance(self.status, bool) or not isinstance(self.status, int) or not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status from 100 to 599, got {self.status!r}")
        if self.kind == "redirect" and self.status not in REDIRECT_STATUSES:
            raise ValueError(f"a redirect's status must be one of {sorted(REDIRECT_STATUSES)}, got {self.status}")

    def _check_body(self) -> None:
        if self.kind == "body" and not isinstance(self.body, bytes):
            raise ValueError("a 'body' fault needs body= the raw bytes to answer with")
        if self.kind != "body" and self.body is not None:
            raise ValueError(f"body is only for 'body' faults, not {self.kind!r}")

    @property
    def chosen_variant(self) -> str | None:
        """``variant``, or the kind's default one (``None`` for kinds without variants)."""
        if self.variant is not None:
            return self.variant
        known = VARIANTS.get(self.kind)
        return known[0] if known else None

    def status_or(self, default: int) -> int:
        """``status`` if one was given, else ``default`` (the kind's own)."""
        return default if self.status is None else self.status

    def size_or(self, default: int) -> int:
        """``size`` if one was given, else ``default`` (the kind's own)."""
        return default if self.size is None else self.size

    def matches(self, vendor: str | None, method: str, path: str) -> bool:
        """Whether a request falls under this fault (ignoring how often it has fired)."""
        if self.vendor is not None and self.vendor != vendor:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path is None or re.search(self.path, path) is not None


@dataclass
class _Armed:
    fault: Fault
    seen: int = 0
    hits: int = 0


class FaultBook:
    """Injected faults in injection order, with their hit counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[_Armed] = []

    def inject(self, fault: Fault) -> None:
        """Arm ``fault`` after the ones already injected."""
        with self._lock:
            self._armed.append(_Armed(fault))

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._armed.clear()

    def take(self, vendor: str | None, method: str, path: str) -> Fault | None:
        """The first live fault that hits this request, counting the hit."""
        with self._lock:
            for armed in self._armed:
                fault = armed.fault
                if armed.hits >= fault.times or not fault.matches(vendor, method, path):
                    continue
                armed.seen += 1
                if armed.seen % fault.every == 0:
                    armed.hits += 1
                    return fault
        return None

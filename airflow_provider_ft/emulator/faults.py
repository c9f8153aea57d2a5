"""Fault injection: what can go wrong on the wire, which requests it hits, and how it is acted out."""

from __future__ import annotations

import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from airflow_provider_ft.emulator.errors import dashscope_error, error_body, status_fault_error
from airflow_provider_ft.emulator.exchange import Exchange, encode_json

FAULT_KINDS = frozenset(
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
#: Upper bound on how long a ``hang`` fault holds a request when the server keeps running.
HANG_SECONDS = 60.0


@dataclass(frozen=True)
class Fault:
    """A misbehaviour to act out on matching requests.

    A request matches when ``vendor`` and ``method`` are equal (when set) and ``path`` (a regex) is found with
    ``re.search`` in the mount-relative path. Every ``every``-th matching request is hit, ``times`` times in all;
    then the fault is spent. ``delay`` real seconds are waited before any kind acts (for ``latency`` that is
    the whole fault). ``code`` is the business code of ``dashscope_200_error``.
    """

    kind: str
    vendor: str | None = None
    method: str | None = None
    path: str | None = None
    times: int = 1
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    every: int = 1
    code: str = "InternalError"

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


Handler = Callable[[Exchange], Awaitable[None]]

PROXY_PAGE = (
    "<html>\r\n<head><title>{status} Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>{status} Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


async def act_out(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    """Answer (or fail to answer) ``exchange`` as ``fault`` says; ``handle`` serves it normally."""
    if fault.delay > 0 and fault.kind != "hang":
        await exchange.wait_shutdown(fault.delay)
    await _ACTIONS[fault.kind](fault, exchange, handle)


async def _status(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    error = status_fault_error(exchange.vendor, fault.status)
    body = error_body(exchange.vendor, exchange.request_id, error)
    await exchange.respond_json(fault.status, body, fault.headers)


async def _latency(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    await handle(exchange)


async def _hang(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    await exchange.hold(HANG_SECONDS)
    await exchange.drop()


async def _drop(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    await exchange.drop()


async def _drop_mid_body(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    body = _canned_body(exchange)
    await exchange.respond_partially(200, body, len(body) // 2)


async def _html(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    page = PROXY_PAGE.format(status=fault.status).encode()
    await exchange.respond(fault.status, page, b"text/html", fault.headers)


async def _truncated(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    body = _canned_body(exchange)
    await exchange.respond(200, body[: len(body) // 2], headers=fault.headers)


async def _empty(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    await exchange.respond(200, b"", headers=fault.headers)


async def _dashscope_200_error(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    body = dashscope_error(exchange.request_id, fault.code, "An internal error has occurred, please try again later.")
    await exchange.respond_json(200, body, fault.headers)


async def _lose_response(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    exchange.swallow_responses()
    await handle(exchange)
    await exchange.drop()


def _canned_body(exchange: Exchange) -> bytes:
    """A plausible success body to truncate (never the real job: faults other than latency skip the handler)."""
    if exchange.vendor == "dashscope":
        output = {"job_id": "ft-000000000000-0000", "status": "RUNNING", "note": "emulator fault body"}
        return encode_json({"request_id": exchange.request_id, "output": output})
    return encode_json({"object": "fine_tuning.job", "id": "ftjob-emulatorfaultbody0000", "status": "running"})


_ACTIONS: dict[str, Callable[[Fault, Exchange, Handler], Awaitable[None]]] = {
    "status": _status,
    "latency": _latency,
    "hang": _hang,
    "drop": _drop,
    "drop_mid_body": _drop_mid_body,
    "html": _html,
    "truncated": _truncated,
    "empty": _empty,
    "dashscope_200_error": _dashscope_200_error,
    "lose_response": _lose_response,
}

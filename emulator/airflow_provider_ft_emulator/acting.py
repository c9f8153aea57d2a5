"""Acting out a fault on one exchange: the plain faults of a flaky network or gateway, and the dispatch to all kinds."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from airflow_provider_ft_emulator import hostile
from airflow_provider_ft_emulator.errors import dashscope_error, error_body, status_fault_error
from airflow_provider_ft_emulator.exchange import Exchange
from airflow_provider_ft_emulator.faults import HANG_SECONDS, Fault
from airflow_provider_ft_emulator.specimens import canned_body

Handler = Callable[[Exchange], Awaitable[None]]
Action = Callable[[Fault, Exchange, Handler], Awaitable[None]]

#: Status of a ``status`` or ``html`` fault given none.
GATEWAY_STATUS = 503
PROXY_PAGE = (
    "<html>\r\n<head><title>{status} Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>{status} Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


async def act_out(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    """Answer (or fail to answer) ``exchange`` as ``fault`` says; ``handle`` serves it normally."""
    if fault.delay > 0 and fault.kind != "hang":
        await exchange.wait_shutdown(fault.delay)
    await ACTIONS[fault.kind](fault, exchange, handle)


async def _status(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    status = fault.status_or(GATEWAY_STATUS)
    error = status_fault_error(exchange.vendor, status)
    await exchange.respond_json(status, error_body(exchange.vendor, exchange.request_id, error), fault.headers)


async def _latency(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    await handle(exchange)


async def _hang(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    await exchange.hold(HANG_SECONDS)
    await exchange.drop()


async def _drop(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    await exchange.drop()


async def _drop_mid_body(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    body = canned_body(exchange)
    await exchange.respond_partially(200, body, len(body) // 2)


async def _html(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    status = fault.status_or(GATEWAY_STATUS)
    await exchange.respond(status, PROXY_PAGE.format(status=status).encode(), b"text/html", fault.headers)


async def _truncated(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    body = canned_body(exchange)
    await exchange.respond(200, body[: len(body) // 2], headers=fault.headers)


async def _empty(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    await exchange.respond(200, b"", headers=fault.headers)


async def _dashscope_200_error(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    body = dashscope_error(exchange.request_id, fault.code, "An internal error has occurred, please try again later.")
    await exchange.respond_json(200, body, fault.headers)


async def _lose_response(fault: Fault, exchange: Exchange, handle: Handler) -> None:
    await exchange.capture(handle)
    await exchange.drop()


ACTIONS: dict[str, Action] = {
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
    **hostile.ACTIONS,
}

"""A trivial keep-alive HTTP/1.1 server on 127.0.0.1: the same small JSON body for every request.

It does almost no work per request, so a client measured against it shows the client's own cost. Run as
``python -m benchmarks._trivial_server``: it prints its port, then serves until killed or stdin closes.
"""

from __future__ import annotations

import asyncio
import sys

BODY = b'{"object": "fine_tuning.job", "id": "ftjob-trivial", "status": "running"}'
RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(BODY), BODY)
BACKLOG = 4096


class OneAnswer(asyncio.Protocol):
    """Answers every complete request head (requests carry no body here) with ``RESPONSE``."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer and self.transport is not None:
            _, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            self.transport.write(RESPONSE)


async def serve() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(OneAnswer, "127.0.0.1", 0, backlog=BACKLOG)
    print(server.sockets[0].getsockname()[1], flush=True)
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    async with server:
        await stdin_closed


if __name__ == "__main__":
    asyncio.run(serve())

"""A loopback stand-in of OpenAI's fine-tuning job API for the anchor benchmark: cheap, answers after a fixed delay,
and ends every job after a given number of polls.

``GET .../fine_tuning/jobs/<id>`` answers ``running`` for the first ``--polls`` reads of a job id and ``succeeded``
from then on; ``GET .../fine_tuning/jobs/<id>/events`` answers two events without ``after=`` and an empty page with
it. Every answer leaves ``--delay`` seconds after its request came (``loop.call_later``, so waiting costs nothing).
Raw asyncio, no framework: at thousands of requests a second it stays a small share of one core, so the client is
what the benchmark measures, not a server that cannot keep up (the emulator, a full web stack, would lag behind at
the request rates of 10,000 triggers).

Run as ``python -m benchmarks._job_server --delay 0.02 --polls 4``: it prints its port, serves until stdin closes,
then prints one JSON line of what it saw (requests, job and event GETs, TCP connections, the most requests waiting
for their answer at once).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict, dataclass

BACKLOG = 4096
CREATED = 1796683701


@dataclass
class Seen:
    requests: int = 0
    job_gets: int = 0
    event_gets: int = 0
    other: int = 0
    connections: int = 0
    in_flight: int = 0
    max_in_flight: int = 0


def job_body(job_id: str, ended: bool) -> bytes:
    job = {
        "object": "fine_tuning.job",
        "id": job_id,
        "model": "gpt-4o-mini-2024-07-18",
        "created_at": CREATED,
        "finished_at": CREATED + 20 if ended else None,
        "fine_tuned_model": f"ft:gpt-4o-mini-2024-07-18:bench::{job_id[-8:]}" if ended else None,
        "organization_id": "org-bench",
        "result_files": [],
        "status": "succeeded" if ended else "running",
        "validation_file": None,
        "training_file": "file-bench",
        "hyperparameters": {"batch_size": "auto", "learning_rate_multiplier": "auto", "n_epochs": "auto"},
        "trained_tokens": 1000 if ended else None,
        "error": None,
        "seed": 1,
        "estimated_finish": None if ended else CREATED + 20,
        "integrations": [],
        "metadata": None,
        "user_provided_suffix": None,
    }
    return json.dumps(job).encode()


def events_body(job_id: str, first: bool) -> bytes:
    events = [
        {
            "object": "fine_tuning.job.event",
            "id": f"ftevent-{job_id[-12:]}-{index}",
            "created_at": CREATED,
            "level": "info",
            "message": message,
            "data": {},
            "type": "message",
        }
        for index, message in enumerate(("Fine-tuning job started", f"Created fine-tuning job: {job_id}"))
    ]
    return json.dumps({"object": "list", "data": events if first else [], "has_more": False}).encode()


def response(status: str, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


class JobApi(asyncio.Protocol):
    """Answers every complete request head (the GETs carry no body), each ``delay`` seconds after it came."""

    def __init__(self, seen: Seen, polls: dict[str, int], ends_after: int, delay: float) -> None:
        self.seen, self.polls, self.ends_after, self.delay = seen, polls, ends_after, delay
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.seen.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        loop = asyncio.get_running_loop()
        while b"\r\n\r\n" in self.buffer:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            self.seen.requests += 1
            self.seen.in_flight += 1
            self.seen.max_in_flight = max(self.seen.max_in_flight, self.seen.in_flight)
            loop.call_later(self.delay, self.answer, self.route(head))

    def route(self, head: bytes) -> bytes:
        method, target = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")[:2]
        path, _, query = target.partition("?")
        parts = path.rstrip("/").split("/")
        if method == "GET" and len(parts) >= 2 and parts[-2] == "jobs":
            self.seen.job_gets += 1
            job_id = parts[-1]
            self.polls[job_id] = count = self.polls.get(job_id, 0) + 1
            return response("200 OK", job_body(job_id, ended=count > self.ends_after))
        if method == "GET" and len(parts) >= 3 and parts[-1] == "events" and parts[-3] == "jobs":
            self.seen.event_gets += 1
            return response("200 OK", events_body(parts[-2], first="after=" not in query))
        self.seen.other += 1
        return response("404 Not Found", b'{"error": {"message": "not here", "type": "invalid_request_error"}}')

    def answer(self, data: bytes) -> None:
        self.seen.in_flight -= 1
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


async def serve(delay: float, ends_after: int) -> None:
    loop = asyncio.get_running_loop()
    seen, polls = Seen(), dict[str, int]()
    server = await loop.create_server(lambda: JobApi(seen, polls, ends_after, delay), "127.0.0.1", 0, backlog=BACKLOG)
    print(server.sockets[0].getsockname()[1], flush=True)
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    async with server:
        await stdin_closed
    print(json.dumps(asdict(seen)), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._job_server")
    parser.add_argument("--delay", type=float, default=0.02, help="seconds before each answer")
    parser.add_argument("--polls", type=int, default=4, help="job GETs a job answers 'running' before it ends")
    args = parser.parse_args()
    asyncio.run(serve(args.delay, args.polls))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

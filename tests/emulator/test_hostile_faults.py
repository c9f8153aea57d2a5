"""Every hostile fault kind and variant, observed over real HTTP (httpx, requests, or a raw socket for timing)."""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import time
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import requests

from airflow_provider_ft_emulator import Fault, FineTuningEmulator, hostile
from airflow_provider_ft_emulator.endless import FOREVER_TOTAL, NON_OBJECTS
from airflow_provider_ft_emulator.faults import HOSTILE_FAULT_KINDS, HUGE_SIZE, VARIANTS
from airflow_provider_ft_emulator.floods import BOMB_PREFIX
from tests.conftest import api_url

#: The key the client presents. Not the emulator's: hostile faults act before the key is checked, as an upstream
#: that echoes whatever it was sent would.
LEAKED = "sk-leaked-5f3a9c0e1b7d"
LEAKED_AUTH = {"Authorization": f"Bearer {LEAKED}"}
MIB = 1024 * 1024
#: Bytes a ``drip`` of variant ``content_length`` announces beyond what it sends (as documented).
MISSING_BYTES = 1024
#: Asyncio timers may fire a hair early; lower bounds on elapsed time allow for that.
EARLY = 0.9
# Small answers to drip: the 404 of an unknown job (OpenAI's has no request id, so it is the same every time).
UNKNOWN_JOB = {
    "dashscope": "/fine-tunes/ft-gone",
    "openai": "/fine_tuning/jobs/ftjob-gone",
    "azure": "/fine_tuning/jobs/ftjob-gone",
    "together": "/fine-tunes/ft-gone",
}
LISTING = {
    "dashscope": "/fine-tunes",
    "openai": "/fine_tuning/jobs",
    "azure": "/fine_tuning/jobs",
    "together": "/fine-tunes",
}
VENDORS = ("dashscope", "openai", "azure")


# -- helpers ------------------------------------------------------------------------------------------------------


def mount(emulator: FineTuningEmulator, vendor: str) -> str:
    """The path prefix of ``vendor`` on the server (``/dashscope/api/v1``, ``/openai/v1``)."""
    return urlsplit(api_url(emulator, vendor)).path


def strings(value: Any) -> list[str]:
    """Every string value anywhere in a decoded JSON document."""
    if isinstance(value, dict):
        return [text for item in value.values() for text in strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in strings(item)]
    return [value] if isinstance(value, str) else []


def without_request_id(body: Any) -> Any:
    """A DashScope body minus its per-request ``request_id`` (OpenAI bodies are returned as they are)."""
    return {name: item for name, item in body.items() if name != "request_id"}


def auth(emulator: FineTuningEmulator) -> dict[str, str]:
    """The header that authenticates to ``emulator``."""
    return {"Authorization": f"Bearer {emulator.api_key}"}


def normal_answer(emulator: FineTuningEmulator, vendor: str, path: str) -> Any:
    """What ``GET path`` answers without faults, decoded, with DashScope's request id left out."""
    response = requests.get(api_url(emulator, vendor) + path, headers=auth(emulator), timeout=5)
    return without_request_id(response.json())


@contextlib.contextmanager
def streamed(emulator: FineTuningEmulator, url: str) -> Iterator[httpx.Response]:
    """``GET url`` with the emulator's key, its body left to read (``iter_raw``: as sent, not decoded)."""
    with httpx.Client(headers=auth(emulator), timeout=10) as client, client.stream("GET", url) as response:
        yield response


class Wire:
    """One request on a raw socket: the bytes as they arrive, and when.

    ``sent_at`` is taken before the request is written, so ``arrival - sent_at`` bounds from above how long the
    server took: a byte the server holds back ``k`` intervals cannot arrive sooner than ``k`` intervals after it.
    """

    def __init__(self, emulator: FineTuningEmulator, method: str, path: str, *, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", emulator.port), timeout=timeout)
        self.buffer = b""
        self.sent_at = time.monotonic()
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {emulator.api_key}\r\n"
        self.sock.sendall(f"{head}Content-Length: 0\r\n\r\n".encode())

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def elapsed(self) -> float:
        return time.monotonic() - self.sent_at

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError(f"connection closed; unread: {self.buffer!r}")
        self.buffer += data

    def read_line(self) -> tuple[bytes, float]:
        """The next CRLF-terminated line (CRLF kept) and its arrival time since ``sent_at``."""
        while b"\r\n" not in self.buffer:
            self._fill()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line + b"\r\n", self.elapsed()

    def read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def read_head(self) -> tuple[int, dict[str, str]]:
        """The status and the headers (lowercase names) of the response."""
        status_line, _ = self.read_line()
        headers: dict[str, str] = {}
        while (line := self.read_line()[0]) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(status_line.split()[1]), headers

    def read_chunk(self) -> tuple[bytes, float]:
        """The data of the next chunk of a chunked body, and when its last byte arrived."""
        size_line, _ = self.read_line()
        size = int(size_line.strip(), 16)
        data = self.read_exactly(size + 2)
        assert data.endswith(b"\r\n")
        return data[:-2], self.elapsed()

    def read_until_quiet(self, seconds: float) -> bytes:
        """Everything that arrives until nothing has for ``seconds`` (the connection must stay open)."""
        self.sock.settimeout(seconds)
        try:
            while True:
                self._fill()
        except TimeoutError:
            data, self.buffer = self.buffer, b""
            return data

    def read_to_close(self) -> bytes:
        """Everything until the server closes the connection."""
        while True:
            try:
                self._fill()
            except EOFError:
                data, self.buffer = self.buffer, b""
                return data


def inflate_bounded(chunks: Iterator[bytes], limit: int) -> tuple[int, bytes, bool, bytes]:
    """Inflate a gzip stream piece by piece, never more than 64 KiB at a time, failing past ``limit`` bytes.

    Returns the inflated size, its first 64 bytes, whether all the rest are spaces, and any bytes after the gzip
    member. zlib checks the member's CRC and length at its end.
    """
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    total, first, rest_is_spaces = 0, b"", True

    def take(piece: bytes) -> None:
        nonlocal total, first, rest_is_spaces
        keep = max(0, 64 - total)
        first += piece[:keep]
        rest_is_spaces = rest_is_spaces and not piece[keep:].strip(b" ")
        total += len(piece)
        assert total <= limit, f"inflated past {limit} bytes"

    for chunk in chunks:
        data = chunk
        while data:
            take(inflater.decompress(data, 64 * 1024))
            data = inflater.unconsumed_tail
    take(inflater.flush())
    assert inflater.eof, "the gzip member did not end"
    return total, first, rest_is_spaces, inflater.unused_data


# -- echo_key -----------------------------------------------------------------------------------------------------


def assert_key_in_headers(response: requests.Response, key: str = LEAKED) -> None:
    assert response.headers["x-request-id"] == key
    assert response.headers["x-upstream-authorization"] == f"Bearer {key}"
    assert response.headers["www-authenticate"] == f'Bearer realm="{key}"'


def planted_jobs(vendor: str, body: Any, shape: str) -> list[dict[str, Any]]:
    """The jobs of a planted job or page body, checking the envelope the vendor puts around them."""
    if vendor == "dashscope":
        assert body["request_id"] == LEAKED
        output = body["output"]
        return list(output["jobs"]) if shape == "page" else [output]
    if shape == "page":
        assert (body["object"], body["has_more"]) == ("list", False)
        return list(body["data"])
    return [body]


def assert_planted_job(vendor: str, job: dict[str, Any]) -> None:
    id_field = "job_id" if vendor == "dashscope" else "id"
    assert job[id_field] == LEAKED
    assert job["status"] == LEAKED
    if vendor == "dashscope":
        assert job["job_name"] == job["code"] == LEAKED
        assert LEAKED in job["message"]
        assert job["create_time"] != LEAKED  # times are kept, so the body still parses as a job
    else:
        assert job["object"] == "fine_tuning.job"
        assert isinstance(job["created_at"], int)
        assert job["error"]["code"] == job["error"]["param"] == job["validation_file"] == LEAKED
        assert job["metadata"] == {"name": LEAKED, "owner": f"Bearer {LEAKED}"}


def assert_planted_error(vendor: str, body: Any) -> None:
    error = body if vendor == "dashscope" else body["error"]
    assert error["code"] == LEAKED
    assert LEAKED in error["message"]
    assert error["data"] == {
        "authorization": f"Bearer {LEAKED}",
        "request": {"headers": {"Authorization": f"Bearer {LEAKED}"}},
    }
    if vendor == "dashscope":
        assert body["request_id"] == LEAKED
    else:
        assert error["type"] == error["param"] == LEAKED


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize(
    ("variant", "path_of", "status", "shape"),
    [
        # answer: the shape the request would get
        pytest.param("answer", LISTING, 200, "page", id="answer-listing"),
        pytest.param("answer", UNKNOWN_JOB, 200, "job", id="answer-job"),
        pytest.param("job", LISTING, 200, "job", id="job"),
        pytest.param("page", UNKNOWN_JOB, 200, "page", id="page"),
        pytest.param("error", LISTING, 401, "error", id="error"),
    ],
)
def test_echo_key_plants_the_presented_key_in_body_and_headers(
    emulator: FineTuningEmulator, vendor: str, variant: str, path_of: dict[str, str], status: int, shape: str
) -> None:
    emulator.inject(Fault("echo_key", variant=variant))
    response = requests.get(api_url(emulator, vendor) + path_of[vendor], headers=LEAKED_AUTH, timeout=5)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert_key_in_headers(response)
    assert LEAKED.encode() in response.content  # written as is
    body = response.json()
    if shape == "error":
        assert_planted_error(vendor, body)
    else:
        jobs = planted_jobs(vendor, body, shape)
        assert len(jobs) == (2 if shape == "page" else 1)
        for job in jobs:
            assert_planted_job(vendor, job)
    assert emulator.api_key not in response.text
    record = emulator.requests[-1]
    assert (record.fault, record.status, record.authorized) == ("echo_key", status, False)


@pytest.mark.parametrize("vendor", VENDORS)
def test_echo_key_answer_with_an_error_status_is_an_error(emulator: FineTuningEmulator, vendor: str) -> None:
    emulator.inject(Fault("echo_key", status=429))
    response = requests.get(api_url(emulator, vendor) + LISTING[vendor], headers=LEAKED_AUTH, timeout=5)
    assert response.status_code == 429
    assert_planted_error(vendor, response.json())


@pytest.mark.parametrize("vendor", VENDORS)
def test_echo_key_text_is_plain_text_with_the_key(emulator: FineTuningEmulator, vendor: str) -> None:
    emulator.inject(Fault("echo_key", variant="text", times=2))
    response = requests.get(api_url(emulator, vendor) + LISTING[vendor], headers=LEAKED_AUTH, timeout=5)
    assert response.status_code == 401
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == f"upstream rejected Authorization: Bearer {LEAKED}"
    assert_key_in_headers(response)
    emulator.clear_faults()
    emulator.inject(Fault("echo_key", variant="text", status=502))
    assert requests.get(api_url(emulator, vendor) + LISTING[vendor], headers=LEAKED_AUTH, timeout=5).status_code == 502


@pytest.mark.parametrize("vendor", VENDORS)
def test_echo_key_escaped_hides_the_key_behind_unicode_escapes(emulator: FineTuningEmulator, vendor: str) -> None:
    emulator.inject(Fault("echo_key", variant="escaped"))
    response = requests.get(api_url(emulator, vendor) + LISTING[vendor], headers=LEAKED_AUTH, timeout=5)
    assert response.status_code == 200
    escaped = "".join(f"\\u{ord(char):04x}" for char in LEAKED).encode()
    assert LEAKED.encode() not in response.content
    assert escaped in response.content
    # Headers cannot be escaped, so this variant plants nothing there.
    assert "x-upstream-authorization" not in response.headers
    assert "www-authenticate" not in response.headers
    assert response.headers["x-request-id"] != LEAKED
    body = response.json()  # decoded, the strings hold the key again
    for job in planted_jobs(vendor, body, "page"):
        assert_planted_job(vendor, job)


def test_echo_key_escapes_a_key_with_json_specials(emulator: FineTuningEmulator, oa: str) -> None:
    key = 'sk-"quoted"\\slash'
    emulator.inject(Fault("echo_key", variant="error"))
    answers = [requests.get(f"{oa}/fine_tuning/jobs", headers={"Authorization": f"Bearer {key}"}, timeout=5)]
    emulator.inject(Fault("echo_key", variant="escaped"))
    answers.append(requests.get(f"{oa}/fine_tuning/jobs", headers={"Authorization": f"Bearer {key}"}, timeout=5))
    for response in answers:
        body = response.json()
        assert key in strings(body)
    assert answers[0].json()["error"]["code"] == key


def test_echo_key_without_a_key_plants_an_empty_one(emulator: FineTuningEmulator, ds: str) -> None:
    emulator.inject(Fault("echo_key", variant="job"))
    response = requests.get(f"{ds}/fine-tunes", timeout=5)
    assert response.status_code == 200
    assert response.json()["output"]["job_id"] == ""


def test_echo_key_does_not_touch_the_job(emulator: FineTuningEmulator, oa: str, http: requests.Session) -> None:
    job_id = emulator.seed_job("openai")
    emulator.inject(Fault("echo_key", method="POST", delay=0.2))
    started = time.monotonic()
    response = http.post(f"{oa}/fine_tuning/jobs/{job_id}/cancel")
    assert time.monotonic() - started >= 0.2 * EARLY  # delay applies to hostile kinds too
    assert response.status_code == 200
    assert response.json()["id"] == emulator.api_key  # the key this client presented
    assert emulator.job("openai", job_id)["status"] == "running"  # type: ignore[index]


# -- body ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"", None),
        (b'{"output": {"job_id": ', None),
        (b"\x00\xff\xfe\x80 not utf-8", 200),
        (b'{"status": "SUCCEEDED"}', 502),
        ("\N{SNOWMAN} \u2028".encode(), 404),
    ],
)
def test_body_answers_the_raw_bytes(
    emulator: FineTuningEmulator, ds: str, http: requests.Session, raw: bytes, status: int | None
) -> None:
    emulator.inject(Fault("body", body=raw, status=status))
    response = http.get(f"{ds}/fine-tunes")
    assert response.status_code == (200 if status is None else status)
    assert response.content == raw
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(raw))
    record = emulator.requests[-1]
    assert (record.fault, record.status) == ("body", response.status_code)


def test_body_keeps_a_given_content_type_and_headers(
    emulator: FineTuningEmulator, oa: str, http: requests.Session
) -> None:
    emulator.inject(Fault("body", body=b"<h1>upstream</h1>", headers={"Content-Type": "text/html", "X-Extra": "1"}))
    response = http.get(f"{oa}/fine_tuning/jobs")
    assert response.headers["content-type"] == "text/html"  # one, not joined with the default
    assert response.headers["x-extra"] == "1"
    assert response.text == "<h1>upstream</h1>"


def test_body_does_not_touch_the_job(emulator: FineTuningEmulator, ds: str, http: requests.Session) -> None:
    job_id = emulator.seed_job("dashscope")
    emulator.inject(Fault("body", body=b"{}", method="POST"))
    assert http.post(f"{ds}/fine-tunes/{job_id}/cancel").content == b"{}"
    assert emulator.job("dashscope", job_id)["status"] == "RUNNING"  # type: ignore[index]


# -- drip ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vendor", VENDORS)
def test_drip_body_sends_one_byte_per_interval(emulator: FineTuningEmulator, vendor: str) -> None:
    interval, count = 0.05, 5
    emulator.inject(Fault("drip", interval=interval))
    with Wire(emulator, "GET", mount(emulator, vendor) + UNKNOWN_JOB[vendor]) as wire:
        status, headers = wire.read_head()
        assert status == 404
        assert headers["transfer-encoding"] == "chunked"
        assert "content-length" not in headers
        assert headers["x-request-id"]
        received = b""
        for index in range(1, count + 1):
            data, arrived = wire.read_chunk()
            assert len(data) == 1
            assert arrived >= index * interval * EARLY, f"byte {index} came after {arrived:.3f} s"
            received += data
    assert received == (b'{"req' if vendor == "dashscope" else b'{"err')  # {"request_id": ... / {"error": ...
    record = emulator.requests[-1]
    assert (record.fault, record.status) == ("drip", 404)


@pytest.mark.parametrize("vendor", VENDORS)
def test_drip_body_delivers_the_whole_answer(emulator: FineTuningEmulator, vendor: str) -> None:
    interval = 0.005
    expected = normal_answer(emulator, vendor, UNKNOWN_JOB[vendor])
    emulator.inject(Fault("drip", interval=interval))
    started = time.monotonic()
    with streamed(emulator, api_url(emulator, vendor) + UNKNOWN_JOB[vendor]) as response:
        pieces = list(response.iter_raw())
    body = b"".join(pieces)
    assert response.status_code == 404
    assert {len(piece) for piece in pieces} == {1}
    assert time.monotonic() - started >= len(body) * interval * EARLY
    assert without_request_id(json.loads(body)) == expected
    if vendor == "dashscope":
        assert json.loads(body)["request_id"] == response.headers["x-request-id"]


def test_drip_serves_the_request_before_dripping(emulator: FineTuningEmulator, oa: str) -> None:
    job_id = emulator.seed_job("openai")
    emulator.inject(Fault("drip", method="POST", interval=0.05))
    with Wire(emulator, "POST", f"{mount(emulator, 'openai')}/fine_tuning/jobs/{job_id}/cancel") as wire:
        assert wire.read_head()[0] == 200
        assert emulator.job("openai", job_id)["status"] == "cancelled"  # type: ignore[index]


@pytest.mark.parametrize("vendor", VENDORS)
def test_drip_headers_sends_the_head_line_by_line(emulator: FineTuningEmulator, vendor: str) -> None:
    interval = 0.05
    expected = normal_answer(emulator, vendor, UNKNOWN_JOB[vendor])
    emulator.inject(Fault("drip", variant="headers", interval=interval))
    with Wire(emulator, "GET", mount(emulator, vendor) + UNKNOWN_JOB[vendor]) as wire:
        lines = [wire.read_line()]
        while lines[-1][0] != b"\r\n":
            lines.append(wire.read_line())
        for index, (line, arrived) in enumerate(lines):
            assert arrived >= index * interval * EARLY, f"line {index} {line!r} came after {arrived:.3f} s"
        assert lines[0][0] == b"HTTP/1.1 404 Not Found\r\n"
        headers = dict(line.decode().rstrip("\r\n").split(": ", 1) for line, _ in lines[1:-1])
        assert headers["connection"] == "close"
        assert headers["content-type"] == "application/json"
        body = wire.read_exactly(int(headers["content-length"]))
        assert without_request_id(json.loads(body)) == expected
        assert headers["x-request-id"]
        assert wire.read_to_close() == b""  # nothing after the body, and the server closes
    record = emulator.requests[-1]
    assert (record.fault, record.status) == ("drip", 404)


def test_drip_headers_reads_normally_through_a_client(emulator: FineTuningEmulator, ds: str) -> None:
    job_id = emulator.seed_job("dashscope")
    emulator.inject(Fault("drip", variant="headers", interval=0.02))
    with httpx.Client(headers=auth(emulator), timeout=5) as client:
        response = client.get(f"{ds}/fine-tunes/{job_id}")
    assert response.status_code == 200
    assert response.json()["output"]["job_id"] == job_id
    assert response.json()["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize("vendor", VENDORS)
def test_drip_content_length_announces_more_than_it_sends_and_holds(emulator: FineTuningEmulator, vendor: str) -> None:
    expected = normal_answer(emulator, vendor, UNKNOWN_JOB[vendor])
    emulator.inject(Fault("drip", variant="content_length"))
    with Wire(emulator, "GET", mount(emulator, vendor) + UNKNOWN_JOB[vendor]) as wire:
        status, headers = wire.read_head()
        assert status == 404
        body = wire.read_until_quiet(0.2)  # all that comes; then the connection stays open, silent
        assert int(headers["content-length"]) == len(body) + MISSING_BYTES
        assert without_request_id(json.loads(body)) == expected
        assert wire.read_until_quiet(0.3) == b""
    record = emulator.requests[-1]
    assert (record.fault, record.status) == ("drip", 404)


def test_drip_content_length_times_a_client_out(emulator: FineTuningEmulator, oa: str) -> None:
    emulator.inject(Fault("drip", variant="content_length"))
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{oa}/fine_tuning/jobs", headers=auth(emulator), timeout=0.3)


@pytest.mark.parametrize("variant", VARIANTS["drip"])
def test_drip_is_bounded_then_drops(
    emulator: FineTuningEmulator, monkeypatch: pytest.MonkeyPatch, variant: str
) -> None:
    monkeypatch.setattr(hostile, "HANG_SECONDS", 0.3)
    emulator.inject(Fault("drip", variant=variant, interval=0.1))
    with Wire(emulator, "GET", mount(emulator, "openai") + UNKNOWN_JOB["openai"]) as wire:
        received = wire.read_to_close()
        assert 0.3 * EARLY <= wire.elapsed() < 3
    if variant == "headers":
        assert received.startswith(b"HTTP/1.1 404 Not Found\r\n")
        assert b"\r\n\r\n" not in received  # dropped before the head was complete
    else:
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 404 Not Found\r\n")
        if variant == "body":
            assert b"\r\n0\r\n\r\n" not in body  # the chunked body never ended
            assert 0 < body.count(b"1\r\n") < 10
        else:
            announced = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
            assert len(body) == announced - MISSING_BYTES
    assert emulator.requests[-1].fault == "drip"


@pytest.mark.parametrize("variant", VARIANTS["drip"])
def test_drip_answers_a_given_status(emulator: FineTuningEmulator, variant: str) -> None:
    emulator.inject(Fault("drip", variant=variant, status=503, interval=0.05))
    with Wire(emulator, "GET", mount(emulator, "openai") + UNKNOWN_JOB["openai"]) as wire:
        assert wire.read_line()[0] == b"HTTP/1.1 503 Service Unavailable\r\n"
    assert emulator.requests[-1].status == 503


# -- gzip ---------------------------------------------------------------------------------------------------------


def raw_get(emulator: FineTuningEmulator, url: str) -> tuple[httpx.Response, bytes]:
    """GET ``url`` with the emulator's key and return the response with its body as sent (not decoded)."""
    with streamed(emulator, url) as response:
        return response, b"".join(response.iter_raw())


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("variant", ["gzip", "deflate"])
def test_gzip_encodes_the_real_answer(
    emulator: FineTuningEmulator, http: requests.Session, vendor: str, variant: str
) -> None:
    job_id = emulator.seed_job(vendor)
    url = api_url(emulator, vendor) + f"{LISTING[vendor]}/{job_id}"
    emulator.inject(Fault("gzip", variant=None if variant == "gzip" else variant, times=2))
    response, raw = raw_get(emulator, url)
    assert response.status_code == 200
    assert response.headers["content-encoding"] == variant
    assert response.headers["content-length"] == str(len(raw))
    decoded = json.loads(gzip.decompress(raw) if variant == "gzip" else zlib.decompress(raw))
    job = decoded["output"] if vendor == "dashscope" else decoded
    assert job == emulator.job(vendor, job_id)
    # A client that decodes content encodings sees the normal answer.
    served = http.get(url).json()
    assert (served["output"]["job_id"] if vendor == "dashscope" else served["id"]) == job_id
    assert [(r.fault, r.status) for r in emulator.requests] == [("gzip", 200)] * 2


def test_gzip_serves_the_request_first(emulator: FineTuningEmulator, oa: str, http: requests.Session) -> None:
    job_id = emulator.seed_job("openai")
    emulator.inject(Fault("gzip", method="POST"))
    response = http.post(f"{oa}/fine_tuning/jobs/{job_id}/cancel")
    assert response.headers["content-encoding"] == "gzip"
    assert response.json()["status"] == "cancelled"
    assert emulator.job("openai", job_id)["status"] == "cancelled"  # type: ignore[index]


def test_gzip_keeps_the_answer_status_unless_given_one(emulator: FineTuningEmulator, ds: str) -> None:
    emulator.inject(Fault("gzip"))
    response, raw = raw_get(emulator, f"{ds}/fine-tunes/ft-gone")
    assert response.status_code == 404
    assert json.loads(gzip.decompress(raw))["code"] == "NotFound"
    emulator.inject(Fault("gzip", variant="deflate", status=503))
    response, raw = raw_get(emulator, f"{ds}/fine-tunes")
    assert response.status_code == 503
    assert json.loads(zlib.decompress(raw))["output"]["jobs"] == []


@pytest.mark.parametrize("size", [5, MIB, MIB + 123, 3 * MIB])
def test_gzip_bomb_inflates_to_size(emulator: FineTuningEmulator, oa: str, size: int) -> None:
    emulator.inject(Fault("gzip", variant="bomb", size=size))
    with streamed(emulator, f"{oa}/fine_tuning/jobs") as response:
        assert response.status_code == 200
        assert response.headers["content-encoding"] == "gzip"
        assert response.headers["content-type"] == "application/json"
        compressed = int(response.headers["content-length"])
        inflated, first, rest_is_spaces, after = inflate_bounded(response.iter_raw(), size)
    assert compressed <= max(64, size // 500)  # about 1 KiB per inflated MiB
    assert inflated == size
    assert first == (BOMB_PREFIX + b" " * 64)[: min(size, 64)]
    assert rest_is_spaces
    assert after == b""  # one gzip member
    assert (emulator.requests[-1].fault, emulator.requests[-1].status) == ("gzip", 200)


def test_gzip_bomb_does_not_serve_the_request(emulator: FineTuningEmulator, ds: str, http: requests.Session) -> None:
    job_id = emulator.seed_job("dashscope")
    emulator.inject(Fault("gzip", variant="bomb", size=4096, status=500, method="POST"))
    with http.post(f"{ds}/fine-tunes/{job_id}/cancel", stream=True) as response:
        assert response.status_code == 500
        assert len(gzip.decompress(response.raw.read(decode_content=False))) == 4096
    assert emulator.job("dashscope", job_id)["status"] == "RUNNING"  # type: ignore[index]


# -- huge ---------------------------------------------------------------------------------------------------------

HUGE_TEST_SIZE = 256 * 1024


@pytest.mark.parametrize("vendor", VENDORS)
def test_huge_job_is_a_failed_job_of_size_bytes(emulator: FineTuningEmulator, vendor: str) -> None:
    emulator.inject(Fault("huge", size=HUGE_TEST_SIZE))
    response, raw = raw_get(emulator, api_url(emulator, vendor) + UNKNOWN_JOB[vendor])
    assert response.status_code == 200
    assert response.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.headers
    assert len(raw) == HUGE_TEST_SIZE
    body = json.loads(raw)
    if vendor == "dashscope":
        job, message = body["output"], body["output"]["message"]
        assert job["status"] == "FAILED"
    else:
        job, message = body, body["error"]["message"]
        assert job["status"] == "failed"
    assert set(message) == {"x"}
    assert len(message) > HUGE_TEST_SIZE - 2048
    assert (emulator.requests[-1].fault, emulator.requests[-1].status) == ("huge", 200)


@pytest.mark.parametrize("vendor", VENDORS)
def test_huge_page_is_one_page_of_distinct_jobs(emulator: FineTuningEmulator, vendor: str) -> None:
    emulator.inject(Fault("huge", variant="page", size=HUGE_TEST_SIZE))
    response, raw = raw_get(emulator, api_url(emulator, vendor) + LISTING[vendor])
    assert response.status_code == 200
    assert response.headers["transfer-encoding"] == "chunked"
    assert HUGE_TEST_SIZE <= len(raw) <= HUGE_TEST_SIZE * 1.1  # about size
    body = json.loads(raw)
    if vendor == "dashscope":
        jobs, ids = body["output"]["jobs"], [job["job_id"] for job in body["output"]["jobs"]]
        assert body["output"]["page_size"] == body["output"]["total"] == len(jobs)
    else:
        jobs, ids = body["data"], [job["id"] for job in body["data"]]
        assert body["has_more"] is False
    assert len(jobs) > 100
    assert len(set(ids)) == len(ids)
    assert all(job["status"] in ("RUNNING", "running") for job in jobs)


@pytest.mark.parametrize("vendor", VENDORS)
def test_huge_error_text_is_plain_text_of_size_bytes(emulator: FineTuningEmulator, vendor: str) -> None:
    emulator.inject(Fault("huge", variant="error_text", size=HUGE_TEST_SIZE))
    response, raw = raw_get(emulator, api_url(emulator, vendor) + LISTING[vendor])
    assert response.status_code == 500
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert len(raw) == HUGE_TEST_SIZE
    assert raw.startswith(b"upstream error: ")
    assert set(raw.removeprefix(b"upstream error: ")) == {ord("x")}


@pytest.mark.parametrize("variant", VARIANTS["huge"])
def test_huge_answers_a_given_status(emulator: FineTuningEmulator, oa: str, variant: str) -> None:
    emulator.inject(Fault("huge", variant=variant, size=1000, status=502))
    response, raw = raw_get(emulator, f"{oa}/fine_tuning/jobs")
    assert response.status_code == 502
    assert 0 < len(raw) < 5000


def test_huge_default_size_streams_and_a_client_may_leave(emulator: FineTuningEmulator, oa: str) -> None:
    emulator.inject(Fault("huge", variant="error_text"))
    read = 0
    with streamed(emulator, f"{oa}/fine_tuning/jobs") as response:
        assert response.headers["transfer-encoding"] == "chunked"
        for chunk in response.iter_raw():
            read += len(chunk)
            if read >= HUGE_TEST_SIZE:
                break
    assert HUGE_TEST_SIZE <= read < HUGE_SIZE
    started = time.monotonic()
    normal = requests.get(f"{oa}/fine_tuning/jobs", headers=auth(emulator), timeout=5)
    assert normal.json() == {"object": "list", "data": [], "has_more": False}
    assert time.monotonic() - started < 2


# -- endless_pages ------------------------------------------------------------------------------------------------


def openai_pages(http: requests.Session, oa: str, pages: int, limit: int | None = 3) -> list[dict[str, Any]]:
    """``pages`` pages of the OpenAI listing, each asked ``after`` the last id of the one before."""
    params: dict[str, Any] = {} if limit is None else {"limit": limit}
    answers = []
    for _ in range(pages):
        response = http.get(f"{oa}/fine_tuning/jobs", params=params)
        assert response.status_code == 200
        answer = response.json()
        assert answer["object"] == "list"
        assert answer["has_more"] is True  # always more
        answers.append(answer)
        last = answer["data"][-1]
        if isinstance(last, dict):
            params["after"] = last["id"]
    return answers


def dashscope_pages(http: requests.Session, ds: str, pages: int, size: int | None = 3) -> list[dict[str, Any]]:
    """Pages 1 to ``pages`` of the DashScope listing."""
    answers = []
    for page_no in range(1, pages + 1):
        params: dict[str, Any] = {"page_no": page_no}
        if size is not None:
            params["page_size"] = size
        response = http.get(f"{ds}/fine-tunes", params=params)
        assert response.status_code == 200
        output = response.json()["output"]
        assert output["page_size"] == len(output["jobs"])  # every page is full
        answers.append(output)
    return answers


def openai_ids(page: dict[str, Any]) -> list[str]:
    return [job["id"] for job in page["data"]]


def dashscope_ids(page: dict[str, Any]) -> list[str]:
    return [job["job_id"] for job in page["jobs"]]


@pytest.mark.parametrize("variant", ["fresh", "total"])
def test_endless_openai_fresh_ids_after_every_cursor(
    emulator: FineTuningEmulator, oa: str, http: requests.Session, variant: str
) -> None:
    # OpenAI pages have no total, so ``total`` is ``fresh`` there.
    emulator.inject(Fault("endless_pages", variant=None if variant == "fresh" else variant, times=5))
    pages = openai_pages(http, oa, 5)
    ids = [job_id for page in pages for job_id in openai_ids(page)]
    assert len(ids) == len(set(ids)) == 15
    assert ids == [f"ftjob-endless{index:017d}" for index in range(15)]
    assert all(job["object"] == "fine_tuning.job" and job["status"] == "running" for p in pages for job in p["data"])
    assert [(r.fault, r.status) for r in emulator.requests] == [("endless_pages", 200)] * 5
    assert emulator.jobs("openai") == []


def test_endless_openai_alternate_two_pages(emulator: FineTuningEmulator, oa: str, http: requests.Session) -> None:
    emulator.inject(Fault("endless_pages", variant="alternate", times=4))
    first, second, third, fourth = (openai_ids(page) for page in openai_pages(http, oa, 4))
    assert first == third != second == fourth
    assert not set(first) & set(second)


def test_endless_openai_same_page(emulator: FineTuningEmulator, oa: str, http: requests.Session) -> None:
    emulator.inject(Fault("endless_pages", variant="same", times=4))
    pages = [openai_ids(page) for page in openai_pages(http, oa, 4)]
    assert pages == [pages[0]] * 4
    assert len(set(pages[0])) == 3


def test_endless_openai_non_objects(emulator: FineTuningEmulator, oa: str, http: requests.Session) -> None:
    emulator.inject(Fault("endless_pages", variant="non_objects", times=3))
    for page in openai_pages(http, oa, 3, limit=8):
        assert page["data"] == [NON_OBJECTS[index % len(NON_OBJECTS)] for index in range(8)]
        assert not any(isinstance(item, dict) for item in page["data"])


def test_endless_dashscope_fresh_always_one_page_more(
    emulator: FineTuningEmulator, ds: str, http: requests.Session
) -> None:
    emulator.inject(Fault("endless_pages", times=5))
    pages = dashscope_pages(http, ds, 5)
    assert [page["page_no"] for page in pages] == [1, 2, 3, 4, 5]
    assert [page["total"] for page in pages] == [6, 9, 12, 15, 18]  # one page beyond the one asked for
    ids = [job_id for page in pages for job_id in dashscope_ids(page)]
    assert ids == [f"ft-endless-{index:012d}" for index in range(15)]
    assert all(job["status"] == "RUNNING" for page in pages for job in page["jobs"])
    assert emulator.jobs("dashscope") == []


def test_endless_dashscope_alternate_pages_one_and_two(
    emulator: FineTuningEmulator, ds: str, http: requests.Session
) -> None:
    emulator.inject(Fault("endless_pages", variant="alternate", times=4))
    pages = dashscope_pages(http, ds, 4)
    assert [page["page_no"] for page in pages] == [1, 2, 1, 2]
    first, second, third, fourth = (dashscope_ids(page) for page in pages)
    assert first == third != second == fourth
    assert [page["total"] for page in pages] == [6, 9, 12, 15]


def test_endless_dashscope_same_page(emulator: FineTuningEmulator, ds: str, http: requests.Session) -> None:
    emulator.inject(Fault("endless_pages", variant="same", times=4))
    pages = dashscope_pages(http, ds, 4)
    assert [page["page_no"] for page in pages] == [1, 2, 3, 4]
    assert [dashscope_ids(page) for page in pages] == [dashscope_ids(pages[0])] * 4
    assert all(page["total"] > page["page_no"] * page["page_size"] for page in pages)


def test_endless_dashscope_total_never_reached(emulator: FineTuningEmulator, ds: str, http: requests.Session) -> None:
    emulator.inject(Fault("endless_pages", variant="total", times=3))
    pages = dashscope_pages(http, ds, 3)
    assert [page["total"] for page in pages] == [FOREVER_TOTAL] * 3
    ids = [job_id for page in pages for job_id in dashscope_ids(page)]
    assert len(set(ids)) == 9


def test_endless_dashscope_non_objects(emulator: FineTuningEmulator, ds: str, http: requests.Session) -> None:
    emulator.inject(Fault("endless_pages", variant="non_objects", times=2))
    for page in dashscope_pages(http, ds, 2, size=7):
        assert page["jobs"] == [NON_OBJECTS[index % len(NON_OBJECTS)] for index in range(7)]
        assert page["total"] == FOREVER_TOTAL


@pytest.mark.parametrize(
    ("vendor", "query", "expected"),
    [
        ("openai", {}, 20),
        ("openai", {"limit": "500"}, 100),
        ("openai", {"limit": "0"}, 1),
        ("openai", {"limit": "\N{SUPERSCRIPT TWO}"}, 20),
        ("openai", {"limit": "2", "after": "ftjob-endless\N{SUPERSCRIPT TWO}"}, 2),
        ("dashscope", {}, 10),
        ("dashscope", {"page_size": "1000"}, 100),
        ("dashscope", {"page_size": "nope", "page_no": "\N{SUPERSCRIPT TWO}"}, 10),
    ],
)
def test_endless_page_sizes(
    emulator: FineTuningEmulator, http: requests.Session, vendor: str, query: dict[str, str], expected: int
) -> None:
    emulator.inject(Fault("endless_pages"))
    response = http.get(api_url(emulator, vendor) + LISTING[vendor], params=query)
    assert response.status_code == 200
    body = response.json()
    assert len(body["data"] if vendor != "dashscope" else body["output"]["jobs"]) == expected


# -- redirect -----------------------------------------------------------------------------------------------------


def no_follow(emulator: FineTuningEmulator) -> httpx.Client:
    return httpx.Client(headers=auth(emulator), timeout=5, follow_redirects=False)


@pytest.mark.parametrize("vendor", VENDORS)
def test_redirect_points_under_elsewhere_with_an_empty_body(emulator: FineTuningEmulator, vendor: str) -> None:
    job_id = emulator.seed_job(vendor)
    path = f"{LISTING[vendor]}/{job_id}"
    emulator.inject(Fault("redirect"))
    with no_follow(emulator) as client:
        response = client.get(api_url(emulator, vendor) + path)
    assert response.status_code == 302
    assert response.headers["location"] == f"/elsewhere{mount(emulator, vendor)}{path}"
    assert response.content == b""
    assert (emulator.requests[-1].fault, emulator.requests[-1].status) == ("redirect", 302)


@pytest.mark.parametrize("status", [301, 303, 307, 308])
def test_redirect_answers_a_given_3xx(emulator: FineTuningEmulator, oa: str, status: int) -> None:
    emulator.inject(Fault("redirect", status=status))
    with no_follow(emulator) as client:
        response = client.get(f"{oa}/fine_tuning/jobs")
    assert response.status_code == status
    assert response.headers["location"] == "/elsewhere/openai/v1/fine_tuning/jobs"


@pytest.mark.parametrize("vendor", VENDORS)
def test_redirect_job_carries_a_succeeded_job(emulator: FineTuningEmulator, vendor: str) -> None:
    emulator.inject(Fault("redirect", variant="job", times=2))
    with no_follow(emulator) as client:
        named = client.get(api_url(emulator, vendor) + UNKNOWN_JOB[vendor])
        listing = client.get(api_url(emulator, vendor) + LISTING[vendor])
    for response, job_id in [(named, UNKNOWN_JOB[vendor].rsplit("/", 1)[1]), (listing, "ftjob-redirected000000000000")]:
        assert response.status_code == 302
        assert response.headers["location"].startswith("/elsewhere/")
        body = response.json()
        if vendor == "dashscope":
            assert body["request_id"] == response.headers["x-request-id"]
            assert (body["output"]["job_id"], body["output"]["status"]) == (job_id, "SUCCEEDED")
        else:
            assert (body["object"], body["id"], body["status"]) == ("fine_tuning.job", job_id, "succeeded")
            assert body["fine_tuned_model"]


def test_redirect_does_not_touch_the_job(emulator: FineTuningEmulator, ds: str) -> None:
    job_id = emulator.seed_job("dashscope")
    emulator.inject(Fault("redirect", method="POST", status=307))
    with no_follow(emulator) as client:
        assert client.post(f"{ds}/fine-tunes/{job_id}/cancel").status_code == 307
    assert emulator.job("dashscope", job_id)["status"] == "RUNNING"  # type: ignore[index]


def test_redirect_keeps_a_given_location(emulator: FineTuningEmulator, oa: str) -> None:
    emulator.inject(Fault("redirect", headers={"Location": "http://203.0.113.9/collect"}))
    with no_follow(emulator) as client:
        response = client.get(f"{oa}/fine_tuning/jobs")
    assert response.headers.get_list("location") == ["http://203.0.113.9/collect"]


def test_redirect_location_keeps_the_path_as_sent(emulator: FineTuningEmulator, oa: str) -> None:
    emulator.inject(Fault("redirect", variant="job"))
    with no_follow(emulator) as client:
        response = client.get(f"{oa}/fine_tuning/jobs/%E2%9C%93%20x")
    assert response.status_code == 302
    assert response.headers["location"] == "/elsewhere/openai/v1/fine_tuning/jobs/%E2%9C%93%20x"
    assert response.json()["id"] == "\N{CHECK MARK} x"


def test_following_a_redirect_leaves_both_mounts(emulator: FineTuningEmulator, ds: str) -> None:
    emulator.inject(Fault("redirect"))
    with httpx.Client(headers=auth(emulator), timeout=5, follow_redirects=True) as client:
        response = client.get(f"{ds}/fine-tunes")
    assert response.status_code == 404
    assert response.url.path == "/elsewhere/dashscope/api/v1/fine-tunes"
    first, second = emulator.requests
    assert (first.vendor, first.status, first.fault) == ("dashscope", 302, "redirect")
    assert (second.vendor, second.path, second.status, second.fault) == (
        None,
        "/elsewhere/dashscope/api/v1/fine-tunes",
        404,
        None,
    )


# -- checking a Fault's arguments ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "drip", "variant": "trickle"}, r"fault kind 'drip' has no variant 'trickle'; expected one of"),
        ({"kind": "echo_key", "variant": "bomb"}, r"has no variant 'bomb'"),
        ({"kind": "status", "variant": "answer"}, r"'status' has no variant 'answer'; expected none"),
        ({"kind": "body", "variant": "job"}, r"has no variant"),
        ({"kind": "body"}, r"a 'body' fault needs body="),
        ({"kind": "body", "body": "text, not bytes"}, r"a 'body' fault needs body="),
        ({"kind": "echo_key", "body": b"{}"}, r"body is only for 'body' faults, not 'echo_key'"),
        ({"kind": "status", "body": b""}, r"body is only for 'body' faults"),
        ({"kind": "redirect", "status": 200}, r"a redirect's status must be one of \[301, 302, 303, 307, 308\]"),
        ({"kind": "redirect", "status": 304}, r"a redirect's status must be one of"),
        ({"kind": "body", "body": b"", "status": 600}, r"status must be an HTTP status from 100 to 599"),
        ({"kind": "huge", "status": True}, r"status must be an HTTP status"),
        ({"kind": "huge", "status": "500"}, r"status must be an HTTP status"),
        ({"kind": "drip", "interval": 0}, r"interval must be more than 0 seconds"),
        ({"kind": "drip", "interval": -0.5}, r"interval must be more than 0 seconds"),
        ({"kind": "drip", "interval": float("inf")}, r"interval must be more than 0 seconds"),
        ({"kind": "drip", "interval": float("nan")}, r"interval must be more than 0 seconds"),
        ({"kind": "drip", "interval": True}, r"interval must be a number of seconds"),
        ({"kind": "drip", "interval": "0.1"}, r"interval must be a number of seconds"),
        ({"kind": "huge", "size": 0}, r"size must be a whole number of bytes, 1 or more"),
        ({"kind": "gzip", "size": -1}, r"size must be a whole number of bytes"),
        ({"kind": "gzip", "size": 1.5}, r"size must be a whole number of bytes"),
        ({"kind": "huge", "size": True}, r"size must be a whole number of bytes"),
    ],
)
def test_invalid_hostile_faults_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Fault(**kwargs)


@pytest.mark.parametrize("kind", sorted(HOSTILE_FAULT_KINDS))
def test_every_variant_is_accepted_and_the_first_is_the_default(kind: str) -> None:
    extra: dict[str, Any] = {"body": b""} if kind == "body" else {}
    default = Fault(kind, **extra)
    assert default.status is None
    assert default.chosen_variant == (VARIANTS[kind][0] if kind in VARIANTS else None)
    for variant in VARIANTS.get(kind, ()):
        assert Fault(kind, variant=variant, **extra).chosen_variant == variant


def test_every_hostile_kind_is_acted_out() -> None:
    assert set(hostile.ACTIONS) == HOSTILE_FAULT_KINDS
    assert set(VARIANTS) <= HOSTILE_FAULT_KINDS

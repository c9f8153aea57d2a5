"""What the transports do to every answer before a dialect sees it: decode it within a size cap, scrub secrets.

Pure (h11-style): the transports feed bytes in and take bytes out; the I/O is theirs.
"""

from __future__ import annotations

import contextlib
import json
import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol
from urllib.parse import quote

from airflow_provider_ft.exceptions import BodyTooLarge, FineTuningApiError

#: Content encodings we ask for (``Accept-Encoding``) and can decode within the cap.
ACCEPTED_ENCODINGS = "gzip, deflate"
#: An error answer is read up to this many bytes: enough for any error document, and for its snippet.
ERROR_BODY_LIMIT = 64 * 1024
#: Most bytes one decompression step may produce, so that no single step takes long or takes much memory.
_STEP = 256 * 1024
REDACTED = "***"


class _Decompressor(Protocol):
    @property
    def unconsumed_tail(self) -> bytes: ...

    def decompress(self, data: bytes, max_length: int, /) -> bytes: ...

    def flush(self) -> bytes: ...


class BodyReader:
    """Decodes one answer's raw bytes (identity, gzip or deflate) and refuses to hold more than ``limit`` bytes.

    :param content_encoding: the answer's ``Content-Encoding`` header (``None``: identity)
    :param limit: most decoded bytes kept
    :param truncate: keep the first ``limit`` bytes and stop (for error answers) instead of raising
    :param status: the answer's HTTP status, for the errors raised
    """

    def __init__(self, content_encoding: str | None, limit: int, *, truncate: bool = False, status: int = 0) -> None:
        self.limit = limit
        self.truncate = truncate
        self.status = status
        self.full = False
        self._body = bytearray()
        self._decoder = _decoder(content_encoding, status)

    def feed(self, raw: bytes) -> None:
        """Take the next raw bytes; ``full`` turns true when nothing more is wanted (``truncate`` only)."""
        for _ in self.steps(raw):
            pass

    def steps(self, raw: bytes) -> Iterator[None]:
        """``feed`` one decompression step (at most 256 KiB decoded) at a time, yielding after each step, so that
        an event loop can run between them: a few KiB of a compressed body can inflate to megabytes."""
        if self._decoder is None:
            self._keep(raw)
            return
        data = raw
        while data and not self.full:
            self._keep(self._inflate(data))
            data = self._decoder.unconsumed_tail
            yield

    def finish(self) -> bytes:
        """The decoded body (the first ``limit`` bytes when truncating)."""
        if self._decoder is not None and not self.full:
            with contextlib.suppress(zlib.error):  # a cut compressed stream: the dialect judges what was decoded
                self._keep(self._decoder.flush())
        return bytes(self._body)

    def _inflate(self, data: bytes) -> bytes:
        assert self._decoder is not None
        try:
            return self._decoder.decompress(data, _STEP)
        except zlib.error as error:
            raise FineTuningApiError(
                f"the answer's compressed body is corrupt ({error})", http_status=self.status
            ) from None

    def _keep(self, chunk: bytes) -> None:
        room = self.limit - len(self._body)
        if len(chunk) <= room:
            self._body += chunk
            return
        if not self.truncate:
            raise BodyTooLarge(
                f"the answer is larger than max_response_bytes={self.limit} bytes; refused without reading the rest",
                http_status=self.status,
            )
        self._body += chunk[:room]
        self.full = True


def _decoder(content_encoding: str | None, status: int) -> _Decompressor | None:
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    if encoding == "deflate":
        return _DeflateDecoder()
    raise FineTuningApiError(
        f"the answer is encoded as {encoding[:40]!r}, not one of those asked for ({ACCEPTED_ENCODINGS})",
        http_status=status,
    )


class _DeflateDecoder:
    """``deflate`` as servers send it: zlib-wrapped as the RFC says, or raw deflate as some do."""

    def __init__(self) -> None:
        self._inner: zlib._Decompress | None = None
        self.unconsumed_tail = b""

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._inner is None:
            wrapped = len(data) >= 2 and (data[0] & 0x0F) == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._inner = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        out = self._inner.decompress(data, max_length)
        self.unconsumed_tail = self._inner.unconsumed_tail
        return out

    def flush(self) -> bytes:
        return self._inner.flush() if self._inner is not None else b""


class Scrubber:
    """Replaces the connection's secrets wherever a server put them: in header values and in the body.

    A body is scrubbed as bytes (the secret as sent, percent-encoded, and JSON-escaped), and, when it holds JSON
    escapes that could spell a secret another way (``\\u0073k-...``), as the JSON document it decodes to.

    :param secrets: the values never to pass on (the API key)
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = tuple(secret for secret in dict.fromkeys(secrets) if secret)
        spellings = {variant for secret in self._secrets for variant in _spellings(secret)}
        self._byte_spellings = sorted((variant.encode() for variant in spellings), key=len, reverse=True)

    def text(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return {self.text(name.lower()): self.text(value) for name, value in headers.items()}

    def body(self, body: bytes) -> bytes:
        if not self._secrets:
            return body
        for spelling in self._byte_spellings:
            body = body.replace(spelling, REDACTED.encode())
        if b"\\" in body:
            body = self._json_body(body)
        return body

    def _json_body(self, body: bytes) -> bytes:
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            return body
        try:
            cleaned = self._value(document)
        except RecursionError:
            return body  # nested too deep for any dialect to decode either: it becomes an error, never a value
        if cleaned == document:
            return body
        return json.dumps(cleaned).encode()

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self._value(item) for item in value]
        if isinstance(value, dict):
            return {self.text(key): self._value(item) for key, item in value.items()}
        return value


def _spellings(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), json.dumps(secret)[1:-1], secret.replace("/", "\\/")}

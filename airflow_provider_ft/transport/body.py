"""What the transports do to every answer before a dialect sees it: decode it within a size cap, scrub secrets.

Pure (h11-style): the transports feed bytes in and take bytes out; the I/O is theirs.
"""

from __future__ import annotations

import contextlib
import json
import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote

from airflow_provider_ft.exceptions import BodyTooLarge, FineTuningApiError

#: Content encodings we ask for (``Accept-Encoding``) and can decode within the cap.
ACCEPTED_ENCODINGS = "gzip, deflate"
#: An error answer is read up to this many bytes: enough for any error document, and for its snippet.
ERROR_BODY_LIMIT = 64 * 1024
#: Most bytes one decompression step may produce, so that no single step takes long or takes much memory.
_STEP = 256 * 1024
#: zlib's window bits for ``deflate``: chosen from the first bytes, as servers send it zlib-wrapped or raw.
_DEFLATE = 0
REDACTED = "***"


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
        self._window_bits = _window_bits(content_encoding, status)
        self._decoder: zlib._Decompress | None = None

    def feed(self, raw: bytes) -> None:
        """Take the next raw bytes; ``full`` turns true when nothing more is wanted (``truncate`` only)."""
        for _ in self.steps(raw):
            pass

    def steps(self, raw: bytes) -> Iterator[None]:
        """``feed`` one decompression step (at most 256 KiB decoded) at a time, yielding after each step, so that
        an event loop can run between them: a few KiB of a compressed body can inflate to megabytes."""
        if self._window_bits is None:
            self._keep(raw)
            return
        data = raw
        while data and not self.full:
            if self._decoder is None:
                self._decoder = zlib.decompressobj(self._window_bits or _deflate_bits(data))
            try:
                self._keep(self._decoder.decompress(data, _STEP))
            except zlib.error as error:
                message = f"the answer's compressed body is corrupt ({error})"
                raise FineTuningApiError(message, http_status=self.status) from None
            data = self._decoder.unconsumed_tail
            yield

    def finish(self) -> bytes:
        """The decoded body (the first ``limit`` bytes when truncating)."""
        if self._decoder is not None and not self.full:
            with contextlib.suppress(zlib.error):  # a cut compressed stream: the dialect judges what was decoded
                self._keep(self._decoder.flush())
        return bytes(self._body)

    def _keep(self, chunk: bytes) -> None:
        room = self.limit - len(self._body)
        if len(chunk) <= room:
            self._body += chunk
        elif self.truncate:
            self._body += chunk[:room]
            self.full = True
        else:
            raise BodyTooLarge(
                f"the answer is larger than max_response_bytes={self.limit} bytes; refused without reading the rest",
                http_status=self.status,
            )


def _window_bits(content_encoding: str | None, status: int) -> int | None:
    """zlib's window bits for the encoding (``None``: identity, no decoding)."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.MAX_WBITS | 16
    if encoding == "deflate":
        return _DEFLATE
    raise FineTuningApiError(
        f"the answer is encoded as {encoding[:40]!r}, not one of those asked for ({ACCEPTED_ENCODINGS})",
        http_status=status,
    )


def _deflate_bits(data: bytes) -> int:
    wrapped = len(data) >= 2 and (data[0] & 0x0F) == 8 and (data[0] << 8 | data[1]) % 31 == 0
    return zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS


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
        return self._json_body(body) if b"\\" in body else body

    def _json_body(self, body: bytes) -> bytes:
        try:
            document = json.loads(body)
            cleaned = self._value(document)
        except (ValueError, RecursionError):  # not JSON, or too deep for a dialect too: an error, never a value
            return body
        return body if cleaned == document else json.dumps(cleaned).encode()

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

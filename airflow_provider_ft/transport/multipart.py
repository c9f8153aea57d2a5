"""A ``multipart/form-data`` body streamed from a local file: form fields, then the file, read in chunks.

A training file can be gigabytes: it is never read into memory. The length is known before sending (the fields
and the file's checked size), so the request carries a ``Content-Length`` rather than being chunked.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import IO

from airflow_provider_ft.exceptions import FineTuningConfigError
from airflow_provider_ft.vendors.wire import Upload

CHUNK = 256 * 1024


class MultipartBody:
    """One multipart body of ``upload``; each instance reads the file once, from the start.

    ``requests`` sends a body that has ``read`` and ``__len__`` in blocks with a ``Content-Length``.

    :param upload: the fields and the file to send
    """

    def __init__(self, upload: Upload) -> None:
        self.upload = upload
        self.boundary = f"ft-{secrets.token_hex(16)}"
        self._head = self._head_of(upload)
        self._tail = f"\r\n--{self.boundary}--\r\n".encode()
        self._parts: Iterator[bytes] | None = None
        self._pending = b""

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return len(self._head) + self.upload.source.size + len(self._tail)

    def __iter__(self) -> Iterator[bytes]:
        yield self._head
        with self.upload.source.open() as stream:
            yield from _chunks(stream, self.upload.source.size, self.upload.filename)
        yield self._tail

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes of the body (all the rest for ``-1``: only used for small bodies)."""
        if self._parts is None:
            self._parts = iter(self)
        while (size < 0 or len(self._pending) < size) and (piece := next(self._parts, None)) is not None:
            self._pending += piece
        cut = len(self._pending) if size < 0 else size
        data, self._pending = self._pending[:cut], self._pending[cut:]
        return data

    def _head_of(self, upload: Upload) -> bytes:
        """The form fields, then the file part's head."""
        parts = [
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"\r\n\r\n{value}\r\n'
            for name, value in upload.fields
        ]
        name, filename = _quoted(upload.file_field), _quoted(upload.filename)
        parts.append(
            f"--{self.boundary}\r\n"
            f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            "Content-Type: application/jsonl\r\n\r\n"
        )
        return "".join(parts).encode()


def _chunks(stream: IO[bytes], size: int, filename: str) -> Iterator[bytes]:
    """The file's bytes in chunks; an error if it no longer has the size it was checked with."""
    sent = 0
    while chunk := stream.read(CHUNK):
        sent += len(chunk)
        if sent > size:
            break
        yield chunk
    if sent != size:
        raise FineTuningConfigError(
            f"Training file {filename} changed while it was being uploaded ({size} bytes were checked)"
        )


def _quoted(text: str) -> str:
    """A header parameter value: quotes, backslashes and line breaks cannot end it early."""
    return "".join("_" if char in '"\\\r\n' else char for char in text)

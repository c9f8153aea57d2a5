"""Uploaded files: the thread-safe file store, and the streaming JSONL check and digest of an upload's content.

Only metadata is kept (name, size, purpose, sha256, whether the content was checked and passed); the content is
read once, in chunks, as it arrives, and then dropped.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from dataclasses import dataclass
from typing import BinaryIO

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from airflow_provider_ft_emulator.clock import Clock
from airflow_provider_ft_emulator.vocabulary import VENDORS, Vendor

#: The purpose whose content is checked as JSONL training data.
FINE_TUNE = "fine-tune"
#: Bytes read from an upload at a time.
CHUNK_BYTES = 1024 * 1024
#: The longest JSONL line checked; a longer one is refused rather than held in memory.
MAX_LINE_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class StoredFile:
    """One uploaded file's metadata.

    :param vendor: whose file it is
    :param id: its id (``file-...`` for OpenAI, ``file-ft-...`` for DashScope)
    :param seq: creation order, to sort files created at the same instant
    :param filename: the name the client gave it
    :param bytes: its size
    :param purpose: the purpose it was uploaded for
    :param created_at: emulated Unix time of the upload
    :param sha256: hex SHA-256 of the content
    :param valid: ``True`` if the content passed the JSONL check, ``None`` if it was not checked (other purposes)
    :param description: the DashScope description, if any
    """

    vendor: Vendor
    id: str
    seq: int
    filename: str
    bytes: int
    purpose: str
    created_at: float
    sha256: str
    valid: bool | None
    description: str | None = None


@dataclass(frozen=True)
class Digest:
    """What reading a file's content found: its size, SHA-256 and, if checked, the first problem."""

    size: int
    sha256: str
    problem: str | None


class FileStore:
    """All uploaded files of every vendor, guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[Vendor, dict[str, StoredFile]] = {vendor: {} for vendor in VENDORS}
        self._seq = itertools.count(1)

    def next_seq(self) -> int:
        """A monotonically increasing number for the next file."""
        with self._lock:
            return next(self._seq)

    def add(self, stored: StoredFile) -> StoredFile:
        """Keep ``stored`` (replacing a file with the same id) and return it."""
        with self._lock:
            self._files[stored.vendor][stored.id] = stored
        return stored

    def get(self, vendor: Vendor, file_id: str) -> StoredFile | None:
        """The file with this id, or ``None``."""
        with self._lock:
            return self._files[vendor].get(file_id)

    def contains(self, vendor: Vendor, file_id: str) -> bool:
        """Whether a file with this id exists."""
        return self.get(vendor, file_id) is not None

    def all(self, vendor: Vendor) -> list[StoredFile]:
        """Every file of ``vendor``, newest first."""
        with self._lock:
            files = list(self._files[vendor].values())
        return sorted(files, key=lambda f: (f.created_at, f.seq), reverse=True)

    def delete(self, vendor: Vendor, file_id: str) -> StoredFile | None:
        """Remove the file and return it, or ``None`` if there was none."""
        with self._lock:
            return self._files[vendor].pop(file_id, None)

    def reset(self) -> None:
        """Forget every file."""
        with self._lock:
            for files in self._files.values():
                files.clear()


class JsonlChecker:
    """Checks JSONL fed in chunks: every line a JSON object, no blank lines, one final newline allowed.

    Only the current line is held between chunks, and a line longer than :data:`MAX_LINE_BYTES` is refused
    rather than held.
    """

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._held = 0
        self._line = 0
        self.problem: str | None = None

    def feed(self, chunk: bytes) -> None:
        """Check the lines that ``chunk`` completes; keep the start of the next one."""
        start = 0
        while self.problem is None and (end := chunk.find(b"\n", start)) != -1:
            self._check(b"".join([*self._parts, chunk[start:end]]))
            self._parts, self._held, start = [], 0, end + 1
        if self.problem is None and start < len(chunk):
            self._parts.append(chunk[start:])
            self._held += len(chunk) - start
            if self._held > MAX_LINE_BYTES:
                self.problem = f"line {self._line + 1}: longer than {MAX_LINE_BYTES} bytes"
                self._parts = []

    def finish(self) -> str | None:
        """Check the text after the final newline, if any; returns the first problem, or ``None``."""
        if self.problem is None and self._parts:
            self._check(b"".join(self._parts))
        if self.problem is None and self._line == 0:
            self.problem = "line 1: the file is empty"
        return self.problem

    def _check(self, raw: bytes) -> None:
        self._line += 1
        line = raw.removesuffix(b"\r")
        if not line.strip():
            self.problem = f"line {self._line}: blank line"
            return
        try:
            value = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError):
            self.problem = f"line {self._line}: not valid JSON"
            return
        if not isinstance(value, dict):
            self.problem = f"line {self._line}: not a JSON object"


class Digester:
    """Size and SHA-256 of content fed in chunks and, if ``check``, its first problem as fine-tuning JSONL.

    :param filename: the file's name (fine-tuning files must end in ``.jsonl``)
    :param check: whether to check the content as fine-tuning JSONL
    """

    def __init__(self, filename: str, *, check: bool) -> None:
        self._filename = filename
        self._sha = hashlib.sha256()
        self._size = 0
        self._checker = JsonlChecker() if check else None

    def feed(self, chunk: bytes) -> None:
        """Account for the next chunk of content."""
        self._sha.update(chunk)
        self._size += len(chunk)
        if self._checker is not None:
            self._checker.feed(chunk)

    def finish(self) -> Digest:
        """What the content came to."""
        return Digest(size=self._size, sha256=self._sha.hexdigest(), problem=self._problem())

    def _problem(self) -> str | None:
        if self._checker is None:
            return None
        if not self._filename.lower().endswith(".jsonl"):
            return "the file name must end in .jsonl"
        return self._checker.finish()


def digest_bytes(filename: str, content: bytes, *, check: bool) -> Digest:
    """:class:`Digester` over content already in memory (seeded files)."""
    digester = Digester(filename, check=check)
    digester.feed(content)
    return digester.finish()


def digest_stream(stream: BinaryIO, filename: str, *, check: bool) -> Digest:
    """:class:`Digester` over a readable binary stream, read :data:`CHUNK_BYTES` at a time (blocking)."""
    digester = Digester(filename, check=check)
    while chunk := stream.read(CHUNK_BYTES):
        digester.feed(chunk)
    return digester.finish()


async def digest_upload(upload: UploadFile, *, check: bool) -> Digest:
    """:func:`digest_stream` over an uploaded part (spooled by Starlette), in a worker thread."""
    await upload.seek(0)
    return await run_in_threadpool(digest_stream, upload.file, upload.filename or "", check=check)


def stored_file(
    files: FileStore,
    clock: Clock,
    vendor: Vendor,
    file_id: str,
    filename: str,
    found: Digest,
    *,
    purpose: str,
    description: str | None = None,
) -> StoredFile:
    """Keep the metadata of a file uploaded now (its content was read into ``found``)."""
    checked = found.problem is None if purpose == FINE_TUNE else None
    return files.add(
        StoredFile(
            vendor=vendor,
            id=file_id,
            seq=files.next_seq(),
            filename=filename,
            bytes=found.size,
            purpose=purpose,
            created_at=clock.now(),
            sha256=found.sha256,
            valid=checked,
            description=description,
        )
    )

"""Checking a training file on this machine before anything is sent: every line one record in the vendor's format.

The file is read once, a line at a time (never whole), to check each record, count them and hash the content; the
upload then reads it again from the start. A local path, an ``os.PathLike`` or an Airflow ``ObjectStoragePath``
(anything with ``open("rb")`` and a ``name``) can be given.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from airflow_provider_ft._text import printable
from airflow_provider_ft.exceptions import TrainingFileError
from airflow_provider_ft.vendors.wire import LocalFile

#: The longest record (line) read: far above any real example, below what would strain a worker's memory.
MAX_RECORD_BYTES = 64 * 1024 * 1024


def check_training_file(
    source: Any, check: Callable[[object], str | None], *, what: str = "training_file"
) -> LocalFile:
    """The checked file: every line is a JSON object that passes ``check``; ``TrainingFileError`` naming the first
    line that is not.

    :param source: a path (``str``, ``os.PathLike``) or an object with ``open("rb")`` and ``name``
    :param check: the record check of the job's data format (``None`` for a good record, else the problem)
    :param what: the argument the file came from, for messages
    """
    name, opener = _opener(source, what)
    digest = hashlib.sha256()
    size = records = 0
    with opener() as stream:
        for number, line in enumerate(_lines(stream, name, what), start=1):
            digest.update(line)
            size += len(line)
            problem = _record_problem(line, check)
            if problem:
                raise TrainingFileError(f"{what} {name}: line {number} {problem}; nothing was sent")
            records += 1
    if not records:
        raise TrainingFileError(f"{what} {name} holds no records; nothing was sent")
    return LocalFile(name=name, size=size, sha256=digest.hexdigest(), lines=records, open=opener)


def _opener(source: Any, what: str) -> tuple[str, Callable[[], IO[bytes]]]:
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise TrainingFileError(f"{what} {printable(str(path), 300)} is not a file on this machine")
        return path.name, lambda: path.open("rb")
    if callable(getattr(source, "open", None)) and isinstance(getattr(source, "name", None), str):
        return source.name, lambda: source.open("rb")
    raise TrainingFileError(f"{what} must be a vendor file id, a path or an ObjectStoragePath, got {type(source)}")


def _lines(stream: IO[bytes], name: str, what: str) -> Any:
    while line := stream.readline(MAX_RECORD_BYTES + 1):
        if len(line) > MAX_RECORD_BYTES:
            raise TrainingFileError(f"{what} {name} has a line longer than {MAX_RECORD_BYTES} bytes")
        yield line


def _record_problem(line: bytes, check: Callable[[object], str | None]) -> str | None:
    if not line.strip():
        return "is blank (every line must be one JSON record)"
    try:
        record = json.loads(line)
    except UnicodeDecodeError:
        return "is not UTF-8 text"
    except ValueError as error:
        return f"is not JSON ({printable(error, 120)})"
    problem = check(record)
    return f"is not a usable record: {problem}" if problem else None

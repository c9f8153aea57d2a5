"""Job and file ids: what a safe one looks like, the URL path of a job, and what names a file at the vendor."""

from __future__ import annotations

import re
from urllib.parse import quote

from airflow_provider_ft.exceptions import FineTuningConfigError, InvalidJobIdError

MAX_JOB_ID_LENGTH = 128
_JOB_ID_PATTERN = re.compile(r"[A-Za-z0-9_.\-]+")
_FILE_ID = re.compile(r"file-[A-Za-z0-9][A-Za-z0-9_.\-]{0,122}")


def validate_job_id(job_id: object) -> str:
    """Return ``job_id`` if it is a safe job id, else raise ``InvalidJobIdError`` saying what is wrong.

    Vendors' ids use letters, digits, ``-``, ``_`` and ``.``; anything else could change the URL the request
    goes to (``/``, ``?``, ``#``, ``%``) or the request itself (newlines, NUL), so it is refused before sending.
    """
    if not isinstance(job_id, str):
        raise InvalidJobIdError(f"A job id must be a string, got {type(job_id).__name__} {job_id!r:.40}")
    if not job_id.strip():
        raise InvalidJobIdError("A job id must not be empty or blank")
    if len(job_id) > MAX_JOB_ID_LENGTH:
        raise InvalidJobIdError(
            f"A job id is at most {MAX_JOB_ID_LENGTH} characters, got one of {len(job_id)} characters"
        )
    if not _JOB_ID_PATTERN.fullmatch(job_id):
        bad = sorted({char for char in job_id if not _JOB_ID_PATTERN.fullmatch(char)})
        shown = ", ".join(repr(char) for char in bad[:5])
        raise InvalidJobIdError(
            f"Job id {job_id!r:.60} has characters a job id cannot have ({shown}); "
            "ids use only letters, digits, '-', '_' and '.'"
        )
    if ".." in job_id:
        raise InvalidJobIdError(f"Job id {job_id!r:.60} must not contain '..'")
    return job_id


def job_path(prefix: str, job_id: object, suffix: str = "") -> str:
    return f"{prefix}/{quote(validate_job_id(job_id), safe='')}{suffix}"


def validate_file_id(file_id: object, what: str = "file id") -> str:
    """Return ``file_id`` if it is a safe vendor file id (the rules of job ids), else ``FineTuningConfigError``."""
    try:
        return validate_job_id(file_id)
    except InvalidJobIdError as refused:
        raise FineTuningConfigError(str(refused).replace("job id", what)) from None


def is_file_id(value: object) -> bool:
    """Whether a training or validation file argument names a file at the vendor (else it is a local path).
    Every vendor's ids start ``file-`` and have no ``/`` or ``.jsonl``."""
    return isinstance(value, str) and _FILE_ID.fullmatch(value) is not None and not value.endswith(".jsonl")

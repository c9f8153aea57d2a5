"""Reading the fields of a decoded answer: a strict core, a tolerant reader.

The fields a decision depends on (``DECISION_FIELDS``) are checked hard: an unusable value there is
``MalformedAnswerError``, never a guess. Any other field is informational: a value that cannot be used is "not
reported" (``None``), with one debug line, and never costs the job. Server text in a message is escaped.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any, ClassVar

from airflow_provider_ft._text import printable
from airflow_provider_ft.exceptions import MalformedAnswerError
from airflow_provider_ft.jobs import JobEvent
from airflow_provider_ft.vendors.ids import validate_file_id, validate_job_id
from airflow_provider_ft.vendors.wire import RemoteFile

#: The fields of a job a decision reads, checked hard in every dialect (``MalformedAnswerError`` if unusable):
#:
#: - ``id``: every later request is about it, and an answer for another job is refused;
#: - ``status``: whether the job is over decides what the sensor, the trigger, a cancel and the cleanup do (an
#:   unknown word is read as UNKNOWN, not terminal, and warned about: that is a value, not an unusable one);
#: - ``created_at``: ``max_runtime`` and the cleanup's ``older_than`` act on the job's age;
#: - ``identity``: the field a create tags its job with (OpenAI ``metadata``, DashScope ``job_name``, Azure OpenAI
#:   and Together AI ``suffix``), which exactly-once reads to find a job an earlier try made;
#: - of a progress-log entry, its ``cursor`` (the event id, the line number): the next read starts after it.
#:
#: Absent (or ``null``) is not unusable: a job without ``created_at`` has no age to act on. Everything else is
#: informational (``AnswerReader.unusable``).
DECISION_FIELDS = ("id", "status", "created_at", "identity", "cursor")
#: Times outside [EARLIEST_TIME, LATEST_TIME) are not believed: a job created in 1970 or in the year 55000 is a
#: server's mistake (a zero, milliseconds read as seconds), never a job.
EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2200, 1, 1, tzinfo=UTC)
TIME_RANGE = f"a time from {EARLIEST_TIME.year} to {LATEST_TIME.year}"
#: The largest count (tokens, jobs) believed; larger or negative ones are read as absent.
MAX_COUNT = 2**63 - 1
#: The largest training step (and step count) believed; a job of more steps is a server's mistake.
MAX_STEP = 10**9
#: The largest loss, in size, believed (cross-entropy losses are a few units; 1e6 is a broken figure).
MAX_LOSS = 1e6

_VALUE_LENGTH = 60
_EARLIEST_SECONDS = EARLIEST_TIME.timestamp()
_LATEST_SECONDS = LATEST_TIME.timestamp()

log = logging.getLogger(__name__)


class AnswerReader:
    """The readers every dialect shares (``Dialect`` is one); messages name the vendor (``display_name``)."""

    display_name: ClassVar[str]

    def malformed(self, problem: str) -> MalformedAnswerError:
        """The error for an answer of the wrong shape; ``problem`` says what is wrong, server text escaped."""
        return MalformedAnswerError(f"{self.display_name} sent an answer this provider cannot use: {problem}")

    def job_object(self, value: object, what: str = "the job") -> Mapping[str, Any]:
        """``value`` if it is a JSON object, else ``MalformedAnswerError`` naming ``what`` it should have been."""
        if not isinstance(value, Mapping):
            raise self.malformed(f"{what} is {shown(value)}, not a JSON object")
        return value

    def member_object(self, value: object, field: str, what: str) -> Mapping[str, Any]:
        """The object in ``field`` of the object ``value`` (an envelope: ``{"output": {...}}``)."""
        return self.job_object(self.job_object(value, what).get(field), f"{what}'s '{field}'")

    def each(self, entries: list[Any], where: str) -> Iterator[tuple[Mapping[str, Any], str]]:
        """Every entry of a list, each a JSON object, with its name for a message (``entry 3 of {where}``)."""
        for index, entry in enumerate(entries):
            yield self.job_object(entry, f"entry {index} of {where}"), f"entry {index} of {where}"

    def array_in(self, value: object, field: str, what: str, items: str) -> list[Any]:
        """The array in ``field`` of the object ``value``; else ``MalformedAnswerError`` (not an array of ``items``)."""
        entries = self.job_object(value, what).get(field)
        if not isinstance(entries, list):
            raise self.malformed(f"{what}'s '{field}' is {shown(entries)}, not an array of {items}")
        return entries

    def job_id_in(self, job: Mapping[str, Any], field: str, expected: str | None = None) -> str:
        """The job's id (``job[field]``): a non-empty string that is a valid job id, and ``expected`` if given."""
        if field not in job:
            raise self.malformed(f"the job has no '{field}'")
        job_id = self._safe_id(job.get(field), field, "the job", "job", validate_job_id)
        if expected is not None and job_id != expected:
            raise self.malformed(f"asked for job {printable(expected, 140)}, the answer is job {job_id}")
        return job_id

    def _safe_id(self, value: object, field: str, whose: str, kind: str, validate: Callable[[object], str]) -> str:
        """An id a server sent: it ends up in the URLs of later requests, so it meets the rules of ids from a user."""
        if not isinstance(value, str) or not value:
            raise self.malformed(f"{whose}'s '{field}' is {shown(value)}, not a {kind} id")
        try:
            return validate(value)
        except ValueError as refused:
            raise self.malformed(f"{whose}'s '{field}' is not a usable {kind} id: {printable(refused, 200)}") from None

    def status_word_in(self, job: Mapping[str, Any], field: str, job_id: str) -> str:
        """The vendor's status word of the job (``job[field]``): a non-blank string, known or not."""
        value = job.get(field)
        if field not in job:
            raise self.malformed(f"job {job_id} has no '{field}'")
        if not isinstance(value, str) or not value.strip():
            raise self.malformed(f"the '{field}' of job {job_id} is {shown(value)}, not a status word")
        return value

    def file_in(
        self,
        entry: Mapping[str, Any],
        what: str,
        *,
        id_field: str = "id",
        name: str = "filename",
        size: str | None = None,
        status: str | None = None,
        description: str | None = None,
    ) -> RemoteFile:
        """A file object: its id (``entry[id_field]``, a safe id, else ``MalformedAnswerError``) and the fields
        named for its ``name``, ``size`` (bytes), ``status`` and ``description`` (of the wrong type: absent).

        :param entry: the file object
        :param what: the file, for a message (``the uploaded file``, ``entry 3 of the files page``)
        """
        file_id = self._safe_id(entry.get(id_field), id_field, what, "file", validate_file_id)
        return RemoteFile(
            file_id,
            optional_str(entry.get(name)),
            optional_count(entry.get(size)) if size else None,
            optional_str(entry.get(description)) if description else None,
            optional_str(entry.get(status)) if status else None,
        )

    def identity_text(self, record: Mapping[str, Any], field: str, whose: str) -> str | None:
        """The text a create tagged its job with (``DECISION_FIELDS``' ``identity``): ``None`` if absent, ``null``
        or empty; anything but a string is ``MalformedAnswerError``: exactly-once must not guess whose job it is."""
        value = record.get(field)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self.malformed(f"the '{field}' of {whose} is {shown(value)}, not a string")
        return value

    def unusable(self, field: str, whose: str, sent: object, expected: str, *, decides: bool = False) -> None:
        """What a field whose value cannot be used becomes: ``MalformedAnswerError`` when a decision reads it
        (``decides``, see ``DECISION_FIELDS``), else "not reported" (``None``) and one debug line.

        :param field: the field's name on the wire
        :param whose: what it belongs to, for the message (``job ftjob-1``, ``event 3 of the job's log``)
        :param sent: the value sent
        :param expected: what it should have been (``a time from 2000 to 2200``)
        :param decides: whether a decision reads the field
        """
        problem = f"the '{field}' of {whose} is {shown(sent)}, not {expected}"
        if decides:
            raise self.malformed(problem)
        log.debug("%s sent %s; read as not reported", self.display_name, problem)
        return None

    def message_in(self, record: Mapping[str, Any], whose: str) -> str:
        """An entry's ``message``: a string, else ``unusable`` and read as empty."""
        message = record.get("message")
        if isinstance(message, str):
            return message
        self.unusable("message", whose, message, "a string")
        return ""

    def unix_time(self, record: Mapping[str, Any], field: str, whose: str, *, decides: bool = False) -> datetime | None:
        """``record[field]`` as a time: ``None`` if absent; Unix seconds from 2000 to 2200, else ``unusable``."""
        value = record.get(field)
        if value is None:
            return None
        # NaN fails both comparisons; a huge int compares without converting to float.
        seconds = isinstance(value, int | float) and not isinstance(value, bool)
        if not seconds or not _EARLIEST_SECONDS <= value < _LATEST_SECONDS:
            self.unusable(field, whose, value, TIME_RANGE, decides=decides)
            return None
        return datetime.fromtimestamp(value, tz=UTC)

    def text_time(
        self,
        record: Mapping[str, Any],
        field: str,
        whose: str,
        *,
        zone: tzinfo = UTC,
        formats: Sequence[str] = (),
        decides: bool = False,
    ) -> datetime | None:
        """``record[field]`` as a time: ``None`` if absent, ``null`` or blank; an ISO 8601 time (or one of the
        ``strptime`` ``formats``) from 2000 to 2200, read in ``zone`` if it names none; else ``unusable``."""
        value = record.get(field)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        moment = _time_from_text(value.strip(), formats) if isinstance(value, str) else None
        if moment is None:
            self.unusable(field, whose, value, "an ISO 8601 time", decides=decides)
            return None
        if not EARLIEST_TIME.year <= moment.year < LATEST_TIME.year:
            self.unusable(field, whose, value, TIME_RANGE, decides=decides)
            return None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)

    def next_cursor(
        self, has_more: bool, entries: Sequence[object], cursor: Callable[[], str], what: str
    ) -> str | None:
        """The cursor of the page after this one (``cursor()``), or ``None`` on the last page. A page that says
        more follow but brings no entry is ``MalformedAnswerError``: read as the end, it would hide the rest.

        :param has_more: whether the page says more follow
        :param entries: the page's entries
        :param cursor: makes the next page's cursor from this page's entries
        :param what: the page, for the message (``the page``, ``the events page``)
        """
        if not has_more:
            return None
        if not entries:
            raise self.malformed(f"{what} holds no entry but says more follow")
        return cursor()


def _time_from_text(text: str, formats: Sequence[str]) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    for time_format in formats:
        try:
            return datetime.strptime(text, time_format)
        except ValueError:
            continue
    return None


def in_time_order(events: list[JobEvent]) -> list[JobEvent]:
    """``events``, given in the order the vendor documents turned oldest first, ordered by their own times when every
    entry has one. The sort is stable: entries of the same time keep the documented order. Without a time on every
    entry, the documented order is all there is."""
    if any(event.created_at is None for event in events):
        return events
    return sorted(events, key=lambda event: event.created_at or EARLIEST_TIME)


def shown(value: object) -> str:
    """A JSON value as a short, printable excerpt with its JSON type, for a message: ``"false" (string)``."""
    if value is None:
        return "null"
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (ValueError, RecursionError):
        text = "..."
    return f"{printable(text, _VALUE_LENGTH)} ({json_type(value)})"


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type (``null``, ``boolean``, ``number``, ``string``, ``array``, ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def optional_str(value: Any) -> str | None:
    """A non-empty string, or ``None`` for anything else: optional text fields of the wrong type read as absent."""
    return value if isinstance(value, str) and value else None


def optional_count(value: Any) -> int | None:
    """A count from 0 to ``MAX_COUNT`` (an ``int``, not a ``bool``), or ``None`` for anything else."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT else None


def optional_number(value: object) -> float | None:
    """A finite number as a float, or ``None`` for anything else (an optional figure of the wrong type)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        return None
    return number if math.isfinite(number) else None


def optional_step(value: object) -> int | None:
    """A training step (or number of steps) from 0 to ``MAX_STEP``; ``None`` for anything else (a string, a bool,
    a float, a negative or huge number). Informational: never an error."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # the spec types a checkpoint's ``metrics.step`` as a number: 10.0 is step 10
    count = optional_count(value)
    return count if count is not None and count <= MAX_STEP else None


def optional_loss(value: object) -> float | None:
    """A loss: a finite number of at most ``MAX_LOSS`` in size, else ``None`` (a string, a bool, NaN, a huge
    number). Informational: never an error."""
    number = optional_number(value)
    return number if number is not None and abs(number) <= MAX_LOSS else None


def first_step(figures: Mapping[str, Any], names: Sequence[str]) -> int | None:
    """The first usable step among the fields ``names`` of ``figures`` (in that order), or ``None``."""
    for name in names:
        step = optional_step(figures.get(name))
        if step is not None:
            return step
    return None


def first_loss(figures: Mapping[str, Any], names: Sequence[str]) -> float | None:
    """The first usable loss among the fields ``names`` of ``figures`` (in that order), or ``None``."""
    for name in names:
        loss = optional_loss(figures.get(name))
        if loss is not None:
            return loss
    return None


def code_and_message(record: object) -> str | None:
    """``code: message`` of an error object (either alone where the other is missing), or ``None``."""
    if not isinstance(record, Mapping):
        return None
    message = optional_str(record.get("message"))
    code = optional_str(record.get("code"))
    if message and code:
        return f"{code}: {message}"
    return message or code

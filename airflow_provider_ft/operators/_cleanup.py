"""The pure parts of the cleanup operator: argument validation, which jobs are stale, and the summary.

Nothing here does I/O, so the selection rules can be read (and reasoned about) on their own.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from airflow_provider_ft.exceptions import FineTuningConfigError
from airflow_provider_ft.jobs import FineTuningJob, JobStatus

ACTIONS = ("cancel", "delete")
DEFAULT_STATUSES: Mapping[str, frozenset[JobStatus]] = {
    "cancel": frozenset({JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.PAUSED}),
    "delete": frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}),
}
PAST_TENSE = {"cancel": "cancelled", "delete": "deleted"}

OutcomeKind = Literal["acted", "skipped", "failed"]


@dataclass(frozen=True)
class CleanupCriteria:
    """Which jobs a cleanup acts on. A job must meet every criterion that is set.

    :param statuses: normalized statuses to act on
    :param older_than: minimum age, measured from the job's ``created_at``; jobs without one never match
    :param name_pattern: shell-style pattern (``fnmatch``, case-sensitive) the job's name must match in full;
        jobs without a name never match a pattern
    :param model: base model the job must have, exactly
    :param metadata: key/value pairs the job's metadata must all contain
    """

    statuses: frozenset[JobStatus]
    older_than: timedelta
    name_pattern: str | None = None
    model: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()

    def matches(self, job: FineTuningJob, now: datetime) -> bool:
        """Whether ``job`` is stale at ``now`` (timezone-aware) under these criteria.

        :param job: a listed job
        :param now: the moment its age is measured at
        """
        return (
            job.status in self.statuses
            and job.created_at is not None
            and now - job.created_at > self.older_than
            and (
                self.name_pattern is None or (job.name is not None and fnmatch.fnmatchcase(job.name, self.name_pattern))
            )
            and (self.model is None or job.model == self.model)
            and all(job.metadata.get(key) == value for key, value in self.metadata)
        )

    def _name_matches(self, name: str | None) -> bool:
        if self.name_pattern is None:
            return True
        return name is not None and fnmatch.fnmatchcase(name, self.name_pattern)

    def server_filters(self, supported: Iterable[str]) -> dict[str, Any]:
        """The criteria a vendor can apply while listing (a narrower listing; every job is still checked).

        :param supported: the filter names the vendor's listing takes (``Dialect.list_filters``)
        """
        candidates: dict[str, Any] = {"model": self.model, "metadata": dict(self.metadata)}
        return {name: value for name, value in candidates.items() if name in supported and value}


def select_stale_jobs(jobs: Iterable[FineTuningJob], criteria: CleanupCriteria, now: datetime) -> list[FineTuningJob]:
    """The jobs ``criteria`` match at ``now``, in listing order, each id once.

    :param jobs: every job listed
    :param criteria: what makes a job stale
    :param now: the moment ages are measured at (timezone-aware)
    """
    selected: dict[str, FineTuningJob] = {}
    for job in jobs:
        if job.id not in selected and criteria.matches(job, now):
            selected[job.id] = job
    return list(selected.values())


# -- validation ----------------------------------------------------------------------------------------------


def is_template(value: object) -> bool:
    """Whether ``value`` is a Jinja string not rendered yet (checked again after rendering)."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def parse_action(action: object) -> str:
    if action not in ACTIONS:
        raise FineTuningConfigError(f"action must be one of {', '.join(map(repr, ACTIONS))}, got {action!r}")
    return str(action)


def parse_statuses(statuses: object, action: str) -> frozenset[JobStatus]:
    """Normalized statuses to act on (``None``: the action's default); refuses ones the action cannot apply to.

    A string is read as comma-separated names, so a templated value can render to ``"RUNNING,QUEUED"``.
    """
    if statuses is None:
        return DEFAULT_STATUSES[action]
    names = statuses.split(",") if isinstance(statuses, str) else statuses
    if not isinstance(names, Iterable):
        raise FineTuningConfigError(f"statuses must be a list of job status names, got {statuses!r}")
    try:
        parsed = frozenset(JobStatus.parse(name) for name in names if str(name).strip())
    except ValueError as error:
        raise FineTuningConfigError(str(error)) from None
    if not parsed:
        raise FineTuningConfigError("statuses must name at least one job status (or be None for the default)")
    _check_statuses_fit(parsed, action)
    return parsed


def _check_statuses_fit(statuses: frozenset[JobStatus], action: str) -> None:
    if action == "cancel":
        wrong = sorted(status.value for status in statuses if status.is_terminal)
        reason = "a finished job cannot be cancelled"
    else:
        wrong = sorted(status.value for status in statuses if not status.is_terminal)
        reason = "only finished jobs can be deleted; cancel the others first (action='cancel')"
    if wrong:
        raise FineTuningConfigError(f"statuses {', '.join(wrong)} do not fit action={action!r}: {reason}")


def parse_older_than(older_than: object) -> timedelta:
    if not isinstance(older_than, timedelta):
        raise FineTuningConfigError(f"older_than must be a datetime.timedelta, got {older_than!r}")
    if older_than <= timedelta(0):
        raise FineTuningConfigError(f"older_than must be a positive duration, got {older_than}")
    return older_than


def parse_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FineTuningConfigError(f"{name} must be a whole number of at least 1, got {value!r}")
    return value


def parse_optional_text(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise FineTuningConfigError(f"{name} must be a non-empty string or None, got {value!r}")
    return value


def parse_metadata(metadata: object) -> tuple[tuple[str, str], ...]:
    if metadata is None:
        return ()
    if not isinstance(metadata, Mapping) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in metadata.items()
    ):
        raise FineTuningConfigError(f"metadata must be a dict of strings to strings, got {metadata!r}")
    return tuple(sorted(metadata.items()))


# -- outcome and summary -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobOutcome:
    """What happened to one matched job: ``acted``, ``skipped`` (with the reason) or ``failed`` (with the error)."""

    kind: OutcomeKind
    detail: str

    def describe(self) -> str:
        return self.detail if self.kind == "acted" else f"{self.kind}: {self.detail}"


def build_summary(
    action: str,
    dry_run: bool,
    seen: int,
    matched: Sequence[FineTuningJob],
    outcomes: Mapping[str, JobOutcome],
) -> dict[str, Any]:
    """The JSON-serializable summary returned to XCom.

    :param action: ``cancel`` or ``delete``
    :param dry_run: whether nothing was meant to be changed
    :param seen: how many jobs were listed
    :param matched: the jobs selected, in listing order
    :param outcomes: what happened to each matched job, by id
    """
    ids_by_kind: dict[OutcomeKind, list[str]] = {"acted": [], "skipped": [], "failed": []}
    for job in matched:
        ids_by_kind[outcomes[job.id].kind].append(job.id)
    return {
        "action": action,
        "dry_run": dry_run,
        "seen": seen,
        "matched": len(matched),
        "acted": len(ids_by_kind["acted"]),
        "skipped": len(ids_by_kind["skipped"]),
        "failed": len(ids_by_kind["failed"]),
        "acted_ids": ids_by_kind["acted"],
        "skipped_ids": {job_id: outcomes[job_id].detail for job_id in ids_by_kind["skipped"]},
        "failures": {job_id: outcomes[job_id].detail for job_id in ids_by_kind["failed"]},
    }


def format_age(age: timedelta) -> str:
    minutes = max(int(age.total_seconds()) // 60, 0)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m"


def format_table(
    matched: Sequence[FineTuningJob], outcomes: Mapping[str, JobOutcome], now: datetime, limit: int = 200
) -> str:
    """One line per matched job (at most ``limit``): id, status, age, name, model and what happened.

    :param matched: the jobs selected
    :param outcomes: what happened to each, by id (a job without one shows ``-``)
    :param now: the moment ages are measured at
    :param limit: most jobs listed; the rest are counted
    """
    headers = ("JOB ID", "STATUS", "AGE", "NAME", "MODEL", "RESULT")
    rows = [_row(job, outcomes.get(job.id), now) for job in matched[:limit]]
    widths = [max(len(row[column]) for row in (headers, *rows)) for column in range(len(headers) - 1)]
    lines = [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]])
        for row in [headers, *rows]
    ]
    if len(matched) > limit:
        lines.append(f"... and {len(matched) - limit} more")
    return "\n".join(lines)


def _line(row: Sequence[str], widths: Sequence[int]) -> str:
    padded = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
    return "  ".join([*padded, row[-1]])


def _row(job: FineTuningJob, outcome: JobOutcome | None, now: datetime) -> tuple[str, ...]:
    age = format_age(now - job.created_at) if job.created_at is not None else "?"
    result = outcome.describe() if outcome is not None else "-"
    return (job.id, job.status.value, age, job.name or "-", job.model or "-", result)

"""The pure parts of the cleanup operator: its argument checks, which jobs are stale, and the summary.

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

    @classmethod
    def from_arguments(
        cls,
        *,
        action: str,
        older_than: timedelta,
        statuses: object,
        name_pattern: object,
        model: object,
        metadata: object,
        allow_templates: bool,
    ) -> CleanupCriteria:
        """The criteria the operator's filter arguments describe; ``FineTuningConfigError`` for a bad one.

        :param action: ``cancel`` or ``delete`` (checked already; it decides which statuses fit)
        :param older_than: the minimum age (checked already)
        :param statuses: status names: a list, a comma-separated string, or ``None`` for the action's default
        :param name_pattern: ``None`` or a non-empty pattern
        :param model: ``None`` or a non-empty model name
        :param metadata: ``None`` or a dict of strings to strings
        :param allow_templates: leave Jinja strings unchecked (at parse time; execute checks them rendered)
        """

        def check_now(value: object) -> bool:
            return not (allow_templates and _is_template(value))

        return cls(
            statuses=_statuses(statuses, action) if check_now(statuses) else frozenset(),
            older_than=older_than,
            name_pattern=_optional_text("name_pattern", name_pattern) if check_now(name_pattern) else None,
            model=_optional_text("model", model) if check_now(model) else None,
            metadata=_metadata_pairs(metadata) if check_now(metadata) else (),
        )

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

    def server_filters(self, supported: Iterable[str]) -> dict[str, Any]:
        """The criteria a vendor can apply while listing (a narrower listing; every job is still checked).

        :param supported: the filter names the vendor's listing takes (``Dialect.list_filters``)
        """
        candidates: dict[str, Any] = {"model": self.model, "metadata": dict(self.metadata)}
        return {name: value for name, value in candidates.items() if name in supported and value}


@dataclass(frozen=True, slots=True)
class StaleJob:
    """What the cleanup keeps of a matched job: what its summary and its report table show, not the vendor's
    payload (a sweep of thousands of jobs holds only these).

    :param id: the vendor's job id
    :param status: normalized state when listed
    :param created_at: when the job was created (timezone-aware), if known
    :param name: the job's name, if it has one
    :param model: the base model, if known
    """

    id: str
    status: JobStatus
    created_at: datetime | None
    name: str | None
    model: str | None

    @classmethod
    def of(cls, job: FineTuningJob) -> StaleJob:
        """The parts of a listed ``job`` the cleanup keeps."""
        return cls(job.id, job.status, job.created_at, job.name, job.model)


@dataclass(frozen=True)
class Selection:
    """The stale jobs found in a listing, and how much of the listing was read.

    :param matched: the jobs selected (only what the cleanup keeps of each), in listing order, each id once
    :param seen: how many jobs were read from the listing (all of it, unless ``over_limit``)
    :param over_limit: more than the limit matched, so reading stopped at the first match past it: ``seen`` and
        ``matched`` then count only the part read (``matched`` has limit + 1 jobs)
    """

    matched: list[StaleJob]
    seen: int
    over_limit: bool = False


def select_stale_jobs(
    jobs: Iterable[FineTuningJob], criteria: CleanupCriteria, now: datetime, *, max_jobs: int | None = None
) -> Selection:
    """The jobs ``criteria`` match at ``now``, reading ``jobs`` once and keeping only the matches (as ``StaleJob``).

    :param jobs: the listing, read lazily (a generator that fetches page by page is read only as far as needed)
    :param criteria: what makes a job stale
    :param now: the moment ages are measured at (timezone-aware)
    :param max_jobs: stop reading at the first match past this many (``None``: read everything)
    """
    matched: dict[str, StaleJob] = {}
    seen = 0
    for job in jobs:
        seen += 1
        if job.id in matched or not criteria.matches(job, now):
            continue
        matched[job.id] = StaleJob.of(job)
        if max_jobs is not None and len(matched) > max_jobs:
            return Selection(list(matched.values()), seen, over_limit=True)
    return Selection(list(matched.values()), seen)


# -- argument checks -----------------------------------------------------------------------------------------


def check_action(action: object) -> str:
    """``action`` if it is ``cancel`` or ``delete``; ``FineTuningConfigError`` otherwise."""
    if action not in ACTIONS:
        raise FineTuningConfigError(f"action must be one of {', '.join(map(repr, ACTIONS))}, got {action!r}")
    return str(action)


def check_older_than(older_than: object) -> timedelta:
    """``older_than`` if it is a positive ``timedelta``; ``FineTuningConfigError`` otherwise."""
    if not isinstance(older_than, timedelta):
        raise FineTuningConfigError(f"older_than must be a datetime.timedelta, got {older_than!r}")
    if older_than <= timedelta(0):
        raise FineTuningConfigError(f"older_than must be a positive duration, got {older_than}")
    return older_than


def _is_template(value: object) -> bool:
    """Whether ``value`` is a Jinja string not rendered yet."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _statuses(statuses: object, action: str) -> frozenset[JobStatus]:
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


def _optional_text(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise FineTuningConfigError(f"{name} must be a non-empty string or None, got {value!r}")
    return value


def _metadata_pairs(metadata: object) -> tuple[tuple[str, str], ...]:
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
    action: str, dry_run: bool, selection: Selection, outcomes: Mapping[str, JobOutcome]
) -> dict[str, Any]:
    """The JSON-serializable summary returned to XCom.

    :param action: ``cancel`` or ``delete``
    :param dry_run: whether nothing was meant to be changed
    :param selection: the jobs listed and selected
    :param outcomes: what happened to each matched job, by id
    """
    ids_by_kind: dict[OutcomeKind, list[str]] = {"acted": [], "skipped": [], "failed": []}
    for job in selection.matched:
        ids_by_kind[outcomes[job.id].kind].append(job.id)
    return {
        "action": action,
        "dry_run": dry_run,
        "seen": selection.seen,
        "matched": len(selection.matched),
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
    matched: Sequence[StaleJob], outcomes: Mapping[str, JobOutcome], now: datetime, limit: int = 200
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


def _row(job: StaleJob, outcome: JobOutcome | None, now: datetime) -> tuple[str, ...]:
    age = format_age(now - job.created_at) if job.created_at is not None else "?"
    result = outcome.describe() if outcome is not None else "-"
    return (job.id, job.status.value, age, job.name or "-", job.model or "-", result)

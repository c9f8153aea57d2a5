"""The normalized fine-tuning job that every vendor's answer is turned into."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from airflow_provider_ft._numbers import is_finite_number
from airflow_provider_ft._text import printable
from airflow_provider_ft.cost import Price

# The longest server text each part of a progress line shows (the rest is cut, "..." says so).
_ID_LENGTH = 140
_WORD_LENGTH = 64
_NAME_LENGTH = 200
_ERROR_LENGTH = 500


class ProgressLog(Protocol):
    """What ``FineTuningJob.log_progress`` needs of a logger (stdlib's, or Airflow's structured one)."""

    def info(self, msg: str, /, *args: Any) -> Any: ...

    def warning(self, msg: str, /, *args: Any) -> Any: ...


class JobStatus(enum.StrEnum):
    """A job's state, the same words for every vendor."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    CANCELLING = "CANCELLING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    UNKNOWN = "UNKNOWN"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @classmethod
    def parse(cls, value: str | JobStatus) -> JobStatus:
        """``JobStatus`` from a member or its name in any case; a clear ``ValueError`` otherwise."""
        if isinstance(value, JobStatus):
            return value
        try:
            return cls[str(value).strip().upper()]
        except KeyError:
            known = ", ".join(member.name for member in cls)
            raise ValueError(f"Unknown job status {value!r}; expected one of: {known}") from None


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


@dataclass(frozen=True, slots=True)
class FineTuningJob:
    """One fine-tuning job as a vendor reported it, in vendor-neutral terms.

    :param id: the vendor's job id
    :param vendor: name of the API it came from (``dashscope``, ``openai``, ``azure`` or ``together``)
    :param status: normalized state
    :param vendor_status: the vendor's own word for the state, as sent
    :param model: base model being fine-tuned
    :param fine_tuned_model: the produced model, once there is one
    :param created_at: when the job was created (timezone-aware)
    :param finished_at: when it reached a terminal state (timezone-aware), if it has
    :param error: the vendor's failure message, if any
    :param name: a human name for the job where the vendor has one
    :param trained_tokens: tokens trained so far or in total, where reported
    :param estimated_finish: the vendor's estimate of when it will finish, where reported
    :param metadata: the job's key-value metadata (OpenAI)
    :param raw: the vendor's job object, untouched
    """

    id: str
    vendor: str
    status: JobStatus
    vendor_status: str
    model: str | None = None
    fine_tuned_model: str | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    name: str | None = None
    trained_tokens: int | None = None
    estimated_finish: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (for XCom and trigger events): datetimes as ISO 8601 strings, the status as its
        name. The vendor's object (``raw``) is left out: it is kilobytes a job, and the hook reads it when wanted."""
        return {
            "id": self.id,
            "vendor": self.vendor,
            "status": self.status.value,
            "vendor_status": self.vendor_status,
            "is_terminal": self.is_terminal,
            "model": self.model,
            "fine_tuned_model": self.fine_tuned_model,
            "created_at": _isoformat(self.created_at),
            "finished_at": _isoformat(self.finished_at),
            "error": self.error,
            "name": self.name,
            "trained_tokens": self.trained_tokens,
            "estimated_finish": _isoformat(self.estimated_finish),
            "metadata": dict(self.metadata),
        }

    def log_progress(self, log: ProgressLog) -> None:
        """Log ``describe_progress()``; say so when the job is paused (it makes no progress until it is resumed), and
        warn when the status is one this provider does not know."""
        log.info("%s", self.describe_progress())
        if self.status is JobStatus.PAUSED:
            log.info(
                "Job %s is paused (%s): not terminal, it makes no progress until it is resumed; still waiting",
                printable(self.id, _ID_LENGTH),
                printable(self.vendor_status, _WORD_LENGTH),
            )
        elif self.status is JobStatus.UNKNOWN:
            log.warning(
                "Job %s has status '%s', which this provider does not know; treating it as still running",
                printable(self.id, _ID_LENGTH),
                printable(self.vendor_status, _WORD_LENGTH),
            )

    def describe_progress(self) -> str:
        """One readable line: status, and whatever progress the vendor gives (server text escaped, cut short)."""
        parts = [f"job {printable(self.id, _ID_LENGTH)}: {self.status.value}"]
        if self.vendor_status.upper() != self.status.value:
            parts[0] += f" ({printable(self.vendor_status, _WORD_LENGTH)})"
        if self.trained_tokens is not None:
            parts.append(f"trained tokens {self.trained_tokens}")
        if self.estimated_finish is not None:
            parts.append(f"estimated finish {self.estimated_finish.isoformat()}")
        if self.fine_tuned_model:
            parts.append(f"fine-tuned model {printable(self.fine_tuned_model, _NAME_LENGTH)}")
        if self.error:
            parts.append(f"error: {printable(self.error, _ERROR_LENGTH)}")
        return ", ".join(parts)


def _isoformat(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


_EVENT_LENGTH = 1000
#: Event levels logged at WARNING (the rest at INFO).
_WARNING_LEVELS = frozenset({"warn", "warning", "error"})


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One entry of a job's own progress log, as the vendor wrote it (OpenAI event, DashScope log line).

    :param cursor: where this entry stands in the vendor's log; the entries after it are read with
        ``FineTuningHook.new_events(job_id, after=cursor)`` (OpenAI: the event's id; DashScope: the line number)
    :param message: the vendor's text, as sent (escape it with ``printable`` before showing it)
    :param created_at: when the vendor wrote it (timezone-aware), where reported
    :param level: the vendor's level word (``info``, ``warn``, ``error``), where reported
    :param step: the training step this entry reports, where reported
    :param total_steps: the steps the training takes in all, where reported
    :param train_loss: the training loss at ``step``, where reported
    :param valid_loss: the validation loss at ``step``, where reported (a job trained with a validation file)
    """

    cursor: str
    message: str
    created_at: datetime | None = None
    level: str | None = None
    step: int | None = None
    total_steps: int | None = None
    train_loss: float | None = None
    valid_loss: float | None = None

    def describe(self, job_id: str) -> str:
        """One readable line: the job, the time, the level, the message and any figures (server text escaped)."""
        parts = [f"job {printable(job_id, _ID_LENGTH)} progress:"]
        if self.created_at is not None:
            parts.append(self.created_at.isoformat())
        if self.level:
            parts.append(f"[{printable(self.level, _WORD_LENGTH)}]")
        parts.append(printable(self.message, _EVENT_LENGTH))
        figures = []
        if self.step is not None and re.search(rf"\bstep\W*{self.step}\b", self.message, re.IGNORECASE):
            return " ".join(parts)  # the vendor's text already says it (OpenAI: "Step 10/100: training loss=0.92")
        if self.step is not None:
            figures.append(f"step {self.step}" + (f" of {self.total_steps}" if self.total_steps is not None else ""))
        if self.train_loss is not None:
            figures.append(f"training loss {self.train_loss:.4g}")
        if self.valid_loss is not None:
            figures.append(f"validation loss {self.valid_loss:.4g}")
        line = " ".join(parts)
        return f"{line} ({', '.join(figures)})" if figures else line

    def log(self, log: ProgressLog, job_id: str) -> None:
        """Log ``describe()`` as one line: at WARNING for a ``warn`` or ``error`` entry, else at INFO."""
        if self.level is not None and self.level.lower() in _WARNING_LEVELS:
            log.warning("%s", self.describe(job_id))
        else:
            log.info("%s", self.describe(job_id))


@dataclass(frozen=True)
class JobBudget:
    """Cost guards of a running job: the most tokens it may train, the most it may cost and the longest it may run.

    A guard is checked against what the vendor reports on each poll. OpenAI reports ``trained_tokens`` only once a
    job has finished and DashScope its ``usage`` likewise, so ``max_trained_tokens`` mostly catches a job that ended
    over budget (the task then fails instead of succeeding), and so does ``max_cost``, which is measured on the same
    tokens; ``max_runtime``, counted from the vendor's ``created_at``, is the guard that stops a job before it costs
    more.

    :param max_trained_tokens: most tokens the job may train (``None``: no limit)
    :param max_runtime: most seconds from the job's creation (``None``: no limit)
    :param max_cost: most the job may cost, in the currency of ``price``: its trained tokens at ``price``
        (``None``: no limit)
    :param price: what ``max_cost`` is measured with (the connection's price); required with ``max_cost``
    """

    max_trained_tokens: int | None = None
    max_runtime: float | None = None
    max_cost: float | None = None
    price: Price | None = None

    def __post_init__(self) -> None:
        tokens = self.max_trained_tokens
        if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1):
            raise ValueError(f"max_trained_tokens must be a whole number of at least 1 or None, got {tokens!r}")
        runtime = self.max_runtime
        if runtime is not None and not is_finite_number(runtime):
            raise ValueError(f"max_runtime must be a finite number of seconds or None, got {runtime!r}")
        if runtime is not None and runtime <= 0:
            raise ValueError(f"max_runtime must be a positive number of seconds or None, got {runtime!r}")
        most = self.max_cost
        if most is not None and (not is_finite_number(most) or most <= 0):
            raise ValueError(f"max_cost must be a finite number above 0 or None, got {most!r}")
        if self.price is not None and not isinstance(self.price, Price):
            raise ValueError(f"price must be a Price or None, got {self.price!r:.80}")
        if most is not None and self.price is None:
            raise ValueError(
                "max_cost needs a price to measure the cost with: set the connection extra price_per_million_tokens"
            )

    @property
    def is_set(self) -> bool:
        return self.max_trained_tokens is not None or self.max_runtime is not None or self.max_cost is not None

    def exceeded(self, job: FineTuningJob, now: datetime) -> str | None:
        """Which limit ``job`` has passed at ``now`` (a sentence naming it and the figures), or ``None``."""
        return self._over_tokens(job) or self._over_cost(job) or self._over_runtime(job, now)

    def _over_tokens(self, job: FineTuningJob) -> str | None:
        tokens, most = job.trained_tokens, self.max_trained_tokens
        if most is not None and tokens is not None and tokens > most:
            return f"max_trained_tokens: the job trained {tokens} tokens, more than the {most} allowed"
        return None

    def _over_cost(self, job: FineTuningJob) -> str | None:
        if self.max_cost is None or self.price is None:
            return None
        cost = self.price.cost_of(job.trained_tokens)
        if cost is None or cost <= self.max_cost:
            return None
        shown, allowed = self.price.format(cost), self.price.format(self.max_cost)
        return (
            f"max_cost: the job has cost about {shown} ({job.trained_tokens} trained tokens at "
            f"{self.price.describe()}), more than the {allowed} allowed"
        )

    def _over_runtime(self, job: FineTuningJob, now: datetime) -> str | None:
        if self.max_runtime is None or job.created_at is None or job.is_terminal:
            return None
        ran = timedelta(seconds=round((now - job.created_at).total_seconds()))
        allowed = timedelta(seconds=round(self.max_runtime))
        if ran.total_seconds() > self.max_runtime:
            return f"max_runtime: the job has run {ran}, longer than the {allowed} allowed"
        return None

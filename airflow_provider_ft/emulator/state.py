"""Emulated clock and the thread-safe, lazily advancing job store shared by both vendor dialects."""

from __future__ import annotations

import enum
import itertools
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

Vendor = Literal["dashscope", "openai"]
VENDORS: tuple[Vendor, ...] = ("dashscope", "openai")

#: Emulated seconds a queued-ish job waits before it starts running.
QUEUE_SECONDS = 5.0
#: Emulated seconds a job created through the API runs before it succeeds.
DEFAULT_RUN_SECONDS = 600.0

_ALNUM = string.ascii_letters + string.digits


def random_token(length: int, alphabet: str = _ALNUM) -> str:
    """Return a random string of ``length`` characters drawn from ``alphabet``."""
    return "".join(secrets.choice(alphabet) for _ in range(length))


def as_seconds(value: timedelta | float | None) -> float | None:
    """Normalise a duration given as a ``timedelta`` or as seconds."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


class Clock:
    """Emulated wall clock: real start + real elapsed * ``time_scale`` + manually advanced seconds."""

    def __init__(self, time_scale: float = 1.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        if time_scale < 0:
            raise ValueError("time_scale must be >= 0")
        self._scale = time_scale
        self._monotonic = monotonic
        self._start_wall = time.time()
        self._start_mono = monotonic()
        self._advanced = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """Current emulated time as Unix seconds."""
        with self._lock:
            advanced = self._advanced
        return self._start_wall + (self._monotonic() - self._start_mono) * self._scale + advanced

    def advance(self, seconds: float) -> None:
        """Move emulated time forward by ``seconds`` (never backwards)."""
        if seconds < 0:
            raise ValueError("the emulated clock cannot go backwards")
        with self._lock:
            self._advanced += seconds


@dataclass(frozen=True)
class Vocabulary:
    """One vendor's status words for the lifecycle the emulator simulates."""

    queued: frozenset[str]
    running: str
    succeeded: str
    failed: str
    cancelled: str
    cancelling: str | None
    paused: str

    @property
    def terminal(self) -> frozenset[str]:
        """Statuses that never change again."""
        return frozenset({self.succeeded, self.failed, self.cancelled})

    def outcome_word(self, outcome: str) -> str:
        """Map ``"succeeded"``/``"failed"`` to this vendor's word."""
        return self.failed if outcome == "failed" else self.succeeded


WORDS: dict[Vendor, Vocabulary] = {
    "dashscope": Vocabulary(
        queued=frozenset({"PENDING", "QUEUING"}),
        running="RUNNING",
        succeeded="SUCCEEDED",
        failed="FAILED",
        cancelled="CANCELED",
        cancelling="CANCELING",
        paused="SUSPENDED",
    ),
    "openai": Vocabulary(
        queued=frozenset({"validating_files", "queued"}),
        running="running",
        succeeded="succeeded",
        failed="failed",
        cancelled="cancelled",
        cancelling=None,
        paused="paused",
    ),
}


@dataclass
class Job:
    """A fine-tuning job in vendor-neutral form; the vendor modules serialise it."""

    vendor: Vendor
    id: str
    seq: int
    status: str
    model: str
    created_at: float
    status_since: float
    runs_for: float | None
    outcome: str
    name: str | None = None
    metadata: dict[str, str] | None = None
    error: str | None = None
    finished_at: float | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    history: list[tuple[float, str]] = field(default_factory=list)

    def set_status(self, status: str, at: float) -> None:
        """Enter ``status`` at emulated time ``at`` and remember the transition."""
        self.status = status
        self.status_since = at
        self.history.append((at, status))


class Outcome(enum.Enum):
    """Result of a state-changing store operation."""

    OK = "ok"
    NOT_FOUND = "not_found"
    TERMINAL = "terminal"
    NOT_TERMINAL = "not_terminal"
    WRONG_STATE = "wrong_state"


class JobStore:
    """All emulated jobs of both vendors, guarded by one lock; jobs advance lazily when read."""

    def __init__(self, clock: Clock, cancel_delay: float = 0.0) -> None:
        self.clock = clock
        self.cancel_delay = cancel_delay
        self.lock = threading.RLock()
        self._jobs: dict[Vendor, dict[str, Job]] = {vendor: {} for vendor in VENDORS}
        self._seq = itertools.count(1)

    def reset(self) -> None:
        """Forget every job."""
        with self.lock:
            for jobs in self._jobs.values():
                jobs.clear()

    def add(self, job: Job) -> Job:
        """Store ``job`` (replacing one with the same id) and return it."""
        with self.lock:
            self._jobs[job.vendor][job.id] = job
        return job

    def contains(self, vendor: Vendor, job_id: str) -> bool:
        """Whether a job with this id exists (without advancing it)."""
        with self.lock:
            return job_id in self._jobs[vendor]

    def next_seq(self) -> int:
        """A monotonically increasing number used to order jobs created at the same instant."""
        with self.lock:
            return next(self._seq)

    def get(self, vendor: Vendor, job_id: str) -> Job | None:
        """The job advanced to the current emulated time, or ``None``."""
        with self.lock:
            job = self._jobs[vendor].get(job_id)
            if job is not None:
                self._advance(job, self.clock.now())
            return job

    def all(self, vendor: Vendor) -> list[Job]:
        """Every job of ``vendor``, advanced, newest first."""
        with self.lock:
            now = self.clock.now()
            jobs = list(self._jobs[vendor].values())
            for job in jobs:
                self._advance(job, now)
        return sorted(jobs, key=lambda j: (j.created_at, j.seq), reverse=True)

    def cancel(self, vendor: Vendor, job_id: str) -> tuple[Outcome, Job | None]:
        """Cancel a non-terminal job (through the cancelling state when the vendor has one)."""
        with self.lock:
            job = self.get(vendor, job_id)
            if job is None:
                return Outcome.NOT_FOUND, None
            words = WORDS[vendor]
            if job.status in words.terminal:
                return Outcome.TERMINAL, job
            if job.status != words.cancelling:
                self._start_cancel(job, words)
            return Outcome.OK, job

    def delete(self, vendor: Vendor, job_id: str) -> tuple[Outcome, Job | None]:
        """Remove a terminal job; anything still in flight must be cancelled first."""
        with self.lock:
            job = self.get(vendor, job_id)
            if job is None:
                return Outcome.NOT_FOUND, None
            if job.status not in WORDS[vendor].terminal:
                return Outcome.NOT_TERMINAL, job
            del self._jobs[vendor][job_id]
            return Outcome.OK, job

    def pause(self, vendor: Vendor, job_id: str) -> tuple[Outcome, Job | None]:
        """Pause a queued or running job, keeping the run time it still needs."""
        with self.lock:
            job = self.get(vendor, job_id)
            if job is None:
                return Outcome.NOT_FOUND, None
            words = WORDS[vendor]
            if job.status != words.running and job.status not in words.queued:
                return Outcome.WRONG_STATE, job
            now = self.clock.now()
            if job.status == words.running and job.runs_for is not None:
                job.runs_for = max(job.runs_for - (now - job.status_since), 0.0)
            job.set_status(words.paused, now)
            return Outcome.OK, job

    def resume(self, vendor: Vendor, job_id: str, resumed_word: str) -> tuple[Outcome, Job | None]:
        """Put a paused job back in the queue as ``resumed_word``."""
        with self.lock:
            job = self.get(vendor, job_id)
            if job is None:
                return Outcome.NOT_FOUND, None
            if job.status != WORDS[vendor].paused:
                return Outcome.WRONG_STATE, job
            job.set_status(resumed_word, self.clock.now())
            return Outcome.OK, job

    def _start_cancel(self, job: Job, words: Vocabulary) -> None:
        now = self.clock.now()
        if words.cancelling is not None and self.cancel_delay > 0:
            job.set_status(words.cancelling, now)
        else:
            job.set_status(words.cancelled, now)
            job.finished_at = now

    def _advance(self, job: Job, now: float) -> None:
        """Apply every transition that was due at or before ``now``."""
        while (step := self._next_transition(job)) is not None and step[0] <= now:
            at, status = step
            job.set_status(status, at)
            if status in WORDS[job.vendor].terminal:
                job.finished_at = at
                if status == WORDS[job.vendor].failed and job.error is None:
                    job.error = "The fine-tuning job failed."

    def _next_transition(self, job: Job) -> tuple[float, str] | None:
        words = WORDS[job.vendor]
        if job.status in words.queued:
            return job.status_since + QUEUE_SECONDS, words.running
        if job.status == words.running and job.runs_for is not None:
            return job.status_since + job.runs_for, words.outcome_word(job.outcome)
        if words.cancelling is not None and job.status == words.cancelling:
            return job.status_since + self.cancel_delay, words.cancelled
        return None


@dataclass(frozen=True)
class Settings:
    """Identity of the emulated accounts."""

    api_key: str
    dashscope_timezone: str = "Asia/Shanghai"
    organization_id: str = "org-emulator"
    workspace_id: str = "llm-emulator"


@dataclass
class EmulatorState:
    """Everything the route handlers share."""

    store: JobStore
    settings: Settings


def new_job(
    store: JobStore,
    vendor: Vendor,
    job_id: str,
    *,
    status: str,
    model: str,
    age: float = 0.0,
    runs_for: float | None = DEFAULT_RUN_SECONDS,
    outcome: str = "succeeded",
    name: str | None = None,
    metadata: dict[str, str] | None = None,
    error: str | None = None,
    spec: dict[str, Any] | None = None,
) -> Job:
    """Store a job that is in ``status`` now and was created ``age`` seconds ago.

    Its lifecycle timers start now: a queued job runs after :data:`QUEUE_SECONDS`, a running job ends
    ``runs_for`` seconds from now (never when ``None``). A terminal job gets ``finished_at`` =
    created + min(age, runs_for).
    """
    if outcome not in ("succeeded", "failed"):
        raise ValueError("outcome must be 'succeeded' or 'failed'")
    if age < 0:
        raise ValueError("age must be >= 0")
    now = store.clock.now()
    created = now - age
    job = Job(
        vendor=vendor,
        id=job_id,
        seq=store.next_seq(),
        status=status,
        model=model,
        created_at=created,
        status_since=now,
        runs_for=runs_for,
        outcome=outcome,
        name=name,
        metadata=metadata,
        error=error,
        spec=dict(spec or {}),
    )
    _seed_history(job, WORDS[vendor], age)
    return store.add(job)


def _seed_history(job: Job, words: Vocabulary, age: float) -> None:
    if job.status not in words.terminal:
        job.history.append((job.created_at, job.status))
        return
    ran = age if job.runs_for is None else min(age, job.runs_for)
    job.finished_at = job.created_at + ran
    job.history += [(job.created_at, words.running), (job.finished_at, job.status)]
    if job.status == words.failed and job.error is None:
        job.error = "The fine-tuning job failed."

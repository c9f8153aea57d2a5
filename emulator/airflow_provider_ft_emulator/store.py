"""The thread-safe job store shared by every vendor; jobs advance through their lifecycle when read."""

from __future__ import annotations

import enum
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_ft_emulator.clock import Clock
from airflow_provider_ft_emulator.vocabulary import VENDORS, WORDS, Vendor, Vocabulary

#: Emulated seconds a queued-ish job waits before it starts running.
QUEUE_SECONDS = 5.0
#: The error of a failed job that was given none.
FAILED_MESSAGE = "The fine-tuning job failed."


@dataclass
class Job:
    """A fine-tuning job in vendor-neutral form; the vendor modules serialise it.

    ``runs_for`` is the running time still ahead of the job from ``status_since`` (a pause lowers it);
    ``run_seconds`` the running time its whole run takes (``None`` for both: it runs forever).
    """

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
    run_seconds: float | None = None

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
    """All emulated jobs of every vendor, guarded by one lock.

    :param clock: the emulated clock jobs advance by
    :param cancel_delay: emulated seconds a cancelled job stays in the vendor's cancelling state (if it has one)
    """

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
                    job.error = FAILED_MESSAGE

    def _next_transition(self, job: Job) -> tuple[float, str] | None:
        words = WORDS[job.vendor]
        if job.status in words.queued:
            return job.status_since + QUEUE_SECONDS, words.running
        if job.status == words.running and job.runs_for is not None:
            return job.status_since + job.runs_for, words.outcome_word(job.outcome)
        if words.cancelling is not None and job.status == words.cancelling:
            return job.status_since + self.cancel_delay, words.cancelled
        return None

"""Training progress of a job, derived from its status history and the emulated clock: one milestone per tenth.

A job needs ``run_seconds`` of running in all (time spent paused or queued does not count). The milestone of the
k-th tenth is reached when the job has been running for k tenths of that; its time is where that happens inside
the job's running spans. Milestones are computed afresh on every read, so the list grows as the clock advances,
only ever at its end (each milestone's time is at or before the read), and is the same on every read.

Each job's loss falls along its own curve, ``a * exp(-k * step / TOTAL_STEPS) + b`` with a little noise, all drawn
from a random generator seeded with the job's id: the same job shows the same figures on every read. A job trained
with a validation file also has a validation loss, a little above the training loss, every ``VALIDATION_EVERY``-th
milestone.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass

from airflow_provider_ft_emulator.store import Job
from airflow_provider_ft_emulator.vocabulary import WORDS

#: Milestones in a whole run.
TENTHS = 10
#: Training steps of a whole run (each milestone is a tenth of them).
TOTAL_STEPS = 100
#: Slack for the float sums of span lengths.
EPSILON = 1e-6
#: Milestones between two validation losses (every 20 steps of 100).
VALIDATION_EVERY = 2
#: The request fields that name a job's validation file (OpenAI, Azure and Together AI; DashScope).
VALIDATION_FIELDS = ("validation_file", "validation_file_ids")


@dataclass(frozen=True)
class LossShape:
    """One job's loss curve: ``scale * exp(-decay * step / TOTAL_STEPS) + floor``, noise of up to ``noise``."""

    scale: float
    decay: float
    floor: float
    noise: float
    validation_gap: float

    @classmethod
    def of(cls, job_id: str) -> LossShape:
        """The curve of the job with this id (always the same one)."""
        draw = _seeded(job_id, "shape")
        return cls(
            scale=draw.uniform(1.2, 2.4),
            decay=draw.uniform(1.5, 3.5),
            floor=draw.uniform(0.15, 0.45),
            noise=draw.uniform(0.002, 0.01),
            validation_gap=draw.uniform(0.03, 0.12),
        )

    def train_loss(self, job_id: str, step: int) -> float:
        """The training loss at ``step``: the curve, plus noise too small to undo the fall between milestones."""
        wobble = _seeded(job_id, f"train {step}").uniform(-self.noise, self.noise)
        return round(self.scale * math.exp(-self.decay * step / TOTAL_STEPS) + self.floor + wobble, 4)

    def valid_loss(self, job_id: str, step: int) -> float:
        """The validation loss at ``step``: above the training loss by the job's gap, with its own noise."""
        wobble = _seeded(job_id, f"valid {step}").uniform(-self.noise, self.noise)
        return round(self.train_loss(job_id, step) + self.validation_gap + wobble, 4)


def _seeded(job_id: str, purpose: str) -> random.Random:
    digest = hashlib.sha256(f"{job_id}\0{purpose}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def has_validation_file(job: Job) -> bool:
    """Whether the job was created with a validation file."""
    return any(job.spec.get(field) for field in VALIDATION_FIELDS)


@dataclass(frozen=True)
class Milestone:
    """The ``index``-th tenth of the run of job ``job_id``, reached at emulated time ``at``, with its (made-up)
    metrics; ``validated``: the job has a validation file."""

    index: int
    at: float
    job_id: str = ""
    validated: bool = False

    @property
    def step(self) -> int:
        """The training step reached."""
        return self.index * TOTAL_STEPS // TENTHS

    @property
    def train_loss(self) -> float:
        """The job's training loss, falling as training goes on."""
        return LossShape.of(self.job_id).train_loss(self.job_id, self.step)

    @property
    def valid_loss(self) -> float | None:
        """The job's validation loss every ``VALIDATION_EVERY``-th milestone, if it has a validation file."""
        if not self.validated or self.index % VALIDATION_EVERY:
            return None
        return LossShape.of(self.job_id).valid_loss(self.job_id, self.step)

    @property
    def train_mean_token_accuracy(self) -> float:
        """An accuracy that rises as training goes on."""
        return round(min(0.62 + 0.06 * self.index, 0.99), 4)


def running_spans(job: Job, now: float) -> list[tuple[float, float]]:
    """The ``(start, end)`` intervals the job spent running; an open one ends at ``now`` or when it is due to end."""
    words = WORDS[job.vendor]
    spans: list[tuple[float, float]] = []
    for (start, status), (end, _) in zip(job.history, job.history[1:], strict=False):
        if status == words.running:
            spans.append((start, end))
    if job.history and job.history[-1][1] == words.running == job.status:
        start = job.history[-1][0]
        due = now if job.runs_for is None else min(now, job.status_since + job.runs_for)
        spans.append((start, max(start, due)))
    return spans


def milestones(job: Job, now: float) -> list[Milestone]:
    """The milestones the job has reached by ``now``, oldest first (none when it has no run length)."""
    if job.run_seconds is None or job.run_seconds <= 0:
        return []
    tenth = job.run_seconds / TENTHS
    reached: list[Milestone] = []
    done = 0.0
    for start, end in running_spans(job, now):
        while len(reached) < TENTHS:
            needed = tenth * (len(reached) + 1) - done
            if needed > end - start + EPSILON:
                break
            at = min(start + max(needed, 0.0), end)
            reached.append(Milestone(len(reached) + 1, at, job.id, has_validation_file(job)))
        done += end - start
    return reached

"""Training progress of a job, derived from its status history and the emulated clock: one milestone per tenth.

A job needs ``run_seconds`` of running in all (time spent paused or queued does not count). The milestone of the
k-th tenth is reached when the job has been running for k tenths of that; its time is where that happens inside
the job's running spans. Milestones are computed afresh on every read, so the list grows as the clock advances,
only ever at its end (each milestone's time is at or before the read), and is the same on every read.
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_provider_ft_emulator.store import Job
from airflow_provider_ft_emulator.vocabulary import WORDS

#: Milestones in a whole run.
TENTHS = 10
#: Training steps of a whole run (each milestone is a tenth of them).
TOTAL_STEPS = 100
#: Slack for the float sums of span lengths.
EPSILON = 1e-6


@dataclass(frozen=True)
class Milestone:
    """The ``index``-th tenth of a run, reached at emulated time ``at``, with its (made-up) metrics."""

    index: int
    at: float

    @property
    def step(self) -> int:
        """The training step reached."""
        return self.index * TOTAL_STEPS // TENTHS

    @property
    def train_loss(self) -> float:
        """A loss that falls as training goes on."""
        return round(1.6 / (self.index + 1) + 0.12, 4)

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
            reached.append(Milestone(len(reached) + 1, min(start + max(needed, 0.0), end)))
        done += end - start
    return reached

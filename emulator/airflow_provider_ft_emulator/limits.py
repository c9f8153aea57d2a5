"""An account at its job limit: creates past it are refused with the answer the vendor documents for that.

Only the limits a vendor documents an answer for can be set (docs/operators/create.md gives the sources):

- OpenAI, ``per_day``: jobs created for one model in the last 24 hours (emulated). Past it, HTTP 429
  ``{"error": {"code": "daily_rate_limit_exceeded", "type": "invalid_request_error", "message": "This fine-tune
  request has been rate-limited. Your organization has reached the maximum of N fine-tuning requests per day for
  the model 'M'."}}``, as the answer on record reads.
- Azure OpenAI, ``active``: jobs of the resource not ended yet (queued or running; Microsoft's quotas page: 1
  running and 20 queued by default). Past it, ``{"error": {"code": "quotaExceeded", "message": ...}}``, Microsoft's
  ``ErrorCode`` "Quota exceeded."; with HTTP 429, which Microsoft does not specify (the emulator's choice).

DashScope and Together AI document no such answer, so no limit can be set for them.
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_provider_ft_emulator.errors import ApiFailure
from airflow_provider_ft_emulator.state import EmulatorState
from airflow_provider_ft_emulator.vocabulary import WORDS, Vendor

#: Seconds of the window OpenAI's daily limit counts creates in.
DAY_SECONDS = 24 * 3600.0
#: Which limits each vendor documents an answer for.
DOCUMENTED: dict[Vendor, frozenset[str]] = {"openai": frozenset({"per_day"}), "azure": frozenset({"active"})}


@dataclass(frozen=True)
class JobLimit:
    """How many jobs an emulated account may have; ``None``: no such limit.

    :param active: jobs not ended yet (queued, running, paused, cancelling)
    :param per_day: jobs created for one model in the last 24 emulated hours
    """

    active: int | None = None
    per_day: int | None = None

    def check(self, vendor: Vendor) -> None:
        """``ValueError`` unless every limit set is a whole number of 0 or more that ``vendor`` documents."""
        given = {
            name: value for name, value in (("active", self.active), ("per_day", self.per_day)) if value is not None
        }
        if not given:
            raise ValueError("give active= or per_day=, the most jobs the account may have")
        for name, value in given.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number of jobs, 0 or more, got {value!r}")
            if name not in DOCUMENTED.get(vendor, frozenset()):
                documented = ", ".join(sorted(DOCUMENTED.get(vendor, ()))) or "none"
                raise ValueError(
                    f"{vendor} documents no answer for an account past a '{name}' job limit "
                    f"(the limits it documents: {documented})"
                )


def refuse_past_limit(state: EmulatorState, vendor: Vendor, model: str) -> None:
    """Raise the vendor's job-limit answer if one more job of ``model`` would pass the account's limit.

    Call it with the store's lock held, up to the job's creation, so that two creates cannot both take the last slot.
    """
    limit = state.limits.get(vendor)
    if limit is None:
        return
    jobs = state.store.all(vendor)
    if limit.active is not None:
        active = sum(1 for job in jobs if job.status not in WORDS[vendor].terminal)
        if active >= limit.active:
            raise ApiFailure(
                429,
                "quotaExceeded",
                f"Quota exceeded: the resource already has {active} fine-tuning jobs queued or running "
                f"(at most {limit.active}).",
            )
    if limit.per_day is not None:
        since = state.store.clock.now() - DAY_SECONDS
        today = sum(1 for job in jobs if job.model == model and job.created_at > since)
        if today >= limit.per_day:
            raise ApiFailure(
                429,
                "daily_rate_limit_exceeded",
                "This fine-tune request has been rate-limited. Your organization has reached the maximum of "
                f"{limit.per_day} fine-tuning requests per day for the model '{model}'.",
                kind="invalid_request_error",
            )

"""The vendors, where each is mounted, and each one's status words for the lifecycle the emulator simulates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Vendor = Literal["dashscope", "openai", "azure", "together"]
#: DashScope sends local times without a zone; the service runs in China (UTC+8), as the provider assumes.
DASHSCOPE_TIMEZONE = "Asia/Shanghai"
VENDORS: tuple[Vendor, ...] = ("dashscope", "openai", "azure", "together")
#: How each vendor is called where people read (the command's banner).
DISPLAY_NAMES: dict[Vendor, str] = {
    "dashscope": "DashScope",
    "openai": "OpenAI",
    "azure": "Azure OpenAI",
    "together": "Together AI",
}
#: The path each vendor's routes are mounted at. Azure OpenAI's resource endpoint is ``/azure``: its dated API is
#: below ``/azure/openai`` and its v1 API below ``/azure/openai/v1`` (paths relative to the mount: ``/v1/...``).
MOUNTS: dict[Vendor, str] = {
    "dashscope": "/dashscope/api/v1",
    "openai": "/openai/v1",
    "azure": "/azure/openai",
    "together": "/together/v1",
}
#: What a connection's host ends with for each vendor (Azure's dialect adds ``/openai`` itself).
BASE_PATHS: dict[Vendor, str] = {**MOUNTS, "azure": "/azure"}


@dataclass(frozen=True)
class Vocabulary:
    """One vendor's status words.

    :param queued: the words of a job waiting to start
    :param running: a job training
    :param succeeded: finished with a model
    :param failed: finished without one
    :param cancelled: stopped on request
    :param cancelling: stopping on request (``None``: the vendor cancels at once)
    :param paused: paused on request
    """

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
    # Microsoft's FineTuningState: a new job is pending; a resumed one resuming (2025-04-01-preview), waiting to
    # run again; paused only where its API version pauses.
    "azure": Vocabulary(
        queued=frozenset({"pending", "resuming"}),
        running="running",
        succeeded="succeeded",
        failed="failed",
        cancelled="cancelled",
        cancelling=None,
        paused="paused",
    ),
    # Together AI cannot pause a job: its paused word is never entered.
    "together": Vocabulary(
        queued=frozenset({"pending", "queued"}),
        running="running",
        succeeded="completed",
        failed="error",
        cancelled="cancelled",
        cancelling="cancel_requested",
        paused="paused",
    ),
}


def vendor_named(name: str) -> Vendor:
    """``name`` as a :data:`Vendor`, or a ``ValueError`` naming the known ones.

    :param name: ``"dashscope"``, ``"openai"``, ``"azure"`` or ``"together"``
    """
    for vendor in VENDORS:
        if name == vendor:
            return vendor
    raise ValueError(f"unknown vendor {name!r}; expected one of {VENDORS}")

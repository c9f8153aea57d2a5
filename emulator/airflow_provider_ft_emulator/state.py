"""What the route handlers and the fault actions share: the job and file stores and the emulated accounts' identity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from airflow_provider_ft_emulator.factory import DEFAULT_RUN_SECONDS
from airflow_provider_ft_emulator.files import FileStore
from airflow_provider_ft_emulator.store import JobStore
from airflow_provider_ft_emulator.vocabulary import DASHSCOPE_TIMEZONE, Vendor

if TYPE_CHECKING:
    from airflow_provider_ft_emulator.limits import JobLimit

#: How DashScope's logs answers carry ``logs``: an array of lines, one string of them, or each form for every other
#: job (the reference documents the array; the SDK, that the server may send a string).
LogsForm = Literal["lines", "text", "alternate"]
LOGS_FORMS: tuple[LogsForm, ...] = ("lines", "text", "alternate")


@dataclass(frozen=True)
class Settings:
    """Identity of the emulated accounts.

    :param api_key: the only bearer key accepted
    :param dashscope_timezone: the zone DashScope's zone-less times are written in
    :param organization_id: OpenAI ``organization_id`` of every job
    :param workspace_id: DashScope ``workspace_id`` of jobs created without the workspace header
    :param check_files: whether a job created through the API must name files uploaded (or seeded) before
    :param dashscope_logs: how DashScope's logs answers carry ``logs`` (``alternate``: one string for every other job
        made, an array of lines for the others)
    """

    api_key: str
    dashscope_timezone: str = DASHSCOPE_TIMEZONE
    organization_id: str = "org-emulator"
    workspace_id: str = "llm-emulator"
    check_files: bool = True
    dashscope_logs: LogsForm = "alternate"


@dataclass
class EmulatorState:
    """Everything the route handlers share.

    :param limits: each vendor's job limit (``limits.JobLimit``), for an account that is at it
    :param api_run_seconds: emulated seconds a job created through the API trains before it succeeds (``None``:
        forever)
    """

    store: JobStore
    settings: Settings
    files: FileStore = field(default_factory=FileStore)
    limits: dict[Vendor, JobLimit] = field(default_factory=dict)
    api_run_seconds: float | None = DEFAULT_RUN_SECONDS

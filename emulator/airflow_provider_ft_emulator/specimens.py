"""Jobs that are not in the store, and answers built around them, in each vendor's wire shape.

Faults answer with these instead of serving the request: a plausible body, never a real job's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from airflow_provider_ft_emulator import dashscope_api, openai_api, together_api
from airflow_provider_ft_emulator.exchange import Exchange, encode_json
from airflow_provider_ft_emulator.state import EmulatorState
from airflow_provider_ft_emulator.store import Job
from airflow_provider_ft_emulator.vocabulary import WORDS, Vendor

#: Seconds since a specimen job was submitted: a day, so that it looks stale to a cleanup.
SPECIMEN_AGE = 86_400.0
#: Azure's paths are relative to its mount: its dated API's; the v1 API's carry a ``/v1`` in front.
LISTING_PATHS: dict[Vendor, str] = {
    "dashscope": "/fine-tunes",
    "openai": "/fine_tuning/jobs",
    "azure": "/fine_tuning/jobs",
    "together": "/fine-tunes",
}
_JOB_PATHS: dict[Vendor, re.Pattern[str]] = {
    "dashscope": re.compile(r"^/fine-tunes/([^/]+)"),
    "openai": re.compile(r"^/fine_tuning/jobs/([^/]+)"),
    "azure": re.compile(r"^(?:/v1)?/fine_tuning/jobs/([^/]+)"),
    "together": re.compile(r"^/fine-tunes/([^/]+)"),
}


#: Each vendor's job object, as retrieve answers it.
SERIALIZERS: dict[Vendor, Callable[[Job, EmulatorState], dict[str, Any]]] = {
    "dashscope": dashscope_api.serialize,
    "openai": openai_api.serialize,
    "azure": openai_api.serialize,
    "together": together_api.serialize,
}


def shape_of(exchange: Exchange) -> Vendor:
    """Whose wire shape to answer in: the request's vendor, OpenAI's outside both mounts."""
    return exchange.vendor or "openai"


def is_listing(exchange: Exchange) -> bool:
    """Whether the request lists jobs (``GET /fine-tunes``, ``GET /fine_tuning/jobs``)."""
    path = exchange.entry.path.rstrip("/")
    if shape_of(exchange) == "azure":
        path = path.removeprefix("/v1")
    return exchange.entry.method == "GET" and path == LISTING_PATHS[shape_of(exchange)]


def job_id_in_path(exchange: Exchange) -> str | None:
    """The job id the request's path names, if it names one."""
    found = _JOB_PATHS[shape_of(exchange)].match(exchange.entry.path)
    return found.group(1) if found else None


def specimen_job(
    exchange: Exchange,
    job_id: str,
    *,
    status: str | None = None,
    error: str | None = None,
    name: str | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A job serialised as the vendor would, with ``status`` (default running) and created a day ago.

    :param exchange: the request answered (for the vendor, the clock and the accounts' settings)
    :param job_id: its id
    :param status: the vendor's status word
    :param error: the error of a failed job
    :param name: DashScope ``job_name``, OpenAI, Azure OpenAI and Together AI suffix
    :param metadata: OpenAI metadata
    """
    vendor = shape_of(exchange)
    state = exchange.state
    now = state.store.clock.now()
    words = WORDS[vendor]
    status = status or words.running
    if vendor == "dashscope":
        model = dashscope_api.DEFAULT_MODEL
        spec = dashscope_api.default_spec(model, state.settings.workspace_id)
    elif vendor == "together":
        model, spec = together_api.DEFAULT_MODEL, together_api.default_spec(job_id)
    else:
        model, spec = openai_api.DEFAULT_MODEL, openai_api.default_spec(job_id, name)
    job = Job(
        vendor=vendor,
        id=job_id,
        seq=0,
        status=status,
        model=model,
        created_at=now - SPECIMEN_AGE,
        status_since=now,
        runs_for=None,
        outcome="succeeded",
        name=name,
        metadata=metadata,
        error=error,
        finished_at=now if status in words.terminal else None,
        spec=spec,
    )
    return SERIALIZERS[vendor](job, state)


def job_answer(exchange: Exchange, job: Any) -> dict[str, Any]:
    """``job`` as ``GET`` of one job answers it: DashScope's envelope around it, OpenAI's bare object."""
    if shape_of(exchange) == "dashscope":
        return {"request_id": exchange.request_id, "output": job}
    return dict(job)


def page_answer(
    exchange: Exchange,
    jobs: list[Any],
    *,
    more: bool = False,
    page_no: int = 1,
    page_size: int | None = None,
    total: int | None = None,
) -> dict[str, Any]:
    """A listing page: OpenAI ``{object, data, has_more}``, DashScope ``output: {page_no, page_size, total, jobs}``,
    Together AI ``{data}`` (its listing does not page).

    :param exchange: the request answered
    :param jobs: the page's items
    :param more: OpenAI ``has_more``
    :param page_no: DashScope ``page_no``
    :param page_size: DashScope ``page_size`` (default: the number of jobs)
    :param total: DashScope ``total`` (default: the number of jobs)
    """
    if shape_of(exchange) == "together":
        return {"data": jobs}
    if shape_of(exchange) != "dashscope":
        return {"object": "list", "data": jobs, "has_more": more}
    size = len(jobs) if page_size is None else page_size
    output = {"page_no": page_no, "page_size": size, "total": len(jobs) if total is None else total, "jobs": jobs}
    return {"request_id": exchange.request_id, "output": output}


def canned_body(exchange: Exchange) -> bytes:
    """A short plausible success body to truncate or drop halfway."""
    if exchange.vendor == "dashscope":
        output = {"job_id": "ft-000000000000-0000", "status": "RUNNING", "note": "emulator fault body"}
        return encode_json({"request_id": exchange.request_id, "output": output})
    if exchange.vendor == "together":
        return encode_json({"id": "ft-00000000-0000-0000-0000-000000000000", "status": "running", "note": "fault"})
    return encode_json({"object": "fine_tuning.job", "id": "ftjob-emulatorfaultbody0000", "status": "running"})

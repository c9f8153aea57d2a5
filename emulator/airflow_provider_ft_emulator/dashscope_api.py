"""DashScope ``/fine-tunes`` dialect: job serialisation and the routes under ``/dashscope/api/v1``.

Fields with no value yet (``end_time``, ``finetuned_output``, ``usage``, ``code``/``message``) are absent from
the job object, not ``null``. Times are ``"YYYY-MM-DD HH:MM:SS"`` in the configured zone, without a suffix. The create
body takes the reference's ``job_name`` (the job's name; its id when absent), ``model_name`` (the fine-tuned model's
name) and ``finetuned_output_suffix`` (the model is then ``<model>-<suffix>-<job id>``, as the reference's example
shows). A logs answer skips ``offset`` lines (from 0) and carries ``logs`` as an array of lines or as one string of
them (``Settings.dashscope_logs``).
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from airflow_provider_ft_emulator.errors import ApiFailure
from airflow_provider_ft_emulator.factory import new_job, random_token
from airflow_provider_ft_emulator.progress import TOTAL_STEPS, milestones
from airflow_provider_ft_emulator.routing import body_json, int_param, request_id, state_of
from airflow_provider_ft_emulator.state import EmulatorState, LogsForm
from airflow_provider_ft_emulator.store import FAILED_MESSAGE, Job, Outcome
from airflow_provider_ft_emulator.vocabulary import WORDS

DEFAULT_MODEL = "qwen-turbo"
MAX_LOG_LINES = 1000
WORDS_DS = WORDS["dashscope"]

router = APIRouter()


@lru_cache(maxsize=16)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def format_time(timestamp: float, zone: str) -> str:
    """``2024-10-29 16:53:53`` in ``zone`` with no zone marker, as DashScope writes times."""
    return datetime.fromtimestamp(timestamp, _zone(zone)).strftime("%Y-%m-%d %H:%M:%S")


def new_job_id(now: float, zone: str, taken: Callable[[str], bool] = lambda _: False) -> str:
    """``ft-YYYYMMDDHHMM-xxxx``: creation minute in ``zone`` plus four hex digits (more if those are taken)."""
    stamp = datetime.fromtimestamp(now, _zone(zone)).strftime("%Y%m%d%H%M")
    for attempt in itertools.count():
        job_id = f"ft-{stamp}-{random_token(4 if attempt < 16 else 8, '0123456789abcdef')}"
        if not taken(job_id):
            return job_id
    raise AssertionError("unreachable")  # pragma: no cover


def default_spec(model: str, workspace_id: str) -> dict[str, Any]:
    """Request-side fields of a job created without them."""
    return {
        "base_model": model,
        "training_file_ids": ["file-ft-emulator-train"],
        "validation_file_ids": [],
        "hyper_parameters": {"n_epochs": 1, "batch_size": 16, "learning_rate": "1.6e-5"},
        "training_type": "sft",
        "workspace_id": workspace_id,
    }


def finetuned_output(job: Job) -> str:
    """The produced model's name: the requested ``model_name``, else ``<model>-<finetuned_output_suffix>-<job id>``
    (the reference's get example: ``qwen3-14b-suffix-ft-202410291653-1c7f``), else ``<model>-<job id>``."""
    if job.spec.get("model_name"):
        return str(job.spec["model_name"])
    suffix = job.spec.get("finetuned_output_suffix")
    return f"{job.model}-{suffix}-{job.id}" if suffix else f"{job.model}-{job.id}"


def serialize(job: Job, state: EmulatorState) -> dict[str, Any]:
    """The job exactly as ``output`` of ``GET /fine-tunes/{id}`` carries it."""
    zone = state.settings.dashscope_timezone
    spec = job.spec
    out: dict[str, Any] = {
        "job_id": job.id,
        "job_name": job.name or job.id,
        "status": job.status,
        "model": job.model,
        "base_model": spec.get("base_model", job.model),
        "training_file_ids": list(spec.get("training_file_ids", [])),
        "validation_file_ids": list(spec.get("validation_file_ids") or []),
        "hyper_parameters": dict(spec.get("hyper_parameters", {})),
        "training_type": spec.get("training_type", "sft"),
        "create_time": format_time(job.created_at, zone),
        "workspace_id": spec.get("workspace_id", state.settings.workspace_id),
        "creator": "emulator",
        "modifier": "emulator",
        "group": "llm",
        "user_identity": "emulator",
    }
    if job.finished_at is not None:
        out["end_time"] = format_time(job.finished_at, zone)
    if job.status == WORDS_DS.succeeded:
        out["finetuned_output"] = finetuned_output(job)
        out["usage"] = zlib.crc32(job.id.encode()) % 900_000 + 100_000
    if job.status == WORDS_DS.failed:
        out["code"] = "TrainingFailed"
        out["message"] = job.error or FAILED_MESSAGE
    return out


def seed(
    state: EmulatorState, *, job_id: str | None, status: str | None, model: str | None, age: float, **kwargs: Any
) -> Job:
    """Create a job directly in the store (see ``FineTuningEmulator.seed_job``)."""
    store = state.store
    model = model or DEFAULT_MODEL
    job_id = job_id or new_job_id(store.clock.now() - age, state.settings.dashscope_timezone, _taken(state))
    spec = default_spec(model, state.settings.workspace_id)
    status = status or WORDS_DS.running
    return new_job(store, "dashscope", job_id, status=status, model=model, age=age, spec=spec, **kwargs)


def log_lines(job: Job, now: float, zone: str) -> list[str]:
    """The job's log by ``now``, oldest first: its status transitions (with their time) and, per tenth of its run,
    a line of figures in the form of the reference's example, a Python dict (``{'loss': 1.2, ..., 'step': 10}``;
    an ``eval_loss`` line after it where the job has a validation loss there).

    At the same instant figure lines come before a status line, so the log only ever grows at its end.
    """
    keyed = [
        ((at, 2, index), f"{format_time(at, zone)} job {job.id} status {status}")
        for index, (at, status) in enumerate(job.history)
    ]
    for m in milestones(job, now):
        epoch = round(m.step / TOTAL_STEPS, 4)
        keyed.append(
            (
                (m.at, 0, m.index),
                f"{{'loss': {m.train_loss}, 'learning_rate': 1.6e-05, 'epoch': {epoch}, 'step': {m.step}}}",
            )
        )
        if m.valid_loss is not None:
            keyed.append(((m.at, 1, m.index), f"{{'eval_loss': {m.valid_loss}, 'epoch': {epoch}, 'step': {m.step}}}"))
    return [text for _, text in sorted(keyed, key=lambda pair: pair[0])]


def _check_files(state: EmulatorState, spec: dict[str, Any]) -> None:
    """Every training and validation file must have been uploaded (unless files are not checked)."""
    if not state.settings.check_files:
        return
    for file_id in [*spec["training_file_ids"], *spec["validation_file_ids"]]:
        if not isinstance(file_id, str) or not state.files.contains("dashscope", file_id):
            raise _invalid(f"File not found: {file_id}")


def _taken(state: EmulatorState) -> Callable[[str], bool]:
    return lambda job_id: state.store.contains("dashscope", job_id)


def _ok(request: Request, output: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"request_id": request_id(request), "output": output})


def _not_found() -> ApiFailure:
    return ApiFailure(404, "NotFound", "Not Found!")


def _invalid(message: str) -> ApiFailure:
    return ApiFailure(400, "InvalidParameter", message)


def _create_spec(body: dict[str, Any], workspace: str) -> dict[str, Any]:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("Missing model")
    files = body.get("training_file_ids")
    if isinstance(files, str):
        files = [files]
    if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
        raise _invalid("Missing training files")
    hyper = body.get("hyper_parameters") or {}
    if not isinstance(hyper, dict):
        raise _invalid("hyper_parameters must be an object")
    for name in ("job_name", "model_name", "finetuned_output_suffix"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise _invalid(f"{name} must be a string")
    validation = body.get("validation_file_ids") or []
    return {
        "base_model": model,
        "training_file_ids": files,
        "validation_file_ids": [validation] if isinstance(validation, str) else list(validation),
        "hyper_parameters": hyper,
        "training_type": body.get("training_type") or "sft",
        "workspace_id": workspace,
        "model_name": body.get("model_name"),
        "finetuned_output_suffix": body.get("finetuned_output_suffix"),
    }


@router.post("/fine-tunes")
async def create_job(request: Request) -> JSONResponse:
    """``POST /fine-tunes``: the new job starts ``PENDING``; its files must have been uploaded (see ``check_files``)."""
    state = state_of(request)
    body = body_json(await request.body(), "dashscope")
    if not isinstance(body, dict):
        raise _invalid("Request body must be a JSON object")
    workspace = request.headers.get("x-dashscope-workspace") or state.settings.workspace_id
    spec = _create_spec(body, workspace)
    _check_files(state, spec)
    now = state.store.clock.now()
    job_id = new_job_id(now, state.settings.dashscope_timezone, _taken(state))
    name = body.get("job_name") or None
    job = new_job(
        state.store,
        "dashscope",
        job_id,
        status="PENDING",
        model=spec["base_model"],
        name=name,
        spec=spec,
        runs_for=state.api_run_seconds,
    )
    return _ok(request, serialize(job, state))


@router.get("/fine-tunes")
async def list_jobs(request: Request) -> JSONResponse:
    """``GET /fine-tunes?page_no=&page_size=&model=``: newest first."""
    state = state_of(request)
    page_no = int_param(request, "page_no", 1, 1, None, "dashscope")
    page_size = int_param(request, "page_size", 10, 1, 100, "dashscope")
    model = request.query_params.get("model")
    jobs = [j for j in state.store.all("dashscope") if not model or model in (j.model, j.spec.get("base_model"))]
    page = jobs[(page_no - 1) * page_size : page_no * page_size]
    output = {
        "page_no": page_no,
        "page_size": page_size,
        "total": len(jobs),
        "jobs": [serialize(job, state) for job in page],
    }
    return _ok(request, output)


@router.get("/fine-tunes/{job_id}")
async def get_job(request: Request, job_id: str) -> JSONResponse:
    """``GET /fine-tunes/{id}``."""
    state = state_of(request)
    job = state.store.get("dashscope", job_id)
    if job is None:
        raise _not_found()
    return _ok(request, serialize(job, state))


@router.post("/fine-tunes/{job_id}/cancel")
async def cancel_job(request: Request, job_id: str) -> JSONResponse:
    """``POST /fine-tunes/{id}/cancel``: ``CANCELING`` for ``cancel_delay`` seconds, then ``CANCELED``."""
    outcome, job = state_of(request).store.cancel("dashscope", job_id)
    if outcome is Outcome.NOT_FOUND:
        raise _not_found()
    if outcome is Outcome.TERMINAL and job is not None:
        message = f"The fine-tuning job cannot be canceled because it is {job.status}."
        raise ApiFailure(400, "UnsupportedOperation", message)
    return _ok(request, {"status": "success"})


@router.delete("/fine-tunes/{job_id}")
async def delete_job(request: Request, job_id: str) -> JSONResponse:
    """``DELETE /fine-tunes/{id}``: only finished jobs can be deleted."""
    outcome, job = state_of(request).store.delete("dashscope", job_id)
    if outcome is Outcome.NOT_FOUND:
        raise _not_found()
    if outcome is Outcome.NOT_TERMINAL and job is not None:
        message = f"The fine-tuning job cannot be deleted because it is {job.status}; cancel it first."
        raise ApiFailure(400, "UnsupportedOperation", message)
    return _ok(request, {"status": "success"})


def logs_as_text(job: Job, form: LogsForm) -> bool:
    """Whether ``job``'s logs answers carry one string rather than an array: always, never, or for every other job."""
    return form == "text" or (form == "alternate" and job.seq % 2 == 0)


@router.get("/fine-tunes/{job_id}/logs")
async def job_logs(request: Request, job_id: str) -> JSONResponse:
    """``GET /fine-tunes/{id}/logs?offset=&line=``: one line per lifecycle transition and per tenth of the run.

    ``offset`` skips that many lines (reference: "starts reading from line offset+1 ... The default value is 0"), and
    an offset past the end gives no line; ``line`` lines are read, 100 by default, at most 1000.
    """
    state = state_of(request)
    offset = int_param(request, "offset", 0, 0, None, "dashscope")
    line = int_param(request, "line", 100, 1, MAX_LOG_LINES, "dashscope")
    job = state.store.get("dashscope", job_id)
    if job is None:
        raise _not_found()
    logs = log_lines(job, state.store.clock.now(), state.settings.dashscope_timezone)
    window = logs[offset : offset + line]
    sent: list[str] | str = "\n".join(window) if logs_as_text(job, state.settings.dashscope_logs) else window
    return _ok(request, {"total": len(logs), "logs": sent})

"""Together AI fine-tunes: job, event and file objects and the routes under ``/together/v1``.

The bodies follow the official SDK's types (``together`` 3.x: ``FinetuneResponse``, ``FineTuningListResponse``,
``FineTuningListEventsResponse``, ``FineTuningDeleteResponse``, ``FileResponse``, ``FileList``): times are ISO 8601
strings (file times Unix seconds), the listing and the events are one unpaginated ``{"data": [...]}``, errors are
``{"error": {"message", "type", "param", "code"}}``. A cancelled job passes through ``cancel_requested`` when the
emulator has a cancel delay; only a finished job can be deleted.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import FormData, UploadFile

from airflow_provider_ft_emulator.errors import ApiFailure
from airflow_provider_ft_emulator.factory import new_job
from airflow_provider_ft_emulator.files import FINE_TUNE, Digest, StoredFile, digest_upload, stored_file
from airflow_provider_ft_emulator.progress import TOTAL_STEPS, milestones
from airflow_provider_ft_emulator.routing import body_json, state_of
from airflow_provider_ft_emulator.state import EmulatorState
from airflow_provider_ft_emulator.store import FAILED_MESSAGE, Job, Outcome
from airflow_provider_ft_emulator.vocabulary import WORDS

DEFAULT_MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
USER_ID = "emulator-user"
ORG_SLUG = "emulator"
MAX_SUFFIX_LENGTH = 40
#: The batch size a job asked with ``"max"`` answers with (the published job schema's ``batch_size`` is an integer):
#: the emulator's stand-in for the model's ``max_batch_size`` (``GET /fine-tunes/models/limits``).
MAX_BATCH_SIZE = 32
#: Fields every event carries (the published ``FineTuneEvent`` requires them); progress events set their steps.
EVENT_DEFAULTS: dict[str, Any] = {
    "param_count": 0,
    "token_count": 0,
    "total_steps": 0,
    "wandb_url": "",
    "step": 0,
    "checkpoint_path": "",
    "model_path": "",
    "training_offset": 0,
}
#: The hyper-parameters a job answers with when the request gave none.
DEFAULT_HYPERPARAMETERS: dict[str, Any] = {
    "n_epochs": 1,
    "n_checkpoints": 1,
    "n_evals": 0,
    "batch_size": 16,
    "learning_rate": 0.00001,
    "warmup_ratio": 0.0,
    "max_grad_norm": 1.0,
    "weight_decay": 0.0,
}
#: Fields of ``POST /fine-tunes`` the emulator takes (the others get a 400).
CREATE_FIELDS = frozenset(
    {"model", "training_file", "validation_file", "suffix", "training_method", "training_type", "random_seed"}
    | set(DEFAULT_HYPERPARAMETERS)
    | {"lr_scheduler", "train_on_inputs", "max_seq_length", "packing", "from_checkpoint"}
    | {"wandb_api_key", "wandb_base_url", "wandb_project_name", "wandb_name", "wandb_entity"}
    | {"hf_api_token", "hf_output_repo_name", "from_hf_model", "hf_model_revision", "multimodal_params"}
)
WORDS_TG = WORDS["together"]
#: The event type of each status a job enters.
_STATUS_EVENTS = {
    "pending": ("job_pending", "Fine tune request created"),
    "queued": ("job_pending", "Job is queued"),
    "running": ("job_start", "Job started"),
    "compressing": ("model_compressing", "Compressing output model"),
    "uploading": ("model_uploading", "Uploading output model"),
    "cancel_requested": ("cancel_requested", "Cancel requested"),
    "cancelled": ("job_stopped", "Job was stopped"),
    "completed": ("job_complete", "Job finished"),
}

router = APIRouter()


def new_job_id() -> str:
    """``ft-`` and a UUID, as Together's ids are."""
    return f"ft-{uuid.uuid4()}"


def new_file_id() -> str:
    """``file-`` and a UUID."""
    return f"file-{uuid.uuid4()}"


def iso(seconds: float) -> str:
    """Unix seconds as the API writes times: ISO 8601 in UTC with a ``Z``."""
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _token(*parts: str, length: int = 8) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def output_name(job: Job) -> str:
    """``<org>/<base model's name>-<suffix>-<hash>``."""
    suffix = f"-{job.name}" if job.name else ""
    return f"{ORG_SLUG}/{job.model.rsplit('/', 1)[-1]}{suffix}-{_token(job.id)}"


def default_spec(job_id: str) -> dict[str, Any]:
    """Request-side fields of a job seeded without them."""
    return {
        **DEFAULT_HYPERPARAMETERS,
        "training_file": f"file-{uuid.UUID(_token(job_id, 'train', length=32))}",
        "validation_file": None,
        "training_method": {"method": "sft", "train_on_inputs": "auto"},
        "training_type": {"type": "Lora", "lora_r": 8, "lora_alpha": 16},
    }


def serialize(job: Job, state: EmulatorState, *, with_events: bool = True) -> dict[str, Any]:
    """The job object as retrieve (with its ``events``), list, create and cancel answer it."""
    spec = job.spec
    succeeded = job.status == WORDS_TG.succeeded
    updated = job.finished_at if job.finished_at is not None else job.status_since
    body: dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "user_id": USER_ID,
        "model": job.model,
        "model_output_name": output_name(job),
        "created_at": iso(job.created_at),
        "updated_at": iso(max(updated, job.created_at)),
        "started_at": iso(job.status_since),
        "training_file": spec.get("training_file"),
        "validation_file": spec.get("validation_file") or "",
        **{key: spec.get(key, value) for key, value in DEFAULT_HYPERPARAMETERS.items()},
        "batch_size": MAX_BATCH_SIZE if spec.get("batch_size") == "max" else spec.get("batch_size", 16),
        "training_method": spec.get("training_method") or {"method": "sft", "train_on_inputs": "auto"},
        "training_type": spec.get("training_type") or {"type": "Full"},
        "random_seed": spec.get("random_seed"),
        # The real API reports the dataset's tokens once it is tokenized; the emulator, like its OpenAI
        # trained_tokens, once the job has completed.
        "token_count": int(_token(job.id, "tokens", length=4), 16) + 10_000 if succeeded else 0,
        "param_count": 8_030_261_248,
        "total_price": 0,
        "epochs_completed": 1 if succeeded else 0,
        "queue_depth": 0,
        "trainingfile_numlines": 100,
        "trainingfile_size": 4096,
    }
    if job.name is not None:
        body["suffix"] = job.name  # a string in the published schema: absent when the job has none
    if with_events:
        body["events"] = events(job, state.store.clock.now())
    return body


def seed(
    state: EmulatorState,
    *,
    job_id: str | None,
    status: str | None,
    model: str | None,
    name: str | None,
    metadata: dict[str, str] | None,
    **kwargs: Any,
) -> Job:
    """Create a job directly in the store; ``name`` becomes its ``suffix`` (Together keeps no metadata)."""
    job_id = job_id or new_job_id()
    return new_job(
        state.store,
        "together",
        job_id,
        status=status or WORDS_TG.running,
        model=model or DEFAULT_MODEL,
        name=name,
        spec=default_spec(job_id),
        **kwargs,
    )


def events(job: Job, now: float) -> list[dict[str, Any]]:
    """The job's log by ``now``, oldest first: one event per status entered and one per tenth of training. At the
    same instant a progress event comes before a status event, so the log only ever grows at its end."""
    keyed: list[tuple[tuple[float, int, int], dict[str, Any]]] = []
    for index, (at, status) in enumerate(job.history or [(job.status_since, job.status)]):
        keyed.append(((at, 1, index), _status_event(job, index, at, status)))
    for milestone in milestones(job, now):
        message = f"Training progress: step {milestone.step}/{TOTAL_STEPS}"
        event = _event(job, "training", milestone.index, milestone.at, "checkpoint_save", message)
        step_fields = {"step": milestone.step, "total_steps": TOTAL_STEPS}
        keyed.append(((milestone.at, 0, milestone.index), {**event, **step_fields}))
    return [event for _, event in sorted(keyed, key=lambda pair: pair[0])]


def metrics(job: Job, now: float) -> list[dict[str, float]]:
    """``GET /fine-tunes/{id}/metrics`` rows by ``now``, oldest first: a training row (``train/*``) per tenth of the
    run, and an evaluation row (``eval/*``) after it where the job has a validation loss there."""
    rows: list[dict[str, float]] = []
    for milestone in milestones(job, now):
        rows.append(
            {"train/loss": milestone.train_loss, "train/learning_rate": 0.00001, "train/global_step": milestone.step}
        )
        if milestone.valid_loss is not None:
            rows.append({"eval/loss": milestone.valid_loss, "train/global_step": milestone.step})
    return rows


def _status_event(job: Job, index: int, at: float, status: str) -> dict[str, Any]:
    if status == WORDS_TG.failed:
        return _event(job, "status", index, at, "job_error", job.error or FAILED_MESSAGE, level="error")
    kind, message = _STATUS_EVENTS.get(status, ("warning", f"Job status: {status}"))
    return _event(job, "status", index, at, kind, message)


def _event(
    job: Job, family: str, index: int, at: float, kind: str, message: str, level: str = "info"
) -> dict[str, Any]:
    return {
        "object": "fine-tune-event",
        "created_at": iso(at),
        "level": level,
        "message": message,
        "type": kind,
        **EVENT_DEFAULTS,
        "hash": _token(job.id, family, str(index), length=16),
    }


def _invalid(message: str, param: str | None = None) -> ApiFailure:
    return ApiFailure(400, "invalid_request", message, param=param)


def _not_found(job_id: str) -> ApiFailure:
    return ApiFailure(404, "not_found", f"Fine-tune job {job_id} not found", param="id")


def _string(body: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = body.get(name)
    if value is None or (value == "" and not required):
        if required:
            raise _invalid(f"{name} is required", name)
        return None
    if not isinstance(value, str) or not value:
        raise _invalid(f"{name} must be a string", name)
    return value


def _create_spec(state: EmulatorState, body: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(body) - CREATE_FIELDS)
    if unknown:
        raise _invalid(f"unknown field(s): {', '.join(unknown)}", unknown[0])
    spec: dict[str, Any] = {key: body[key] for key in body if key not in ("model", "suffix")}
    spec["training_file"] = _string(body, "training_file", required=True)
    spec["validation_file"] = _string(body, "validation_file", required=False)
    for name in ("n_epochs", "n_checkpoints", "n_evals"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise _invalid(f"{name} must be a non-negative integer", name)
    method = body.get("training_method")
    if method is not None and (not isinstance(method, dict) or method.get("method") not in ("sft", "dpo")):
        raise _invalid("training_method.method must be sft or dpo", "training_method")
    if method is not None and method["method"] == "sft":
        spec["training_method"] = {"train_on_inputs": "auto", **method}
    kind = body.get("training_type")
    if kind is not None and (not isinstance(kind, dict) or kind.get("type") not in ("Full", "Lora")):
        raise _invalid("training_type.type must be Full or Lora", "training_type")
    _check_files(state, spec)
    return spec


def _check_files(state: EmulatorState, spec: dict[str, Any]) -> None:
    """The training and validation files must be uploaded ``fine-tune`` files (unless files are not checked)."""
    if not state.settings.check_files:
        return
    for param in ("training_file", "validation_file"):
        file_id = spec.get(param)
        if file_id is None:
            continue
        found = state.files.get("together", file_id)
        if found is None or found.purpose != FINE_TUNE:
            raise _invalid(f"{param} {file_id} does not exist or is not a fine-tune file", param)


@router.post("/fine-tunes")
async def create_job(request: Request) -> JSONResponse:
    """``POST /fine-tunes``: the new job starts ``pending``; its files must have been uploaded (``fine-tune``)."""
    state = state_of(request)
    body = body_json(await request.body(), "together")
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.")
    model = _string(body, "model", required=True) or DEFAULT_MODEL
    suffix = _string(body, "suffix", required=False)
    if suffix is not None and len(suffix) > MAX_SUFFIX_LENGTH:
        raise _invalid(f"suffix must be at most {MAX_SUFFIX_LENGTH} characters", "suffix")
    spec = _create_spec(state, body)
    job = new_job(
        state.store,
        "together",
        new_job_id(),
        status="pending",
        model=model,
        name=suffix,
        spec=spec,
        runs_for=state.api_run_seconds,
    )
    return JSONResponse(serialize(job, state, with_events=False))


@router.get("/fine-tunes")
async def list_jobs(request: Request) -> JSONResponse:
    """``GET /fine-tunes``: every job, newest first, in one answer (the API does not page)."""
    state = state_of(request)
    return JSONResponse({"data": [serialize(job, state, with_events=False) for job in state.store.all("together")]})


def _job_or_404(state: EmulatorState, job_id: str) -> Job:
    job = state.store.get("together", job_id)
    if job is None:
        raise _not_found(job_id)
    return job


@router.get("/fine-tunes/{job_id}")
async def retrieve_job(request: Request, job_id: str) -> JSONResponse:
    """``GET /fine-tunes/{id}``: the job with its events."""
    state = state_of(request)
    return JSONResponse(serialize(_job_or_404(state, job_id), state))


@router.post("/fine-tunes/{job_id}/cancel")
async def cancel_job(request: Request, job_id: str) -> JSONResponse:
    """``POST /fine-tunes/{id}/cancel``: a job in flight becomes ``cancel_requested`` (or ``cancelled`` at once)."""
    state = state_of(request)
    outcome, job = state.store.cancel("together", job_id)
    if outcome is Outcome.NOT_FOUND or job is None:
        raise _not_found(job_id)
    if outcome is not Outcome.OK:
        raise _invalid(f"Cannot cancel fine-tune job {job_id}: its status is {job.status}", "id")
    return JSONResponse(serialize(job, state, with_events=False))


@router.delete("/fine-tunes/{job_id}")
async def delete_job(request: Request, job_id: str) -> JSONResponse:
    """``DELETE /fine-tunes/{id}``: ``{"message": ...}``; a job still in flight must be cancelled first."""
    outcome, job = state_of(request).store.delete("together", job_id)
    if outcome is Outcome.NOT_FOUND or job is None:
        raise _not_found(job_id)
    if outcome is not Outcome.OK:
        raise _invalid(f"Cannot delete fine-tune job {job_id}: its status is {job.status}; cancel it first", "id")
    return JSONResponse({"message": f"Fine-tune job {job_id} deleted"})


@router.get("/fine-tunes/{job_id}/events")
async def list_events(request: Request, job_id: str) -> JSONResponse:
    """``GET /fine-tunes/{id}/events``: the whole log, oldest first, in one answer."""
    state = state_of(request)
    job = _job_or_404(state, job_id)
    return JSONResponse({"data": events(job, state.store.clock.now())})


@router.get("/fine-tunes/{job_id}/metrics")
async def list_metrics(request: Request, job_id: str) -> JSONResponse:
    """``GET /fine-tunes/{id}/metrics``: every recorded metrics row, oldest first (filters are not applied)."""
    state = state_of(request)
    job = _job_or_404(state, job_id)
    return JSONResponse({"metrics": metrics(job, state.store.clock.now())})


# -- files ------------------------------------------------------------------------------------------------------


def serialize_file(stored: StoredFile) -> dict[str, Any]:
    """The file object (``FileResponse``) as upload and list return it."""
    return {
        "id": stored.id,
        "object": "file",
        "created_at": int(stored.created_at),
        "filename": stored.filename,
        "bytes": stored.bytes,
        "purpose": stored.purpose,
        "Processed": True,
        "FileType": "jsonl",
        "LineCount": 0,
    }


def keep(state: EmulatorState, filename: str, found: Digest, purpose: str) -> StoredFile:
    """Store an upload's metadata under a new id (or refuse a bad fine-tuning file with its 400)."""
    if found.problem is not None:
        raise _invalid(f"Invalid file format: {found.problem}", "file")
    return stored_file(state.files, state.store.clock, "together", new_file_id(), filename, found, purpose=purpose)


def _upload_fields(form: FormData) -> tuple[UploadFile, str, str]:
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise _invalid("file is required", "file")
    purpose, name = form.get("purpose"), form.get("file_name")
    if not isinstance(purpose, str) or not purpose:
        raise _invalid("purpose is required", "purpose")
    if not isinstance(name, str) or not name:
        raise _invalid("file_name is required", "file_name")
    return upload, purpose, name


@router.post("/files/upload")
async def upload_file(request: Request) -> JSONResponse:
    """``POST /files/upload`` (multipart ``file``, ``file_name``, ``purpose``, ``file_type``): the stored file."""
    state = state_of(request)
    async with request.form(max_files=4, max_fields=16) as form:
        upload, purpose, name = _upload_fields(form)
        found = await digest_upload(upload, check=purpose == FINE_TUNE)
        stored = keep(state, name, found, purpose)
    return JSONResponse(serialize_file(stored))


@router.get("/files")
async def list_files(request: Request) -> JSONResponse:
    """``GET /files``: every file, newest first, in one answer."""
    return JSONResponse({"data": [serialize_file(f) for f in state_of(request).files.all("together")]})

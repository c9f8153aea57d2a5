"""OpenAI fine-tuning jobs dialect: job, event and checkpoint objects and the routes under ``/openai/v1``.

The same routes serve Azure OpenAI's mount (``/azure/openai`` and ``/azure/openai/v1``), with Azure's differences:
its jobs start ``pending``, carry their ``suffix``, are created with ``201``, list their events oldest first (so
``after`` pages forward), and pause and resume only where Microsoft documents them (from api-version
2025-04-01-preview, and on v1), a resumed job answering ``resuming``; their deletion is in
:mod:`~airflow_provider_ft_emulator.azure_api`. OpenAI's succeeded jobs carry ``estimated_finish: 0``, as OpenAI's
own retrieve example does.

Every body validates against the OpenAI contract (``FineTuningJob``, ``ListPaginatedFineTuningJobsResponse``,
``ListFineTuningJobEventsResponse``, ``ListFineTuningJobCheckpointsResponse``), except that ``status`` carries
whatever word the job is in: ``paused`` (which the real pause endpoint answers) and seeded unknown words are
not in the spec's enum.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from airflow_provider_ft_emulator.errors import ApiFailure, not_found_route
from airflow_provider_ft_emulator.factory import new_job, random_token
from airflow_provider_ft_emulator.files import FINE_TUNE
from airflow_provider_ft_emulator.limits import refuse_past_limit
from airflow_provider_ft_emulator.progress import TOTAL_STEPS, Milestone, milestones
from airflow_provider_ft_emulator.routing import body_json, int_param, state_of, vendor_of
from airflow_provider_ft_emulator.state import EmulatorState
from airflow_provider_ft_emulator.store import FAILED_MESSAGE, Job, Outcome
from airflow_provider_ft_emulator.vocabulary import MOUNTS, WORDS, Vendor

DEFAULT_MODEL = "gpt-4o-mini-2024-07-18"
ORG_SLUG = "emulator"
METHODS = ("supervised", "dpo", "reinforcement")
AUTO_HYPERPARAMETERS = {"batch_size": "auto", "learning_rate_multiplier": "auto", "n_epochs": "auto"}
CHECKPOINT_STEPS = (100, 200, 300)
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
WORDS_OA = WORDS["openai"]
#: The status a job is created in.
FIRST_STATUS: dict[Vendor, str] = {"openai": "validating_files", "azure": "pending"}
#: Azure's longest suffix (40 characters; OpenAI takes 64).
AZURE_MAX_SUFFIX = 40
#: The status a resumed job answers with (Azure's 2025-04-01-preview ``FineTuning_Resume`` example: ``resuming``).
RESUMED_STATUS: dict[Vendor, str] = {"openai": "queued", "azure": "resuming"}
#: The first dated Azure api-version with pause and resume (a preview; its v1 API has them too).
AZURE_PAUSE_SINCE = "2025-04-01"

router = APIRouter()

T = TypeVar("T")


def new_job_id() -> str:
    """``ftjob-`` followed by 24 letters and digits."""
    return f"ftjob-{random_token(24)}"


def _stable_token(*parts: str, length: int = 24) -> str:
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


def fine_tuned_model(job: Job) -> str:
    """``ft:<base model>:<org>:<suffix>:<8 chars>``."""
    suffix = job.spec.get("suffix") or ""
    return f"ft:{job.model}:{ORG_SLUG}:{suffix}:{_stable_token(job.id, length=8)}"


def supervised_method(hyperparameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{"type": "supervised", "supervised": {"hyperparameters": ...}}`` with ``auto`` defaults."""
    return {
        "type": "supervised",
        "supervised": {"hyperparameters": {**AUTO_HYPERPARAMETERS, **(hyperparameters or {})}},
    }


def default_spec(job_id: str, suffix: str | None = None) -> dict[str, Any]:
    """Request-side fields of a job seeded without them."""
    return {
        "training_file": f"file-{_stable_token(job_id, 'train')}",
        "validation_file": None,
        "suffix": suffix,
        "seed": zlib.crc32(job_id.encode()) % 2_147_483_647,
        "method": supervised_method(),
        "integrations": [],
    }


def serialize(job: Job, state: EmulatorState) -> dict[str, Any]:
    """The ``fine_tuning.job`` object as retrieve/list/cancel return it."""
    spec = job.spec
    method = spec.get("method") or supervised_method()
    succeeded = job.status == WORDS_OA.succeeded
    body = {
        "object": "fine_tuning.job",
        "id": job.id,
        "model": job.model,
        "created_at": int(job.created_at),
        "finished_at": None if job.finished_at is None else int(job.finished_at),
        "fine_tuned_model": fine_tuned_model(job) if succeeded else None,
        "organization_id": state.settings.organization_id,
        "result_files": [f"file-{_stable_token(job.id, 'result')}"] if succeeded else [],
        "status": job.status,
        "validation_file": spec.get("validation_file"),
        "training_file": spec.get("training_file") or "file-emulator",
        "hyperparameters": _hyperparameters(method),
        "trained_tokens": zlib.crc32(job.id.encode()) % 90_000 + 10_000 if succeeded else None,
        "error": _error(job),
        "seed": int(spec.get("seed") or 0),
        "estimated_finish": _estimated_finish(job),
        "integrations": list(spec.get("integrations") or []),
        "metadata": job.metadata,
        "method": method,
        "user_provided_suffix": spec.get("suffix"),
    }
    if job.vendor == "azure":
        body["suffix"] = spec.get("suffix")
        body["hyperparameters"] = azure_hyperparameters(_hyperparameters(method))
    return body


def azure_hyperparameters(hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """Azure's hyper-parameters are numbers, ``-1`` for one the service chooses (OpenAI's ``auto``): its
    ``FineTuningHyperParameters`` and its example answer ``{"n_epochs": -1}`` (azure-rest-api-specs,
    AzureOpenAI/authoring/stable/2024-10-21/examples/get_finetuning_job.json)."""
    return {name: -1 if value == "auto" else value for name, value in hyperparameters.items()}


def _hyperparameters(method: dict[str, Any]) -> dict[str, Any]:
    chosen = method.get(method.get("type", "supervised")) or {}
    hyper = chosen.get("hyperparameters") if isinstance(chosen, dict) else None
    return {**AUTO_HYPERPARAMETERS, **(hyper or {})}


def _error(job: Job) -> dict[str, Any] | None:
    if job.status != WORDS_OA.failed:
        return None
    return {"code": "job_failed", "message": job.error or FAILED_MESSAGE, "param": None}


def _estimated_finish(job: Job) -> int | None:
    """When a running job will end; ``0`` on a succeeded OpenAI job (OpenAI's documented answer); else ``None``."""
    if job.vendor == "openai" and job.status == WORDS_OA.succeeded:
        return 0
    if job.status != WORDS_OA.running or job.runs_for is None:
        return None
    return int(job.status_since + job.runs_for)


def seed(
    state: EmulatorState,
    *,
    vendor: Vendor = "openai",
    job_id: str | None,
    status: str | None,
    model: str | None,
    name: str | None,
    metadata: dict[str, str] | None,
    **kwargs: Any,
) -> Job:
    """Create a job directly in the store; ``name`` becomes the suffix and ``metadata["name"]``."""
    job_id = job_id or new_job_id()  # 62**24 ids: collisions are not a concern
    merged = dict(metadata or {})
    if name is not None:
        merged.setdefault("name", name)
    return new_job(
        state.store,
        vendor,
        job_id,
        status=status or WORDS_OA.running,
        model=model or DEFAULT_MODEL,
        name=name,
        metadata=merged or None,
        spec=default_spec(job_id, name),
        **kwargs,
    )


def events(job: Job, now: float) -> list[dict[str, Any]]:
    """``fine_tuning.job.event`` objects for the job's history and training progress by ``now``, newest first.

    Status events keep the ids of their place among the status events; a ``metrics`` event (one per tenth of the
    run, see :mod:`~airflow_provider_ft_emulator.progress`) has the id of its step. At the same instant a
    metrics event comes before a status event, so the list only ever grows at its newest end.
    """
    lines: list[tuple[float, str, str]] = [(job.created_at, "info", f"Created fine-tuning job: {job.id}")]
    for at, status in job.history:
        lines.append((at, "error" if status == WORDS_OA.failed else "info", _event_message(job, status)))
    if job.status == WORDS_OA.succeeded and job.finished_at is not None:
        lines.append((job.finished_at, "info", f"New fine-tuned model created: {fine_tuned_model(job)}"))
        lines.append((job.finished_at, "info", "The job has successfully completed"))
    keyed = [((at, 1, index), _event(job, index, at, level, text)) for index, (at, level, text) in enumerate(lines)]
    keyed += [((m.at, 0, m.index), _metrics_event(job, m)) for m in milestones(job, now)]
    return [event for _, event in sorted(keyed, key=lambda pair: pair[0], reverse=True)]


def _event(job: Job, index: int, at: float, level: str, message: str) -> dict[str, Any]:
    return {
        "object": "fine_tuning.job.event",
        "id": f"ftevent-{_stable_token(job.id, 'event', str(index))}",
        "created_at": int(at),
        "level": level,
        "message": message,
        "data": {},
        "type": "message",
    }


def _metrics_event(job: Job, milestone: Milestone) -> dict[str, Any]:
    """A ``metrics`` event: its ``data`` uses the names of the spec's checkpoint ``metrics`` (docs/emulator.md)."""
    loss, valid_loss = milestone.train_loss, milestone.valid_loss
    data: dict[str, Any] = {
        "step": milestone.step,
        "total_steps": TOTAL_STEPS,
        "train_loss": loss,
        "train_mean_token_accuracy": milestone.train_mean_token_accuracy,
    }
    message = f"Step {milestone.step}/{TOTAL_STEPS}: training loss={loss}"
    if valid_loss is not None:
        data["valid_loss"] = valid_loss
        message += f", validation loss={valid_loss}"
    return {
        "object": "fine_tuning.job.event",
        "id": f"ftevent-{_stable_token(job.id, 'metrics', str(milestone.step))}",
        "created_at": int(milestone.at),
        "level": "info",
        "message": message,
        "data": data,
        "type": "metrics",
    }


def _event_message(job: Job, status: str) -> str:
    messages = {
        "validating_files": f"Validating training file: {job.spec.get('training_file')}",
        "queued": "Files validated, moving job to queued state",
        "running": "Fine-tuning job started",
        "succeeded": "Fine-tuning job succeeded",
        "failed": job.error or FAILED_MESSAGE,
        "cancelled": "Fine-tuning job cancelled",
        "paused": "Fine-tuning job paused",
        "pending": "Job enqueued. Waiting for jobs ahead to complete.",
        "resuming": "Fine-tuning job resuming",
    }
    return messages.get(status, f"Fine-tuning job status: {status}")


def checkpoints(job: Job) -> list[dict[str, Any]]:
    """Checkpoints of a succeeded job (none otherwise), newest first."""
    if job.status != WORDS_OA.succeeded or job.finished_at is None:
        return []
    model = fine_tuned_model(job)
    span = job.finished_at - job.created_at
    items = []
    for index, step in enumerate(CHECKPOINT_STEPS, start=1):
        loss = round(1.0 / (index + 1), 4)
        items.append(
            {
                "object": "fine_tuning.job.checkpoint",
                "id": f"ftckpt_{_stable_token(job.id, 'ckpt', str(step))}",
                "created_at": int(job.created_at + span * index / len(CHECKPOINT_STEPS)),
                "fine_tuned_model_checkpoint": f"{model}:ckpt-step-{step}",
                "step_number": step,
                "metrics": {"step": float(step), "train_loss": loss, "train_mean_token_accuracy": 1.0 - loss},
                "fine_tuning_job_id": job.id,
            }
        )
    return list(reversed(items))


def _not_found(job_id: str) -> ApiFailure:
    return ApiFailure(404, "fine_tune_not_found", f"Could not find fine tune: {job_id}", param="fine_tuning_job_id")


def _invalid(message: str, param: str | None = None, code: str | None = None) -> ApiFailure:
    return ApiFailure(400, code, message, param=param)


def _job_or_404(state: EmulatorState, job_id: str, vendor: Vendor = "openai") -> Job:
    job = state.store.get(vendor, job_id)
    if job is None:
        raise _not_found(job_id)
    return job


def page_after(items: Sequence[T], after: str | None, limit: int, key: Callable[[T], str]) -> tuple[list[T], bool]:
    """Items strictly after the one whose id is ``after``, at most ``limit``, and whether more remain."""
    start = 0
    if after:
        ids = [key(item) for item in items]
        start = ids.index(after) + 1 if after in ids else len(ids)
    rest = list(items[start:])
    return rest[:limit], len(rest) > limit


def _metadata_filter(request: Request) -> Callable[[Job], bool]:
    wanted: dict[str, str] = {}
    want_none = False
    for key, value in request.query_params.multi_items():
        if key.startswith("metadata[") and key.endswith("]"):
            wanted[key[len("metadata[") : -1]] = value
        elif key == "metadata" and value == "null":
            want_none = True
    if want_none:
        return lambda job: not job.metadata
    return lambda job: all((job.metadata or {}).get(k) == v for k, v in wanted.items())


def _require_str(body: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise _invalid(f"Missing required parameter: '{name}'.", name, "missing_required_parameter")
        return None
    if not isinstance(value, str) or not value:
        raise _invalid(f"Invalid type for '{name}': expected a string.", name, "invalid_type")
    return value


def _check_metadata(value: Any) -> dict[str, str] | None:
    """At most :data:`MAX_METADATA_PAIRS` string values, keys and values within their lengths, or a 400."""
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise _invalid("Invalid 'metadata': expected an object of at most 16 string values.", "metadata")
    if len(value) > MAX_METADATA_PAIRS:
        message = (
            f"Invalid 'metadata': too many properties. Expected an object with at most {MAX_METADATA_PAIRS} "
            f"properties, but got an object with {len(value)} properties instead."
        )
        raise _invalid(message, "metadata", "object_above_max_properties")
    for key, text in value.items():
        if len(key) > MAX_METADATA_KEY:
            message = (
                f"Invalid 'metadata': key too long. Expected a key with maximum length {MAX_METADATA_KEY}, "
                f"but got a key with length {len(key)} instead."
            )
            raise _invalid(message, "metadata", "string_above_max_length")
        if len(text) > MAX_METADATA_VALUE:
            message = (
                f"Invalid 'metadata.{key}': string too long. Expected a string with maximum length "
                f"{MAX_METADATA_VALUE}, but got a string with length {len(text)} instead."
            )
            raise _invalid(message, f"metadata.{key}", "string_above_max_length")
    return dict(value)


def _check_files(state: EmulatorState, spec: dict[str, Any], vendor: Vendor) -> None:
    """The training and validation files must be uploaded ``fine-tune`` files (unless files are not checked)."""
    if not state.settings.check_files:
        return
    for param in ("training_file", "validation_file"):
        file_id = spec.get(param)
        if file_id is None:
            continue
        found = state.files.get(vendor, file_id)
        if found is None or found.purpose != FINE_TUNE:
            raise _invalid(f"invalid {param}: {file_id}", param, f"invalid_{param}")


def _check_method(body: dict[str, Any]) -> dict[str, Any]:
    method = body.get("method")
    if method is None:
        hyper = body.get("hyperparameters")
        return supervised_method(hyper if isinstance(hyper, dict) else None)
    if not isinstance(method, dict) or method.get("type") not in METHODS:
        raise _invalid("Invalid 'method.type': expected one of supervised, dpo, reinforcement.", "method.type")
    return method


def _create_spec(body: dict[str, Any], job_id: str, vendor: Vendor) -> dict[str, Any]:
    suffix = _require_str(body, "suffix", required=False)
    longest = AZURE_MAX_SUFFIX if vendor == "azure" else 64
    if suffix is not None and len(suffix) > longest:
        raise _invalid(f"Invalid 'suffix': string too long. Expected at most {longest} characters.", "suffix")
    seed_value = body.get("seed")
    if seed_value is not None and (not isinstance(seed_value, int) or isinstance(seed_value, bool)):
        raise _invalid("Invalid type for 'seed': expected an integer.", "seed", "invalid_type")
    return {
        "training_file": _require_str(body, "training_file", required=True),
        "validation_file": _require_str(body, "validation_file", required=False),
        "suffix": suffix,
        "seed": seed_value if seed_value is not None else zlib.crc32(job_id.encode()) % 2_147_483_647,
        "method": _check_method(body),
        "integrations": body.get("integrations") or [],
    }


@router.post("/fine_tuning/jobs")
async def create_job(request: Request) -> JSONResponse:
    """``POST /fine_tuning/jobs``: the new job starts in ``validating_files``.

    Its training (and validation) file must have been uploaded with purpose ``fine-tune`` (unless the emulator
    was started with ``check_files=False``); metadata is held to OpenAI's limits, and the account to its job limit
    (``limits``).
    """
    state, vendor = state_of(request), vendor_of(request)
    body = body_json(await request.body(), "openai")
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.")
    model = _require_str(body, "model", required=True) or DEFAULT_MODEL
    job_id = new_job_id()
    spec = _create_spec(body, job_id, vendor)
    metadata = _check_metadata(body.get("metadata"))
    _check_files(state, spec, vendor)
    with state.store.lock:
        refuse_past_limit(state, vendor, model)
        job = new_job(
            state.store,
            vendor,
            job_id,
            status=FIRST_STATUS[vendor],
            model=model,
            metadata=metadata,
            spec=spec,
            runs_for=state.api_run_seconds,
        )
    return JSONResponse(serialize(job, state), status_code=201 if vendor == "azure" else 200)


@router.get("/fine_tuning/jobs")
async def list_jobs(request: Request) -> JSONResponse:
    """``GET /fine_tuning/jobs?after=&limit=&metadata[k]=v``: newest first."""
    state = state_of(request)
    limit = int_param(request, "limit", 20, 1, 100, "openai")
    keep = _metadata_filter(request)
    jobs = [job for job in state.store.all(vendor_of(request)) if keep(job)]
    page, has_more = page_after(jobs, request.query_params.get("after"), limit, lambda job: job.id)
    data = [serialize(job, state) for job in page]
    return JSONResponse({"object": "list", "data": data, "has_more": has_more})


@router.get("/fine_tuning/jobs/{job_id}")
async def retrieve_job(request: Request, job_id: str) -> JSONResponse:
    """``GET /fine_tuning/jobs/{id}``."""
    state = state_of(request)
    return JSONResponse(serialize(_job_or_404(state, job_id, vendor_of(request)), state))


@router.post("/fine_tuning/jobs/{job_id}/cancel")
async def cancel_job(request: Request, job_id: str) -> JSONResponse:
    """``POST /fine_tuning/jobs/{id}/cancel``: a job still in flight becomes ``cancelled`` at once."""
    state = state_of(request)
    outcome, job = state.store.cancel(vendor_of(request), job_id)
    return _transition_answer(state, job_id, outcome, job, "cancel")


@router.post("/fine_tuning/jobs/{job_id}/pause")
async def pause_job(request: Request, job_id: str) -> JSONResponse:
    """``POST /fine_tuning/jobs/{id}/pause``: a queued or running job becomes ``paused``."""
    state, vendor = state_of(request), _pausing_vendor(request)
    outcome, job = state.store.pause(vendor, job_id)
    return _transition_answer(state, job_id, outcome, job, "pause")


@router.post("/fine_tuning/jobs/{job_id}/resume")
async def resume_job(request: Request, job_id: str) -> JSONResponse:
    """``POST /fine_tuning/jobs/{id}/resume``: a paused job goes back to ``queued`` (Azure: ``resuming``), and runs
    again after the queue's wait."""
    state, vendor = state_of(request), _pausing_vendor(request)
    outcome, job = state.store.resume(vendor, job_id, RESUMED_STATUS[vendor])
    return _transition_answer(state, job_id, outcome, job, "resume")


def _pausing_vendor(request: Request) -> Vendor:
    """The vendor of a pause or resume request; Azure's gateway does not know the path before api-version
    2025-04-01-preview (``FineTuning_Pause`` and ``FineTuning_Resume`` appear there; its v1 API has them too)."""
    vendor = vendor_of(request)
    if vendor == "azure" and not _azure_pauses(request):
        raise not_found_route("azure", request.method, request.url.path)
    return vendor


def _azure_pauses(request: Request) -> bool:
    if request.url.path.startswith(f"{MOUNTS['azure']}/v1/"):
        return True
    version = request.query_params.get("api-version", "")
    return version.endswith("-preview") and version[: len(AZURE_PAUSE_SINCE)] >= AZURE_PAUSE_SINCE


def _transition_answer(state: EmulatorState, job_id: str, outcome: Outcome, job: Job | None, verb: str) -> JSONResponse:
    if outcome is Outcome.NOT_FOUND or job is None:
        raise _not_found(job_id)
    if outcome is not Outcome.OK:
        raise _invalid(f"Cannot {verb} fine-tuning job {job_id}: its status is {job.status}.", None, "invalid_state")
    return JSONResponse(serialize(job, state))


@router.get("/fine_tuning/jobs/{job_id}/events")
async def list_events(request: Request, job_id: str) -> JSONResponse:
    """``GET /fine_tuning/jobs/{id}/events?after=&limit=``: OpenAI's newest first, Azure's oldest first (every
    ``FineTuning_GetEvents`` example); ``after`` is the last event of the page before, in that order."""
    limit = int_param(request, "limit", 20, 1, 100, "openai")
    state, vendor = state_of(request), vendor_of(request)
    job = _job_or_404(state, job_id, vendor)
    log = events(job, state.store.clock.now())
    if vendor == "azure":
        log.reverse()
    data, has_more = page_after(log, request.query_params.get("after"), limit, lambda item: str(item["id"]))
    return JSONResponse({"object": "list", "data": data, "has_more": has_more})


@router.get("/fine_tuning/jobs/{job_id}/checkpoints")
async def list_checkpoints(request: Request, job_id: str) -> JSONResponse:
    """``GET /fine_tuning/jobs/{id}/checkpoints?after=&limit=``."""
    limit = int_param(request, "limit", 10, 1, 100, "openai")
    job = _job_or_404(state_of(request), job_id, vendor_of(request))
    data, has_more = page_after(
        checkpoints(job), request.query_params.get("after"), limit, lambda item: str(item["id"])
    )
    first = data[0]["id"] if data else None
    last = data[-1]["id"] if data else None
    return JSONResponse({"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": has_more})

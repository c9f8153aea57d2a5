"""DashScope files: the ``/files`` routes under ``/dashscope/api/v1`` (upload, list, get, delete).

These answer in a ``data`` envelope, not ``output``. One upload can carry several files (repeated ``files`` parts,
``descriptions`` aligned by position); a file that fails the JSONL check is listed in ``failed_uploads`` of an
HTTP 200, not answered as an error. A missing file is a 400 ``InvalidParameter`` "File not found.", not a 404.
File objects follow the SDK 2.0.2 ``File`` model (``file_id``, ``name``, ``purpose``, ``size``, ``upload_time``)
plus the ``id`` and ``description`` of the SDK's mock server, and ``gmt_create``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import FormData, UploadFile

from airflow_provider_ft_emulator.dashscope_api import format_time
from airflow_provider_ft_emulator.errors import ApiFailure
from airflow_provider_ft_emulator.factory import random_token
from airflow_provider_ft_emulator.files import FINE_TUNE, Digest, StoredFile, digest_upload, stored_file
from airflow_provider_ft_emulator.routing import int_param, request_id, state_of
from airflow_provider_ft_emulator.state import EmulatorState

#: The most files one upload may carry.
MAX_FILES_PER_UPLOAD = 32
FAILED_CODE = "InvalidFileFormat"

router = APIRouter()


def new_file_id() -> str:
    """``file-ft-`` followed by 32 hex digits."""
    return f"file-ft-{random_token(32, '0123456789abcdef')}"


def serialize(stored: StoredFile, zone: str) -> dict[str, Any]:
    """One file, as ``data`` of get and each element of ``data.files`` of list carry it."""
    uploaded = format_time(stored.created_at, zone)
    return {
        "id": stored.seq,
        "file_id": stored.id,
        "name": stored.filename,
        "description": stored.description or "",
        "purpose": stored.purpose,
        "size": stored.bytes,
        "upload_time": uploaded,
        "gmt_create": uploaded,
    }


def keep(state: EmulatorState, name: str, found: Digest, purpose: str, description: str | None) -> StoredFile:
    """Store an upload's metadata under a new id."""
    return stored_file(
        state.files,
        state.store.clock,
        "dashscope",
        new_file_id(),
        name,
        found,
        purpose=purpose,
        description=description,
    )


def _ok(request: Request, data: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"request_id": request_id(request), "data": data})


def _invalid(message: str) -> ApiFailure:
    return ApiFailure(400, "InvalidParameter", message)


def _file_not_found() -> ApiFailure:
    return _invalid("File not found.")


def _uploads(form: FormData) -> list[UploadFile]:
    parts = form.getlist("files")
    if not parts:
        raise _invalid("Missing files")
    if not all(isinstance(part, UploadFile) and part.filename for part in parts):
        raise _invalid("Every files part must be a file upload with a file name")
    return [part for part in parts if isinstance(part, UploadFile)]


def _descriptions(form: FormData, count: int) -> list[str | None]:
    given = [value if isinstance(value, str) else None for value in form.getlist("descriptions")]
    return [*given[:count], *([None] * max(count - len(given), 0))]


async def _upload_one(
    state: EmulatorState, upload: UploadFile, purpose: str, description: str | None
) -> tuple[str, dict[str, str]]:
    """``("uploaded", {file_id, name})`` or ``("failed", {name, code, message})``."""
    name = upload.filename or ""
    found = await digest_upload(upload, check=purpose == FINE_TUNE)
    if found.problem is not None:
        message = f"The file {name} is not in valid jsonl format: {found.problem}."
        return "failed", {"name": name, "code": FAILED_CODE, "message": message}
    stored = keep(state, name, found, purpose, description)
    return "uploaded", {"file_id": stored.id, "name": stored.filename}


@router.post("/files")
async def upload_files(request: Request) -> JSONResponse:
    """``POST /files`` (multipart ``files`` repeated, ``descriptions``, ``purpose`` default ``fine-tune``)."""
    state = state_of(request)
    results: dict[str, list[dict[str, str]]] = {"uploaded": [], "failed": []}
    async with request.form(max_files=MAX_FILES_PER_UPLOAD, max_fields=2 * MAX_FILES_PER_UPLOAD + 8) as form:
        uploads = _uploads(form)
        purpose = form.get("purpose")
        chosen = purpose if isinstance(purpose, str) and purpose else FINE_TUNE
        for upload, description in zip(uploads, _descriptions(form, len(uploads)), strict=True):
            outcome, item = await _upload_one(state, upload, chosen, description)
            results[outcome].append(item)
    return _ok(request, {"uploaded_files": results["uploaded"], "failed_uploads": results["failed"]})


@router.get("/files")
async def list_files(request: Request) -> JSONResponse:
    """``GET /files?page_no=&page_size=``: newest first."""
    state = state_of(request)
    page_no = int_param(request, "page_no", 1, 1, None, "dashscope")
    page_size = int_param(request, "page_size", 10, 1, 100, "dashscope")
    files = state.files.all("dashscope")
    page = files[(page_no - 1) * page_size : page_no * page_size]
    zone = state.settings.dashscope_timezone
    data = {
        "total": len(files),
        "page_no": page_no,
        "page_size": page_size,
        "files": [serialize(f, zone) for f in page],
    }
    return _ok(request, data)


@router.get("/files/{file_id}")
async def get_file(request: Request, file_id: str) -> JSONResponse:
    """``GET /files/{id}``."""
    state = state_of(request)
    found = state.files.get("dashscope", file_id)
    if found is None:
        raise _file_not_found()
    return _ok(request, serialize(found, state.settings.dashscope_timezone))


@router.delete("/files/{file_id}")
async def delete_file(request: Request, file_id: str) -> JSONResponse:
    """``DELETE /files/{id}``: ``data`` is ``{"file_id", "deleted": true}``."""
    if state_of(request).files.delete("dashscope", file_id) is None:
        raise _file_not_found()
    return _ok(request, {"file_id": file_id, "deleted": True})

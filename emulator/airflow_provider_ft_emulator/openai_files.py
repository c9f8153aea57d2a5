"""OpenAI files: ``FileObject`` and the ``/files`` routes under ``/openai/v1`` (upload, list, retrieve, delete).

An upload's content is read once as it is spooled (never whole in memory) for its size, SHA-256 and, for purpose
``fine-tune``, the JSONL check; only that metadata is kept.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import FormData, UploadFile

from airflow_provider_ft_emulator.errors import ApiFailure
from airflow_provider_ft_emulator.factory import random_token
from airflow_provider_ft_emulator.files import FINE_TUNE, Digest, StoredFile, digest_upload, stored_file
from airflow_provider_ft_emulator.openai_api import page_after
from airflow_provider_ft_emulator.routing import int_param, state_of, vendor_of
from airflow_provider_ft_emulator.state import EmulatorState
from airflow_provider_ft_emulator.vocabulary import MOUNTS, Vendor

#: The most files one list call returns, and its default.
MAX_LIST_LIMIT = 10_000
ORDERS = ("asc", "desc")

router = APIRouter()


def new_file_id() -> str:
    """``file-`` followed by 24 letters and digits."""
    return f"file-{random_token(24)}"


def serialize(stored: StoredFile) -> dict[str, Any]:
    """The ``file`` object (``FileObject``) as upload, list and retrieve return it: ``expires_at`` and the deprecated
    ``status_details`` are left out, as in the documented examples (the published schema types them as an integer
    and a string, never ``null``)."""
    return {
        "object": "file",
        "id": stored.id,
        "bytes": stored.bytes,
        "created_at": int(stored.created_at),
        "filename": stored.filename,
        "purpose": stored.purpose,
        "status": "processed",
    }


def invalid_format(problem: str) -> ApiFailure:
    """The 400 for an upload with purpose ``fine-tune`` whose content is not fine-tuning JSONL."""
    message = f"Invalid file format for Fine-Tuning API. Must be .jsonl: {problem}."
    return ApiFailure(400, "invalid_file_format", message, param="file")


def keep(state: EmulatorState, filename: str, found: Digest, purpose: str, vendor: Vendor = "openai") -> StoredFile:
    """Store an upload's metadata under a new id (or refuse a bad fine-tuning file with its 400)."""
    if found.problem is not None:
        raise invalid_format(found.problem)
    return stored_file(state.files, state.store.clock, vendor, new_file_id(), filename, found, purpose=purpose)


def _missing(name: str) -> ApiFailure:
    return ApiFailure(400, "missing_required_parameter", f"Missing required parameter: '{name}'.", param=name)


def _not_found(file_id: str) -> ApiFailure:
    return ApiFailure(404, None, f"No such File object: {file_id}", param="id")


def _upload_fields(form: FormData) -> tuple[UploadFile, str]:
    upload = form.get("file")
    if upload is None:
        raise _missing("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise ApiFailure(400, "invalid_type", "Invalid type for 'file': expected a file upload.", param="file")
    purpose = form.get("purpose")
    if not isinstance(purpose, str) or not purpose:
        raise _missing("purpose")
    return upload, purpose


@router.post("/files")
async def upload_file(request: Request) -> JSONResponse:
    """``POST /files`` (multipart ``file``, ``purpose``): the stored ``file`` object, ``processed`` at once."""
    state = state_of(request)
    async with request.form(max_files=4, max_fields=16) as form:
        upload, purpose = _upload_fields(form)
        found = await digest_upload(upload, check=purpose == FINE_TUNE)
        stored = keep(state, upload.filename or "", found, purpose, vendor_of(request))
    return JSONResponse(serialize(stored), status_code=201 if vendor_of(request) == "azure" else 200)


def _order(request: Request) -> str:
    order = request.query_params.get("order") or "desc"
    if order not in ORDERS:
        message = f"Invalid value for 'order': expected one of asc, desc, but got {order!r} instead."
        raise ApiFailure(400, "invalid_value", message, param="order")
    return order


@router.get("/files")
async def list_files(request: Request) -> JSONResponse:
    """``GET /files?purpose=&limit=&order=&after=``: newest first unless ``order=asc``; ``after`` is a file id.

    Azure's dated API answers its ``FileList``, ``{"object": "list", "data": [...]}``: every file, no paging and no
    ``has_more`` (``Files_List`` takes only ``purpose``)."""
    state, vendor = state_of(request), vendor_of(request)
    purpose = request.query_params.get("purpose")
    files = [f for f in state.files.all(vendor) if not purpose or f.purpose == purpose]
    if vendor == "azure" and not request.url.path.startswith(f"{MOUNTS['azure']}/v1/"):
        return JSONResponse({"object": "list", "data": [serialize(f) for f in files]})
    limit = int_param(request, "limit", MAX_LIST_LIMIT, 1, MAX_LIST_LIMIT, "openai")
    order = _order(request)
    if order == "asc":
        files.reverse()
    page, has_more = page_after(files, request.query_params.get("after"), limit, lambda f: f.id)
    data = [serialize(f) for f in page]
    first = data[0]["id"] if data else None
    last = data[-1]["id"] if data else None
    return JSONResponse({"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": has_more})


@router.get("/files/{file_id}")
async def retrieve_file(request: Request, file_id: str) -> JSONResponse:
    """``GET /files/{id}``."""
    found = state_of(request).files.get(vendor_of(request), file_id)
    if found is None:
        raise _not_found(file_id)
    return JSONResponse(serialize(found))


@router.delete("/files/{file_id}")
async def delete_file(request: Request, file_id: str) -> JSONResponse:
    """``DELETE /files/{id}``: ``{"id", "object": "file", "deleted": true}``."""
    if state_of(request).files.delete(vendor_of(request), file_id) is None:
        raise _not_found(file_id)
    return JSONResponse({"id": file_id, "object": "file", "deleted": True})

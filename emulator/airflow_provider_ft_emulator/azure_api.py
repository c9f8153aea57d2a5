"""Azure OpenAI's own route: job deletion (its other routes are OpenAI's, see :mod:`.openai_api`).

``DELETE /fine_tuning/jobs/{id}`` answers ``204`` without a body (Microsoft's authoring spec, ``FineTuning_Delete``);
as with DashScope, only a finished job can be deleted here: one still in flight is refused until cancelled.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from airflow_provider_ft_emulator.errors import ApiFailure
from airflow_provider_ft_emulator.routing import state_of
from airflow_provider_ft_emulator.store import Outcome

router = APIRouter()


@router.delete("/fine_tuning/jobs/{job_id}")
async def delete_job(request: Request, job_id: str) -> Response:
    """``DELETE /fine_tuning/jobs/{id}``: ``204`` for a finished job, ``404`` for an unknown one."""
    outcome, job = state_of(request).store.delete("azure", job_id)
    if outcome is Outcome.NOT_FOUND:
        raise ApiFailure(404, "notFound", f"The specified fine-tuning job '{job_id}' could not be found.")
    if outcome is Outcome.NOT_TERMINAL and job is not None:
        message = f"The fine-tuning job cannot be deleted because it is {job.status}; cancel it first."
        raise ApiFailure(400, "unexpectedEntityState", message)
    return Response(status_code=204)

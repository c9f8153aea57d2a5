"""The Fine-tuning page's FastAPI app, mounted by Airflow's api-server under ``MOUNT`` (``plugin.py``).

Every route but the static files needs a signed-in user, the same way as Airflow's own REST API (its JWT, from the
``Authorization`` header or the UI's session cookie). Who sees and does what: ``views.py``. Pages are rendered on the
server (Jinja, everything escaped); vendor calls go through ``FineTuningHook``, so the API key stays in the
api-server.
"""

# No "from __future__ import annotations": FastAPI reads the routes' annotations, some imported in create_app.

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from airflow_provider_ft.exceptions import FineTuningError, InvalidJobIdError, JobNotFoundError
from airflow_provider_ft.jobs import FineTuningJob, JobStatus
from airflow_provider_ft.ui import catalog, records, views
from airflow_provider_ft.ui.chart import loss_chart_svg
from airflow_provider_ft.ui.plugin import MOUNT
from airflow_provider_ft.ui.provenance import Provenance, named_creator, provenance, tasks_by_identity

#: Seconds between reloads of a job page while its job runs.
REFRESH = 15
_HERE = Path(__file__).parent


def create_app() -> FastAPI:
    """The app: HTML pages under ``/ui``, the same data as JSON under ``/api``, and the pages' CSS and script."""
    from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_connection
    from airflow.api_fastapi.logging.decorators import action_logging

    app = FastAPI(title="Fine-tuning jobs", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    site = _Site()

    @app.get("/ui/jobs", response_class=HTMLResponse)
    def jobs_page(request: Request, user: GetUserDep, filters: Annotated[views.Filters, Depends(_filters)]) -> Any:
        page = site.page(user, filters)
        return site.render(request, "jobs.html", page=page, **_list_context(page))

    @app.get("/api/jobs")
    def jobs_api(user: GetUserDep, filters: Annotated[views.Filters, Depends(_filters)]) -> dict[str, Any]:
        page = site.page(user, filters)
        return {
            "connections": [_summary_json(summary) for summary in page.summaries],
            "jobs": [_row_json(row) for row in page.rows],
            "total": page.total,
            "page": page.filters.page,
            "pages": page.pages,
            "page_size": views.PAGE_SIZE,
        }

    @app.get("/ui/jobs/{connection_id}/{job_id}", response_class=HTMLResponse)
    def job_page(request: Request, user: GetUserDep, connection_id: str, job_id: str) -> Any:
        return site.render_job(request, _permissions(user), connection_id, job_id, embedded=False)

    @app.get("/api/jobs/{connection_id}/{job_id}")
    def job_api(user: GetUserDep, connection_id: str, job_id: str) -> dict[str, Any]:
        detail, row = site.job(_permissions(user), connection_id, job_id)
        return _detail_json(detail, row)

    @app.get("/ui/task-instance/{dag_id}/{run_id}/{task_id}/{map_index}", response_class=HTMLResponse)
    def task_instance_tab(
        request: Request, user: GetUserDep, dag_id: str, run_id: str, task_id: str, map_index: str
    ) -> Any:
        permissions = _permissions(user)
        if dag_id not in permissions.readable_dags:
            raise HTTPException(403, "You may not read this DAG")
        ref = records.task_job_ref(dag_id, run_id, task_id, _map_index(map_index))
        if ref is None:
            message = "This task instance has not started or watched a fine-tuning job."
            return site.render(request, "none.html", message=message)
        # Whoever may read the DAG sees its task's job, as they see the task's log.
        permissions = permissions.with_readable(ref.conn_id)
        return site.render_job(request, permissions, ref.conn_id, ref.job_id, embedded=True)

    for action in catalog.ACTIONS:
        app.post(
            f"/api/jobs/{{connection_id}}/{{job_id}}/{action}",
            dependencies=[
                Depends(requires_access_connection(method="PUT")),
                Depends(action_logging(event=f"fine_tuning_{action}_job")),
            ],
            name=f"{action}_job",
        )(_acting(site, action))
    return app


class _Site:
    """What the routes share: the listings' cache and the templates."""

    def __init__(self) -> None:
        self.catalog = catalog.Catalog(_hook)
        self.templates = Environment(
            loader=FileSystemLoader(_HERE / "templates"), autoescape=select_autoescape(default=True)
        )
        self.templates.globals.update(when=_when, runtime=_runtime, creator_link=views.creator_link)

    def render(self, request: Request, template: str, **context: Any) -> HTMLResponse:
        own = request.scope.get("root_path", "")
        context.setdefault("refresh", None)
        html = self.templates.get_template(template).render(
            own=own, api=f"{own}/api", airflow=own.removesuffix(MOUNT), **context
        )
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    def page(self, user: Any, filters: views.Filters) -> views.Page:
        permissions = _permissions(user)
        connections = records.fine_tuning_connections(_conn_types())
        if filters.conn_id is not None:
            connections = [row for row in connections if row.conn_id == filters.conn_id]
        if not permissions.readable_connections and not permissions.readable_dags:
            connections = []
        listings = self.catalog.listings(row.conn_id for row in connections)
        tasks = _creators([job for listing in listings for job in listing.jobs], {x.namespace for x in listings})
        rows, summaries = views.job_rows(listings, tasks, records.watched_jobs(), permissions)
        return views.page_of(rows, summaries, filters, datetime.now(UTC))

    def job(self, permissions: views.Permissions, conn_id: str, job_id: str) -> tuple[catalog.JobDetail, views.JobRow]:
        """The job with its log, and what the page shows of it; 403 unless ``permissions`` read the connection or
        the DAG that created the job, 404 for no such job or connection, 400 for a malformed id, 502 for a vendor
        that failed."""
        hook = _known_hook(conn_id)
        try:
            detail = catalog.job_detail(hook, job_id)
        except FineTuningError as error:
            raise _http_error(error) from None
        finally:
            hook.close()
        refs = {ref.job_id for ref in records.watched_jobs() if ref.conn_id == conn_id}
        origin = provenance(detail.job, detail.conn.namespace, _creators([detail.job], {detail.conn.namespace}), refs)
        if not permissions.sees(conn_id, origin.creator):
            raise HTTPException(403, "You may not read this connection nor the DAG that created this job")
        return detail, views.job_row(detail.conn, detail.job, origin, permissions)

    def render_job(
        self, request: Request, permissions: views.Permissions, conn_id: str, job_id: str, *, embedded: bool
    ) -> HTMLResponse:
        detail, row = self.job(permissions, conn_id, job_id)
        return self.render(
            request,
            "job.html",
            detail=detail,
            origin_of=row.origin,
            orphan=row.orphan,
            cost=row.cost,
            can_act=row.can_act,
            chart=Markup(loss_chart_svg(detail.curve)),  # numbers only: chart.py formats each one
            embedded=embedded,
            refresh=None if detail.job.is_terminal else REFRESH,
        )


def _acting(site: _Site, action: catalog.Action) -> Any:
    def act(request: Request, connection_id: str, job_id: str) -> dict[str, Any]:
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise HTTPException(415, "Send the action as JSON (Content-Type: application/json)")
        hook = _known_hook(connection_id)
        try:
            job = catalog.act(hook, job_id, action)
        except FineTuningError as error:
            raise _http_error(error) from None
        finally:
            hook.close()
            site.catalog.forget(connection_id)
        return {"action": action, "job": job.to_dict()}

    act.__name__ = f"{action}_job"
    return act


def _filters(
    conn_id: Annotated[str | None, Query(max_length=250)] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    age: Annotated[str | None, Query(max_length=10)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> views.Filters:
    return views.Filters.parse(conn_id, status, age, page)


def _map_index(text: str) -> int:
    """The tab's map index: Airflow's UI leaves ``{MAP_INDEX}`` as it is for a task that is not mapped."""
    try:
        return int(text)
    except ValueError:
        return -1


def _permissions(user: Any) -> views.Permissions:
    from airflow.api_fastapi.app import get_auth_manager

    manager = get_auth_manager()
    return views.Permissions(
        readable_connections=frozenset(manager.get_authorized_connections(user=user, method="GET")),
        editable_connections=frozenset(manager.get_authorized_connections(user=user, method="PUT")),
        readable_dags=frozenset(manager.get_authorized_dag_ids(user=user, method="GET")),
    )


def _conn_types() -> list[str]:
    from airflow_provider_ft.vendors import DIALECTS_BY_CONN_TYPE

    return sorted(DIALECTS_BY_CONN_TYPE)


def _hook(conn_id: str) -> Any:
    from airflow_provider_ft.ui.server_hook import ServerSideHook

    return ServerSideHook(conn_id)


def _known_hook(conn_id: str) -> Any:
    """The hook of one of our connections; 404 for any other id (the page never reads another connection)."""
    if conn_id not in {row.conn_id for row in records.fine_tuning_connections(_conn_types())}:
        raise HTTPException(404, "No fine-tuning connection with this id")
    return _hook(conn_id)


def _http_error(error: FineTuningError) -> HTTPException:
    if isinstance(error, InvalidJobIdError):
        return HTTPException(400, catalog.describe_error(error))
    if isinstance(error, JobNotFoundError):
        return HTTPException(404, catalog.describe_error(error))
    return HTTPException(502, catalog.describe_error(error))


def _creators(jobs: list[FineTuningJob], namespaces: set[str]) -> dict[str, Any]:
    """The task instances that may have created ``jobs``, by the key and the tag of their identity."""
    created = [job.created_at for job in jobs if job.created_at is not None]
    since = min(created) - timedelta(days=1) if created else None
    named = [creator for job in jobs if (creator := named_creator(job)) is not None]
    return tasks_by_identity(records.creating_task_instances(since, named), namespaces or {""})


def _list_context(page: views.Page) -> dict[str, Any]:
    def query(number: int) -> str:
        filters = page.filters
        chosen = {"conn_id": filters.conn_id, "status": filters.status, "age": filters.age, "page": number}
        return urlencode({key: value for key, value in chosen.items() if value})

    return {
        "status_choices": [views.ACTIVE, views.ORPHANS, *(status.value for status in JobStatus)],
        "age_choices": list(views.AGES),
        "prices": {s.listing.conn_id: s.listing.price for s in page.summaries},
        "pausable": {s.listing.conn_id: s.listing.pausable for s in page.summaries},
        "query": query,
    }


def _summary_json(summary: views.ConnectionSummary) -> dict[str, Any]:
    listing = summary.listing
    return {
        "conn_id": listing.conn_id,
        "vendor": listing.vendor,
        "jobs": summary.shown,
        "more": listing.more,
        "orphans": summary.orphans,
        "cost": summary.cost,
        "cost_unreported": summary.unpriced,
        "currency": listing.price.currency if listing.price is not None else None,
        "error": listing.error,
        "read_at": listing.read_at.isoformat(),
    }


def _origin_json(origin: Provenance) -> dict[str, Any]:
    creator = origin.creator
    return {
        "origin": origin.origin.value,
        "watched": origin.watched,
        "creator": None
        if creator is None
        else {
            "dag_id": creator.dag_id,
            "task_id": creator.task_id,
            "run_id": creator.run_id,
            "map_index": creator.map_index,
            "state": creator.state,
        },
    }


def _row_json(row: views.JobRow) -> dict[str, Any]:
    return {
        "conn_id": row.conn_id,
        "vendor": row.vendor,
        "job": row.job.to_dict(),
        **_origin_json(row.origin),
        "orphan": row.orphan,
        "cost": row.cost,
        "can_act": row.can_act,
    }


def _detail_json(detail: catalog.JobDetail, row: views.JobRow) -> dict[str, Any]:
    return {
        **_row_json(row),
        "loss": [
            {"step": point.step, "train_loss": point.train_loss, "valid_loss": point.valid_loss}
            for point in detail.curve
        ],
        "events": [
            {"created_at": e.created_at.isoformat() if e.created_at else None, "level": e.level, "message": e.message}
            for e in detail.events
        ],
        "events_error": detail.events_error,
    }


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment is not None else ""


def _runtime(job: FineTuningJob) -> str:
    if job.created_at is None:
        return ""
    end = job.finished_at or (None if job.is_terminal else datetime.now(UTC))
    if end is None:
        return ""
    seconds = max(0, round((end - job.created_at).total_seconds()))
    return str(timedelta(seconds=seconds))

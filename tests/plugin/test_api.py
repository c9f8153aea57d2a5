"""The Fine-tuning page's app inside Airflow's real api-server app (``create_app``), with Airflow's SimpleAuthManager
and JWTs, connections in the metadata database and the emulator over loopback.

Real task instances come from a DAG run (``dag.test()``) whose create task starts a job and returns at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import airflow
import pytest

from airflow_provider_ft.identity import TaskIdentity
from airflow_provider_ft.ui.plugin import _supports_external_views
from airflow_provider_ft_emulator import FineTuningEmulator
from tests.conftest import API_KEY, CONN_TYPES, FAST_RETRIES, seed_job_of
from tests.operators.test_create import MODELS

pytestmark = pytest.mark.skipif(
    not _supports_external_views(airflow.__version__), reason="external views arrived in Airflow 3.1"
)

DAG_FILE = Path(__file__).resolve().parent / "dags" / "ft_plugin_create.py"
DAG_ID = "ft_test_plugin_create"
USERS = {"admin": "admin", "viewer": "viewer", "op": "op"}
CONN_IDS = {vendor: f"page_{vendor}" for vendor in CONN_TYPES}
PRICE = 8.0  # per million trained tokens, on the OpenAI connection only


@pytest.fixture(scope="module")
def users() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", ",".join(f"{u}:{r}" for u, r in USERS.items()))
        patch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
        yield


@pytest.fixture(scope="module")
def client(users: None, airflow_db: Path) -> Iterator[Any]:
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from fastapi.testclient import TestClient

    purge_cached_app()
    with TestClient(create_app("core")) as test_client:
        yield test_client
    purge_cached_app()


@pytest.fixture(autouse=True)
def fresh_listings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each request lists afresh (the emulator is emptied between tests; the app lives for the module)."""
    from airflow_provider_ft.ui import catalog

    monkeypatch.setattr(catalog, "FRESH_FOR", 0.0)


def token(role: str) -> dict[str, str]:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    jwt = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=role, role=role))
    return {"Authorization": f"Bearer {jwt}"}


@pytest.fixture
def stored_connections(emulator: FineTuningEmulator, airflow_db: Path) -> Iterator[dict[str, str]]:
    """One connection of each vendor in the metadata database (the page lists those), pointing at the emulator."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        for vendor, conn_id in CONN_IDS.items():
            extra: dict[str, Any] = dict(FAST_RETRIES)
            if vendor == "openai":
                extra.update(price_per_million_tokens=PRICE, currency="USD")
            session.add(
                Connection(
                    conn_id=conn_id,
                    conn_type=CONN_TYPES[vendor],
                    host=emulator.url(vendor),
                    password=API_KEY,
                    extra=json.dumps(extra),
                )
            )
    yield CONN_IDS
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id.in_(list(CONN_IDS.values()))).delete()


@pytest.fixture
def created(
    emulator: FineTuningEmulator, stored_connections: dict[str, str], run_dag: Callable[..., Any]
) -> dict[str, tuple[str, TaskIdentity]]:
    """For OpenAI and DashScope: a DAG run whose create task started a job and returned (the job still runs)."""
    made = {}
    for vendor in ("openai", "dashscope"):
        file_id = emulator.seed_file(vendor, "train.jsonl", b'{"messages": [{"role": "user", "content": "hi"}]}\n')
        conf = {"conn_id": stored_connections[vendor], "model": MODELS[vendor], "training_file": file_id}
        run = run_dag(DAG_FILE, DAG_ID, run_conf=conf)
        (job,) = [job for job in emulator.jobs(vendor) if job.get("status") not in ("succeeded", "SUCCEEDED")][-1:]
        job_id = str(job.get("id") or job.get("job_id"))
        made[vendor] = (job_id, TaskIdentity(DAG_ID, "train", run.run_id, -1, ""))
    return made


def set_state(identity: TaskIdentity, state: str | None) -> None:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(TaskInstance).filter_by(
            dag_id=identity.dag_id, task_id=identity.task_id, run_id=identity.run_id
        ).update({"state": state})


ROUTES = [
    ("GET", "/fine-tuning/ui/jobs"),
    ("GET", "/fine-tuning/api/jobs"),
    ("GET", "/fine-tuning/ui/jobs/page_openai/ftjob-1"),
    ("GET", "/fine-tuning/api/jobs/page_openai/ftjob-1"),
    ("GET", "/fine-tuning/ui/task-instance/d/r/t/-1"),
    ("POST", "/fine-tuning/api/jobs/page_openai/ftjob-1/cancel"),
    ("POST", "/fine-tuning/api/jobs/page_openai/ftjob-1/pause"),
    ("POST", "/fine-tuning/api/jobs/page_openai/ftjob-1/resume"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_every_route_needs_a_signed_in_user(client: Any, emulator: FineTuningEmulator, method: str, path: str) -> None:
    answer = client.request(method, path, json={})
    assert answer.status_code == 401, answer.text
    forged = client.request(method, path, json={}, headers={"Authorization": "Bearer not-a-jwt"})
    assert forged.status_code in (401, 403)
    assert emulator.requests == [], "nothing reaches a vendor before the user is known"


def test_the_static_files_need_no_user(client: Any) -> None:
    assert client.get("/fine-tuning/static/page.css").status_code == 200


def test_admin_sees_every_job_with_its_dag_the_orphan_and_the_cost(
    client: Any, emulator: FineTuningEmulator, created: dict[str, tuple[str, TaskIdentity]]
) -> None:
    openai_job, identity = created["openai"]
    other = seed_job_of(emulator, "openai", TaskIdentity("elsewhere", "train", "r1", -1, "another-airflow"))
    by_hand = emulator.seed_job("together")

    listing = client.get("/fine-tuning/api/jobs", headers=token("admin")).json()

    rows = {row["job"]["id"]: row for row in listing["jobs"]}
    assert {openai_job, created["dashscope"][0], other, by_hand} <= set(rows)
    mine = rows[openai_job]
    assert mine["origin"] == "task"
    assert mine["creator"] == {
        "dag_id": DAG_ID,
        "task_id": "train",
        "run_id": identity.run_id,
        "map_index": -1,
        "state": "success",
    }
    assert mine["orphan"] is True, "its creating task ended (returned at once) and nothing waits on the job"
    assert rows[created["dashscope"][0]]["origin"] == "task", "found by its job_name tag"
    assert rows[other]["origin"] == "elsewhere"
    assert rows[other]["orphan"] is False
    assert rows[by_hand]["origin"] == "none"
    assert rows[by_hand]["orphan"] is False
    assert mine["can_act"] is True
    connections = {c["conn_id"]: c for c in listing["connections"]}
    assert set(connections) == set(CONN_IDS.values())
    assert connections["page_openai"]["currency"] == "USD"
    assert connections["page_dashscope"]["cost"] is None, "no price on that connection"


def test_a_live_creator_makes_no_orphan(client: Any, created: dict[str, tuple[str, TaskIdentity]]) -> None:
    job_id, identity = created["openai"]
    for state, orphan in (("running", False), ("deferred", False), ("failed", True), (None, True)):
        set_state(identity, state)
        rows = {r["job"]["id"]: r for r in client.get("/fine-tuning/api/jobs", headers=token("admin")).json()["jobs"]}
        assert rows[job_id]["orphan"] is orphan, state


def test_no_answer_carries_the_api_key(client: Any, created: dict[str, tuple[str, TaskIdentity]]) -> None:
    job_id, identity = created["openai"]
    pages = [
        "/fine-tuning/ui/jobs",
        "/fine-tuning/api/jobs",
        f"/fine-tuning/ui/jobs/page_openai/{job_id}",
        f"/fine-tuning/api/jobs/page_openai/{job_id}",
        f"/fine-tuning/ui/task-instance/{DAG_ID}/{identity.run_id}/train/-1",
    ]
    for path in pages:
        answer = client.get(path, headers=token("admin"))
        assert answer.status_code == 200, (path, answer.text)
        assert API_KEY not in answer.text, path
        assert "sk-test" not in answer.text, path


def test_a_viewer_sees_the_jobs_of_dags_they_read_and_may_not_act(
    client: Any, emulator: FineTuningEmulator, created: dict[str, tuple[str, TaskIdentity]]
) -> None:
    job_id, _ = created["openai"]
    by_hand = emulator.seed_job("openai")
    emulator.clear_requests()

    listing = client.get("/fine-tuning/api/jobs", headers=token("viewer")).json()
    page = client.get("/fine-tuning/ui/jobs", headers=token("viewer")).text
    refused = client.post(f"/fine-tuning/api/jobs/page_openai/{job_id}/cancel", json={}, headers=token("viewer"))

    ids = {row["job"]["id"] for row in listing["jobs"]}
    assert job_id in ids, "a viewer reads the DAG that created it"
    assert by_hand not in ids, "a viewer may not read the connection: jobs of no DAG of theirs stay hidden"
    assert all(row["can_act"] is False for row in listing["jobs"])
    assert 'data-testid="cancel-button"' not in page
    assert refused.status_code == 403
    assert not [r for r in emulator.requests if r.method == "POST" and r.path.endswith("/cancel")]


def test_an_admin_cancels_once_and_the_audit_log_says_who(
    client: Any, emulator: FineTuningEmulator, created: dict[str, tuple[str, TaskIdentity]]
) -> None:
    from airflow.models import Log
    from airflow.utils.session import create_session

    job_id, _ = created["openai"]
    emulator.clear_requests()

    answer = client.post(f"/fine-tuning/api/jobs/page_openai/{job_id}/cancel", json={}, headers=token("admin"))

    assert answer.status_code == 200, answer.text
    assert answer.json()["job"]["status"] in ("CANCELLED", "CANCELLING")
    cancels = [r for r in emulator.requests if r.method == "POST" and r.path.endswith(f"{job_id}/cancel")]
    assert len(cancels) == 1
    with create_session() as session:
        entry = session.query(Log).filter(Log.event == "fine_tuning_cancel_job").order_by(Log.id.desc()).first()
        assert entry is not None
        assert entry.owner == "admin"
        assert json.loads(entry.extra)["job_id"] == job_id


def test_an_action_must_come_as_json(
    client: Any, emulator: FineTuningEmulator, created: dict[str, tuple[str, TaskIdentity]]
) -> None:
    job_id, _ = created["openai"]
    emulator.clear_requests()
    form = client.post(f"/fine-tuning/api/jobs/page_openai/{job_id}/cancel", data={"x": "1"}, headers=token("admin"))
    assert form.status_code == 415
    assert not [r for r in emulator.requests if r.method == "POST"]


def test_the_job_page_draws_the_loss_and_the_tab_finds_the_task_s_job(
    client: Any, emulator: FineTuningEmulator, created: dict[str, tuple[str, TaskIdentity]]
) -> None:
    job_id, identity = created["openai"]
    detail = client.get(f"/fine-tuning/api/jobs/page_openai/{job_id}", headers=token("admin")).json()
    tab = client.get(f"/fine-tuning/ui/task-instance/{DAG_ID}/{identity.run_id}/train/-1", headers=token("viewer"))
    other_tab = client.get(
        f"/fine-tuning/ui/task-instance/{DAG_ID}/{identity.run_id}/nothing/-1", headers=token("admin")
    )

    assert detail["job"]["id"] == job_id
    assert tab.status_code == 200
    assert f"Job {job_id}" in tab.text
    assert 'data-testid="no-job"' in other_tab.text


def test_unknown_connection_or_job_is_404_and_a_bad_id_400(client: Any, stored_connections: dict[str, str]) -> None:
    admin = token("admin")
    assert client.get("/fine-tuning/api/jobs/no_such_conn/ftjob-1", headers=admin).status_code == 404
    assert client.get("/fine-tuning/api/jobs/page_openai/ftjob-missing", headers=admin).status_code == 404
    assert client.get("/fine-tuning/api/jobs/page_openai/a..b", headers=admin).status_code == 400


def test_a_failing_vendor_shows_on_its_row_and_the_page_still_answers(
    client: Any, emulator: FineTuningEmulator, stored_connections: dict[str, str]
) -> None:
    from airflow_provider_ft_emulator.faults import Fault

    emulator.seed_job("openai")
    emulator.inject(Fault("status", vendor="dashscope", method="GET", path=r"/fine-tunes$", times=100, status=500))
    listing = client.get("/fine-tuning/api/jobs", headers=token("admin"))
    page = client.get("/fine-tuning/ui/jobs", headers=token("admin"))

    assert listing.status_code == 200
    assert page.status_code == 200
    errors = {c["conn_id"]: c["error"] for c in listing.json()["connections"]}
    assert errors["page_dashscope"]
    assert errors["page_dashscope"].startswith("FineTuning")
    assert errors["page_openai"] is None
    assert 'data-testid="connection-error"' in page.text


def test_lists_are_paged_and_bounded(
    client: Any, emulator: FineTuningEmulator, stored_connections: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_ft.ui import catalog

    monkeypatch.setattr(catalog, "MAX_JOBS_PER_CONNECTION", 60)
    emulator.seed_jobs("openai", 70)
    first = client.get("/fine-tuning/api/jobs?conn_id=page_openai", headers=token("admin")).json()
    second = client.get("/fine-tuning/api/jobs?conn_id=page_openai&page=2", headers=token("admin")).json()

    assert first["page_size"] == 50
    assert len(first["jobs"]) == 50
    assert first["total"] == 60 == len(first["jobs"]) + len(second["jobs"]), "the newest 60 of 70"
    assert first["connections"][0]["more"] is True
    assert not {j["job"]["id"] for j in first["jobs"]} & {j["job"]["id"] for j in second["jobs"]}


def test_server_text_is_escaped_on_the_page(
    client: Any, emulator: FineTuningEmulator, stored_connections: dict[str, str]
) -> None:
    hostile = emulator.seed_job("openai", status="failed", error='<script>alert("x")</script>', name="<b>n</b>")
    page = client.get("/fine-tuning/ui/jobs", headers=token("admin")).text
    job_page = client.get(f"/fine-tuning/ui/jobs/page_openai/{hostile}", headers=token("admin")).text

    assert "<script>alert" not in job_page
    assert "&lt;script&gt;alert" in job_page
    assert "<b>n</b>" not in page


def test_a_slow_vendor_shows_as_not_answering_on_its_row(
    client: Any, emulator: FineTuningEmulator, stored_connections: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_ft.ui import catalog
    from airflow_provider_ft_emulator.faults import Fault

    monkeypatch.setattr(catalog, "LISTING_WAIT", 0.3)
    emulator.inject(Fault("latency", vendor="together", delay=1.5, times=1))
    listing = client.get("/fine-tuning/api/jobs", headers=token("admin"))

    errors = {c["conn_id"]: c["error"] for c in listing.json()["connections"]}
    assert listing.status_code == 200
    assert errors["page_together"] == "no answer within 0.3 s; still asking"
    assert errors["page_openai"] is None
    time.sleep(1.5)  # the slow listing ends before the next test's emulator is emptied

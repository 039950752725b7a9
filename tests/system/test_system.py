"""Health, version, metrics and the system.check operation."""

from __future__ import annotations

import httpx
import pytest

from slipway import __version__
from slipway.api.app import create_app
from slipway.core import schema
from slipway.core.config import Settings
from slipway.core.db import session_factory
from slipway.jobs import logs as oplogs
from slipway.system import jobs as system_jobs
from tests.conftest import Processes, bearer, make_user
from tests.jobs.helpers import running_context, submit, wait_status


def test_health_is_503_naming_the_missing_worker_then_200_with_one(settings, processes, client):
    response = client.get("/api/v1/health")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]
    assert not body["checks"]["workers"]["ok"]
    assert "slipway worker" in body["checks"]["workers"]["message"]
    processes.worker()
    response = client.get("/api/v1/health")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_health_names_redis_when_it_does_not_answer(settings):
    from fastapi.testclient import TestClient

    broken = Settings(**{**settings.model_dump(), "redis_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(broken, run_maintenance=False)) as client:
        response = client.get("/api/v1/health")
    assert response.status_code == 503
    assert not response.json()["checks"]["redis"]["ok"]
    assert "Redis does not answer" in response.json()["checks"]["redis"]["message"]


def test_version_manifest(settings, client, tokens):
    body = client.get("/api/v1/version", headers=bearer(tokens["viewer"])).json()
    assert body["version"] == __version__
    assert body["components"]["api"] == __version__
    head = schema.head_revision()
    assert body["components"]["schema"] == {"current": head, "head": head}
    assert "Ubuntu" in body["os_support"] and body["os"]["name"]


def test_system_check_operation_succeeds_with_one_line_per_check(
    settings, processes, client, tokens
):
    processes.worker()
    response = client.post("/api/v1/system/check", headers=bearer(tokens["operator"]))
    assert response.status_code == 202
    op = response.json()["operation"]
    assert response.headers["location"].endswith(f"/api/v1/operations/{op['id']}")
    done = wait_status(settings, op["id"], "succeeded")
    names = [check["name"] for check in done.result["checks"]]
    assert names == ["database", "redis", "workers", "data_dir", "docker_endpoint:local"]
    assert done.result["failing"] == []
    log = client.get(f"/api/v1/operations/{op['id']}/logs", headers=bearer(tokens["viewer"])).text
    assert len(log.splitlines()) == 5 and all(line.startswith("ok") for line in log.splitlines())


def test_system_check_logs_each_line_at_once_without_waiting_on_its_own_records(
    settings, processes, monkeypatch
):
    # Every line is stored as it is written (under load the log writer flushes at any line): a
    # check still holding its records uncommitted would make that write wait on its own lock
    # until SQLite's busy timeout, the worker's heartbeat with it (caught by CI as worker_lost).
    monkeypatch.setattr(oplogs, "_FLUSH_SECONDS", 0)
    # For the workers check (this job runs here, in the test, with no heartbeat of its own: the
    # worker's maintenance must not take it for lost).
    processes.env["SLIPWAY_WORKER_LOST_AFTER"] = "600"
    processes.worker()
    op_id = submit(settings, "system.check", enqueue=False)
    ctx = running_context(settings, op_id, kind="system.check")
    summary = system_jobs.check(ctx)
    assert [c["name"] for c in summary["checks"]][-1] == "docker_endpoint:local"
    with session_factory(settings)() as session:
        lines = [line.text for line in oplogs.read_lines(session, op_id)]
    assert len(lines) == 5 and lines[-1].startswith("ok   docker_endpoint:local"), lines


def test_system_check_fails_naming_the_failing_check(
    settings, processes: Processes, client, tokens
):
    # The worker's instance expects a `builds` queue that no worker serves.
    processes.env["SLIPWAY_QUEUES"] = "default,builds"
    processes.worker(None, "--queues", "default")
    op = client.post("/api/v1/system/check", headers=bearer(tokens["operator"])).json()["operation"]
    done = wait_status(settings, op["id"], "failed")
    assert done.error["code"] == "check_failed"
    assert [check["name"] for check in done.result["failing"]] == ["workers"]
    assert "builds" in done.result["failing"][0]["message"]


def test_metrics_report_operations_queue_depth_and_workers(settings, processes, client, tokens):
    processes.worker()
    op = client.post("/api/v1/system/check", headers=bearer(tokens["operator"])).json()["operation"]
    wait_status(settings, op["id"], "succeeded")
    response = client.get("/metrics", headers=bearer(tokens["viewer"]))
    assert response.status_code == 200
    text = response.text
    assert 'slipway_operations{kind="system.check",status="succeeded"} 1.0' in text
    assert (
        'slipway_operation_duration_seconds_count{kind="system.check",status="succeeded"} 1.0'
        in text
    )
    assert 'slipway_queue_depth{queue="default"} 0.0' in text
    assert "slipway_workers 1.0" in text


@pytest.mark.parametrize("path", ["/metrics", "/api/v1/version"])
def test_metrics_and_version_need_a_token(client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_api_replicas_share_state(settings, processes: Processes):
    """An operation started through one API replica is visible, with its log, through another."""
    token = make_user(settings, "ops", "operator")
    processes.worker()
    first, second = processes.api(), processes.api()
    op = httpx.post(f"{first}/api/v1/system/check", headers=bearer(token)).json()["operation"]
    wait_status(settings, op["id"], "succeeded")
    seen = httpx.get(f"{second}/api/v1/operations/{op['id']}", headers=bearer(token)).json()
    assert seen["status"] == "succeeded"
    log = httpx.get(f"{second}/api/v1/operations/{op['id']}/logs", headers=bearer(token)).text
    assert "ok   database" in log

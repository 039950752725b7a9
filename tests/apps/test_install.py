"""Installing apps on the real engine: validation first, then compose up, status, cleanup."""

from __future__ import annotations

import os
import socket
import stat
import time

import httpx
import pytest

from slipway.apps.models import App
from slipway.core.db import session_factory
from slipway.jobs.models import Operation
from tests.api.helpers import assert_error
from tests.conftest import bearer
from tests.jobs.helpers import wait_status

# Set before `settings` is read: the catalog of these tests is tests/apps/library.
pytestmark = pytest.mark.usefixtures("apps_env")


def install(client, token, **body):
    return client.post("/api/v1/apps", json=body, headers=bearer(token))


def counts(settings) -> tuple[int, int]:
    """Apps, and app operations (a worker's maintenance may add its daily purge at any time)."""
    with session_factory(settings)() as session:
        app_operations = session.query(Operation).filter(Operation.kind.startswith("app."))
        return session.query(App).count(), app_operations.count()


def wait_http(port: int, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/", timeout=1).text
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"nothing answered on port {port}")


def test_install_runs_the_template_and_reports_running(
    apps_env, settings, worker, client, tokens, app_name, port
):
    response = install(
        client, tokens["operator"], app="web", name=app_name, settings={"W9_HTTP_PORT_SET": port}
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert response.headers["location"].endswith(body["operation"]["id"])
    assert body["operation"]["kind"] == "app.install"
    assert set(body["generated_secrets"]) == {"W9_POWER_PASSWORD"}
    password = body["generated_secrets"]["W9_POWER_PASSWORD"]
    assert body["app"]["status"] == "installing" and body["app"]["allowed_actions"] == []

    done = wait_status(settings, body["operation"]["id"], "succeeded", timeout=90)
    assert done.result["ports"] == [port]
    assert wait_http(port).strip() == f"hello from {app_name}"
    shown = client.get(f"/api/v1/apps/{app_name}", headers=bearer(tokens["viewer"])).json()
    assert shown["status"] == "running"
    assert shown["version"] == "1" and shown["app"] == "web"
    assert "stop" in shown["allowed_actions"] and "start" not in shown["allowed_actions"]
    assert [c["service"] for c in shown["containers"]] == ["web"]

    env_file = settings.data_dir / "apps" / "local" / app_name / ".env"
    assert stat.S_IMODE(os.stat(env_file).st_mode) == 0o600
    assert password in env_file.read_text()
    assert (
        f"W9_ID={app_name}" in env_file.read_text() or f"W9_ID='{app_name}'" in env_file.read_text()
    )
    # The password is shown once: never in the app, its settings, or the operation.
    env = client.get(f"/api/v1/apps/{app_name}/env", headers=bearer(tokens["viewer"])).json()
    assert env["settings"]["W9_POWER_PASSWORD"] == "******"
    for path in (f"/api/v1/apps/{app_name}", f"/api/v1/operations/{done.id}", "/api/v1/apps"):
        assert password not in client.get(path, headers=bearer(tokens["admin"])).text
    log = client.get(f"/api/v1/operations/{done.id}/logs", headers=bearer(tokens["viewer"])).text
    assert "docker compose up" in log and password not in log


def test_a_failed_install_leaves_no_containers_and_says_why(
    apps_env, settings, worker, client, tokens, app_name, engine
):
    response = install(client, tokens["operator"], app="crashy", name=app_name)
    op_id = response.json()["operation"]["id"]
    failed = wait_status(settings, op_id, "failed", timeout=90)
    assert failed.error["code"] == "app_not_ready"
    assert "exit 3" in failed.error["message"]
    log = client.get(f"/api/v1/operations/{op_id}/logs", headers=bearer(tokens["viewer"])).text
    assert "something is wrong" in log
    label = f"com.docker.compose.project={app_name}"
    assert engine.containers.list(all=True, filters={"label": label}) == []
    shown = client.get(f"/api/v1/apps/{app_name}", headers=bearer(tokens["viewer"])).json()
    assert shown["status"] == "failed"
    assert shown["allowed_actions"] == ["redeploy", "uninstall", "logs"]
    assert not (settings.data_dir / "apps" / "local" / app_name).exists()


def test_settings_left_empty_are_generated_and_required_ones_are_demanded(
    apps_env, settings, client, tokens, app_name, port
):
    before = counts(settings)
    missing = install(client, tokens["operator"], app="duo", name=app_name)
    error = assert_error(missing, 422, "missing_settings")
    assert error["details"]["missing"] == ["W9_HTTP_PORT_SET"]
    assert counts(settings) == before
    ok = install(
        client, tokens["operator"], app="duo", name=app_name, settings={"W9_HTTP_PORT_SET": port}
    )
    assert ok.status_code == 202
    assert set(ok.json()["generated_secrets"]) == {"W9_DB_PASSWORD"}


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"app": "nope"}, 404, "unknown_app", "app"),
        ({"app": "web", "version": "9"}, 422, "unknown_version", "version"),
        ({"app": "web", "edition": "enterprise"}, 422, "unknown_edition", "edition"),
        ({"app": "web", "name": "Bad_Name"}, 422, "invalid_input", "name"),
        (
            {"app": "web", "settings": {"NOT_A_SETTING": "1"}},
            422,
            "unknown_setting",
            "settings.NOT_A_SETTING",
        ),
        ({"app": "priv"}, 422, "policy_refused", "app"),
        ({"app": "web", "endpoint": "elsewhere"}, 404, None, None),
    ],
)
def test_bad_install_requests_are_refused_and_change_nothing(
    apps_env, settings, client, tokens, app_name, port, body, status, code, field
):
    before = counts(settings)
    defaults = {"settings": {"W9_HTTP_PORT_SET": port}} if body["app"] == "web" else {}
    body = {"name": app_name, **defaults, **body}
    response = install(client, tokens["operator"], **body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    if code:
        assert error["code"] == code
    if field:
        assert error["details"]["field"] == field
    assert counts(settings) == before


def test_a_taken_port_is_refused_naming_the_setting(apps_env, settings, client, tokens, app_name):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        before = counts(settings)
        response = install(
            client,
            tokens["operator"],
            app="web",
            name=app_name,
            settings={"W9_HTTP_PORT_SET": taken},
        )
    error = assert_error(response, 409, "port_taken")
    assert error["details"]["field"] == "settings.W9_HTTP_PORT_SET"
    assert str(taken) in error["message"]
    assert counts(settings) == before


def test_a_name_already_used_is_refused(apps_env, settings, worker, client, tokens, app_name, port):
    first = install(
        client, tokens["operator"], app="web", name=app_name, settings={"W9_HTTP_PORT_SET": port}
    )
    assert first.status_code == 202
    before = counts(settings)
    again = install(
        client,
        tokens["operator"],
        app="duo",
        name=app_name,
        settings={"W9_HTTP_PORT_SET": port + 1},
    )
    assert_error(again, 409, "app_exists")
    assert counts(settings) == before
    wait_status(settings, first.json()["operation"]["id"], "succeeded", timeout=90)


def test_requirements_beyond_the_engine_are_refused(
    apps_env, settings, client, tokens, app_name, tmp_path, monkeypatch
):
    from slipway.apps import catalog

    real = catalog.load_catalog

    def greedy(session, config):
        loaded = real(session, config)
        app = loaded.get("web")
        object.__setattr__(app.requirements, "memory_gb", 100000.0)
        return loaded

    monkeypatch.setattr("slipway.apps.install.load_catalog", greedy)
    before = counts(settings)
    error = assert_error(
        install(client, tokens["operator"], app="web", name=app_name), 422, "requirements_not_met"
    )
    assert "memory" in error["message"]
    assert counts(settings) == before


def test_a_viewer_cannot_install(apps_env, settings, client, tokens, app_name):
    assert_error(install(client, tokens["viewer"], app="web", name=app_name), 403, "forbidden")


def test_an_endpoint_with_apps_cannot_be_deleted(apps_env, settings, client, tokens, session):
    from slipway.apps.models import App, InstallState

    created = client.post(
        "/api/v1/docker-endpoints",
        json={"name": "second", "url": "unix:///var/run/docker.sock"},
        headers=bearer(tokens["admin"]),
    )
    assert created.status_code == 201, created.text
    session.add(
        App(
            name="held",
            endpoint="second",
            settings={},
            secret_settings={},
            app_dir="/x",
            install_state=InstallState.installed,
        )
    )
    session.commit()
    refused = client.delete("/api/v1/docker-endpoints/second", headers=bearer(tokens["admin"]))
    error = assert_error(refused, 409, "endpoint_in_use")
    assert error["details"]["used_by"] == ["app held"]
    names = [
        e["name"]
        for e in client.get("/api/v1/docker-endpoints", headers=bearer(tokens["viewer"])).json()[
            "items"
        ]
    ]
    assert "second" in names

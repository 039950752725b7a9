"""Apps on a remote Docker engine: a second, TLS-only dockerd registered as a Docker endpoint.

Templates that bind-mount files from their folder are refused there; others install and run on
it; an engine that goes away mid-install fails the install with `endpoint_unreachable`, and once
it is back a redeploy brings the app up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from slipway.jobs.logs import stream_key
from tests.api.fixtures import cheap_hashes
from tests.api.helpers import assert_error
from tests.apps import remote_engine
from tests.apps.test_install import counts
from tests.conftest import bearer, free_port, wait_for
from tests.jobs.helpers import wait_status
from tests.targets.engines import TLSEngine, start_tls_engine, tls_engine_problem
from tests.targets.helpers import ENDPOINTS, pem_files

# Set before `settings` is read: the catalog of these tests is tests/apps/library.
pytestmark = pytest.mark.usefixtures("apps_env")

__all__ = ["cheap_hashes"]

REMOTE = "remote"
IMAGE = "local/busybox:1"


@pytest.fixture(scope="session")
def second_engine(engine) -> Iterator[TLSEngine]:
    """One TLS-only dockerd for the whole file, with the test image loaded into its own store."""
    problem = tls_engine_problem()
    if problem:
        pytest.skip(problem)
    started = start_tls_engine(free_port())
    try:
        remote_engine.load_image(started, IMAGE)
        yield started
    finally:
        started.stop()


@pytest.fixture
def remote(settings, second_engine, client, cheap_hashes, tokens) -> Iterator[TLSEngine]:
    """The second engine, running and registered as the Docker endpoint `remote` (PEM uploads);
    whatever a test leaves on it is removed afterwards."""
    if not remote_engine.is_running(second_engine):
        remote_engine.restart(second_engine)  # a test before this one left it stopped
    created = client.post(
        ENDPOINTS,
        data={"name": REMOTE, "url": second_engine.url},
        files=pem_files(second_engine.ca_pem, second_engine.client),
        headers=bearer(tokens["admin"]),
    )
    assert created.status_code == 201, created.text
    yield second_engine
    if not remote_engine.is_running(second_engine):
        remote_engine.restart(second_engine)
    remote_engine.remove_projects(second_engine)


def install(client, tokens, **body):
    return client.post("/api/v1/apps", json=body, headers=bearer(tokens["operator"]))


def shown(client, tokens, name: str) -> dict:
    response = client.get(
        f"/api/v1/apps/{name}", params={"endpoint": REMOTE}, headers=bearer(tokens["viewer"])
    )
    assert response.status_code == 200, response.text
    return response.json()


def log_text(redis_client, operation_id: str) -> str:
    """The operation's log lines as published live (the database gets them in batches)."""
    entries = redis_client.xrange(stream_key(operation_id))
    return "\n".join(fields[b"text"].decode() for _, fields in entries)


def test_a_template_with_local_bind_mounts_is_refused_on_a_remote_engine(
    settings, client, tokens, remote, app_name, port
):
    before = counts(settings)
    response = install(
        client,
        tokens,
        app="web",
        name=app_name,
        endpoint=REMOTE,
        settings={"W9_HTTP_PORT_SET": port},
    )
    error = assert_error(response, 422, "remote_bind_mounts")
    assert error["details"]["field"] == "endpoint"
    assert "./src/motd.txt" in error["message"] and REMOTE in error["message"]
    assert counts(settings) == before == (0, 0)
    assert not (settings.data_dir / "apps" / REMOTE / app_name).exists()
    assert remote_engine.project_containers(remote, app_name) == []


def test_an_app_installs_and_runs_on_the_remote_engine(
    settings, worker, client, tokens, remote, app_name, port, engine
):
    response = install(
        client,
        tokens,
        app="duo",
        name=app_name,
        endpoint=REMOTE,
        settings={"W9_HTTP_PORT_SET": port},
    )
    assert response.status_code == 202, response.text
    assert response.json()["app"]["endpoint"] == REMOTE
    done = wait_status(settings, response.json()["operation"]["id"], "succeeded", "failed")
    assert done.status == "succeeded", done.error
    assert done.result["ports"] == [port]

    app = shown(client, tokens, app_name)
    assert app["status"] == "running" and app["endpoint"] == REMOTE
    assert sorted(c["service"] for c in app["containers"]) == ["db", "front"]
    listed = client.get(
        "/api/v1/apps", params={"endpoint": REMOTE}, headers=bearer(tokens["viewer"])
    ).json()["items"]
    assert [(a["name"], a["endpoint"], a["status"]) for a in listed] == [
        (app_name, REMOTE, "running")
    ]
    local = client.get(
        "/api/v1/apps", params={"endpoint": "local"}, headers=bearer(tokens["viewer"])
    ).json()["items"]
    assert local == []
    # The containers are on the second engine, not on this machine's.
    assert remote_engine.project_containers(remote, app_name) == [
        f"{app_name}-db:running",
        f"{app_name}:running",
    ]
    label = f"com.docker.compose.project={app_name}"
    assert engine.containers.list(all=True, filters={"label": label}) == []
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code in (200, 404)


def test_an_engine_that_goes_away_mid_install_fails_it_and_a_redeploy_recovers(
    settings, worker, client, tokens, remote, app_name, port, redis_client
):
    response = install(
        client,
        tokens,
        app="duo",
        name=app_name,
        endpoint=REMOTE,
        settings={"W9_HTTP_PORT_SET": port},
    )
    assert response.status_code == 202, response.text
    operation_id = response.json()["operation"]["id"]
    # Frozen first, so that compose is certainly talking to it when it goes away: the install
    # cannot finish before the test stops the engine.
    remote_engine.freeze(remote)
    try:
        wait_for(
            lambda: "==> docker compose up" in log_text(redis_client, operation_id),
            timeout=30,
            what="the install to reach docker compose up",
        )
        time.sleep(1.0)  # compose connects to the frozen engine and waits for an answer
    finally:
        remote_engine.go_away(remote)
    gone_at = time.monotonic()

    failed = wait_status(settings, operation_id, "failed", "succeeded", timeout=60)
    took = time.monotonic() - gone_at
    assert failed.status == "failed", failed.result
    assert failed.error["code"] == "endpoint_unreachable", failed.error
    assert f"engine {REMOTE} ({remote.url})" in failed.error["message"]
    assert took < 30, f"the install noticed the engine was gone only after {took:.1f} s"
    log = client.get(
        f"/api/v1/operations/{operation_id}/logs", headers=bearer(tokens["viewer"])
    ).text
    assert "could not remove the containers it created" in log
    app = shown(client, tokens, app_name)
    assert app["status"] == "failed" and "redeploy" in app["allowed_actions"]

    remote_engine.restart(remote)  # same data root: the image is still there
    retried = client.post(
        f"/api/v1/apps/{app_name}/redeploy",
        params={"endpoint": REMOTE},
        headers=bearer(tokens["operator"]),
    )
    assert retried.status_code == 202, retried.text
    done = wait_status(settings, retried.json()["operation"]["id"], "succeeded", "failed")
    assert done.status == "succeeded", done.error
    app = shown(client, tokens, app_name)
    assert app["status"] == "running" and app["endpoint"] == REMOTE
    assert app["install_state"] == "installed"
    assert remote_engine.project_containers(remote, app_name) == [
        f"{app_name}-db:running",
        f"{app_name}:running",
    ]

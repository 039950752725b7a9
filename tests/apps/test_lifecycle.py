"""Running apps: lifecycle operations, status from the engine, upgrade with rollback, settings,
uninstall, adoption and container logs, on the real engine."""

from __future__ import annotations

import json
import shutil
import time

import httpx
import pytest

from tests.api.helpers import assert_error
from tests.apps.conftest import LIBRARY, compose_up_by_hand
from tests.conftest import bearer, wait_for
from tests.jobs.helpers import wait_status

# Set before `settings` is read: the catalog of these tests is tests/apps/library.
# The lifecycle's SQL is the install's (tests/apps/test_install.py runs on both backends); these
# exercise the engine, so SQLite alone keeps the suite's time in bounds.
pytestmark = [
    pytest.mark.usefixtures("apps_env"),
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]


@pytest.fixture
def running(apps_env, settings, worker, client, tokens, app_name, port):
    """The `web` test app, installed and running."""
    response = client.post(
        "/api/v1/apps",
        json={"app": "web", "name": app_name, "settings": {"W9_HTTP_PORT_SET": port}},
        headers=bearer(tokens["operator"]),
    )
    assert response.status_code == 202, response.text
    wait_status(settings, response.json()["operation"]["id"], "succeeded", timeout=90)
    return app_name


def act(client, tokens, name: str, verb: str, **kwargs):
    return client.post(f"/api/v1/apps/{name}/{verb}", headers=bearer(tokens["operator"]), **kwargs)


def status_of(client, tokens, name: str) -> dict:
    return client.get(f"/api/v1/apps/{name}", headers=bearer(tokens["viewer"])).json()


def run(settings, client, tokens, name: str, verb: str, final: str = "succeeded", **kwargs):
    response = act(client, tokens, name, verb, **kwargs)
    assert response.status_code == 202, response.text
    return wait_status(settings, response.json()["operation"]["id"], final, timeout=90)


def test_stop_start_restart_and_the_actions_each_status_allows(settings, client, tokens, running):
    run(settings, client, tokens, running, "stop")
    stopped = status_of(client, tokens, running)
    assert stopped["status"] == "exited"
    assert stopped["allowed_actions"] == [
        "start",
        "restart",
        "upgrade",
        "redeploy",
        "uninstall",
        "logs",
    ]
    refused = act(client, tokens, running, "stop")
    error = assert_error(refused, 409, "invalid_state")
    assert error["details"]["allowed_actions"] == stopped["allowed_actions"]
    assert "start" in error["message"]
    run(settings, client, tokens, running, "start")
    assert status_of(client, tokens, running)["status"] == "running"
    run(settings, client, tokens, running, "restart")
    assert status_of(client, tokens, running)["status"] == "running"


def test_a_container_killed_from_outside_shows_within_two_seconds(client, tokens, running, engine):
    engine.containers.get(running).kill()
    started = time.monotonic()
    wait_for(
        lambda: status_of(client, tokens, running)["status"] in ("exited", "failed", "restarting"),
        timeout=2.5,
        what="the status to change",
    )
    assert time.monotonic() - started < 2.5


def test_upgrade_keeps_volumes_and_a_failed_one_rolls_back(
    settings, client, tokens, running, engine, port
):
    volume = engine.volumes.get(f"{running}_www")
    done = run(settings, client, tokens, running, "upgrade", json={"version": "2"})
    assert done.result["previous_version"] == "1"
    shown = status_of(client, tokens, running)
    assert shown["version"] == "2" and shown["status"] == "running"
    assert shown["containers"][0]["image"] == "local/busybox:2"
    assert engine.volumes.get(f"{running}_www").id == volume.id
    # Version 3 is in the catalog but has no image here: the upgrade fails and goes back to 2.
    failed = run(settings, client, tokens, running, "upgrade", "failed", json={"version": "3"})
    assert failed.error["code"] == "upgrade_failed"
    assert "rolled back to 2" in failed.error["message"]
    shown = status_of(client, tokens, running)
    assert shown["version"] == "2" and shown["status"] == "running"
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200


def test_upgrade_to_an_unknown_version_is_refused(settings, client, tokens, running):
    response = act(client, tokens, running, "upgrade", json={"version": "99"})
    error = assert_error(response, 422, "unknown_version")
    assert error["details"]["field"] == "version"


def test_changed_settings_apply_at_redeploy_and_secrets_stay_masked(
    settings, client, tokens, running, engine
):
    new_port = port_free()
    headers = bearer(tokens["operator"])
    changed = client.put(
        f"/api/v1/apps/{running}/env",
        json={"settings": {"W9_HTTP_PORT_SET": new_port, "W9_POWER_PASSWORD": "new-secret-pass"}},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["is_redeploy_pending"] is True
    assert body["settings"]["W9_POWER_PASSWORD"] == "******"
    assert body["settings"]["W9_HTTP_PORT_SET"] == str(new_port)
    bad = client.put(
        f"/api/v1/apps/{running}/env", json={"settings": {"W9_ID": "x"}}, headers=headers
    )
    assert_error(bad, 422, "invalid_input")
    run(settings, client, tokens, running, "redeploy")
    assert status_of(client, tokens, running)["is_redeploy_pending"] is False
    assert httpx.get(f"http://127.0.0.1:{new_port}/", timeout=5).status_code == 200
    env_file = settings.data_dir / "apps" / "local" / running / ".env"
    assert "new-secret-pass" in env_file.read_text()
    environment = engine.containers.get(running).attrs["Config"]["Env"]
    assert "W9_POWER_PASSWORD=new-secret-pass" in environment


def port_free() -> int:
    from tests.conftest import free_port

    return free_port()


def test_uninstall_keeps_volumes_and_says_where_unless_purged(
    settings, client, tokens, running, engine
):
    response = client.delete(f"/api/v1/apps/{running}", headers=bearer(tokens["operator"]))
    assert response.status_code == 202
    done = wait_status(settings, response.json()["operation"]["id"], "succeeded", timeout=60)
    assert done.result["kept_volumes"] == [f"{running}_www"]
    assert (
        engine.containers.list(all=True, filters={"label": f"com.docker.compose.project={running}"})
        == []
    )
    assert engine.volumes.get(f"{running}_www")
    assert (
        client.get(f"/api/v1/apps/{running}", headers=bearer(tokens["viewer"])).status_code == 404
    )
    assert not (settings.data_dir / "apps" / "local" / running).exists()


def test_uninstall_with_purge_removes_volumes(settings, client, tokens, running, engine):
    response = client.delete(
        f"/api/v1/apps/{running}", params={"purge": "true"}, headers=bearer(tokens["operator"])
    )
    done = wait_status(settings, response.json()["operation"]["id"], "succeeded", timeout=60)
    assert done.result["removed_volumes"] == [f"{running}_www"]
    assert engine.volumes.list(filters={"label": f"com.docker.compose.project={running}"}) == []


def test_deleting_an_app_that_is_installing_cancels_the_install(
    apps_env, settings, client, tokens, app_name, port, worker, engine
):
    install = client.post(
        "/api/v1/apps",
        json={"app": "web", "name": app_name, "settings": {"W9_HTTP_PORT_SET": port}},
        headers=bearer(tokens["operator"]),
    ).json()["operation"]
    delete = client.delete(f"/api/v1/apps/{app_name}", headers=bearer(tokens["operator"]))
    assert delete.status_code == 202
    first = wait_status(settings, install["id"], "canceled", "failed", "succeeded", timeout=90)
    wait_status(settings, delete.json()["operation"]["id"], "succeeded", timeout=90)
    assert first.status in ("canceled", "failed", "succeeded")
    assert (
        engine.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={app_name}"}
        )
        == []
    )
    assert (
        client.get(f"/api/v1/apps/{app_name}", headers=bearer(tokens["viewer"])).status_code == 404
    )


def test_container_logs_snapshot_and_follow(settings, client, tokens, running):
    text = client.get(
        f"/api/v1/apps/{running}/logs", params={"tail": 50}, headers=bearer(tokens["viewer"])
    ).text
    assert "web | serving" in text
    bad = client.get(
        f"/api/v1/apps/{running}/logs", params={"service": "nope"}, headers=bearer(tokens["viewer"])
    )
    assert_error(bad, 422, "invalid_input")
    with client.stream(
        "GET",
        f"/api/v1/apps/{running}/logs",
        params={"follow": "true", "tail": 10},
        headers=bearer(tokens["viewer"]),
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                assert event["service"] == "web"
                break


def test_an_app_started_by_hand_can_be_adopted_and_uninstalled(
    apps_env, settings, worker, client, tokens, app_name, tmp_path, port
):
    folder = tmp_path / "by-hand"
    shutil.copytree(LIBRARY / "web", folder)
    env = (folder / ".env").read_text().replace("W9_ID='web'", f"W9_ID='{app_name}'")
    (folder / ".env").write_text(
        env.replace("W9_HTTP_PORT_SET='9001'", f"W9_HTTP_PORT_SET='{port}'")
    )
    import docker

    client_docker = docker.from_env()
    if not client_docker.networks.list(names=["slipway-test"]):
        client_docker.networks.create("slipway-test")
    compose_up_by_hand(folder, app_name)
    missing = client.post(
        "/api/v1/apps/nothing-here/adopt", json={}, headers=bearer(tokens["operator"])
    )
    assert_error(missing, 404, "project_not_found")
    adopted = client.post(
        f"/api/v1/apps/{app_name}/adopt", json={}, headers=bearer(tokens["operator"])
    )
    assert adopted.status_code == 201, adopted.text
    assert adopted.json()["app"] is None and adopted.json()["install_state"] == "adopted"
    wait_for(
        lambda: status_of(client, tokens, app_name)["status"] == "running",
        timeout=30,
        what="running",
    )
    run(settings, client, tokens, app_name, "stop")
    assert status_of(client, tokens, app_name)["status"] == "exited"
    response = client.delete(f"/api/v1/apps/{app_name}", headers=bearer(tokens["operator"]))
    wait_status(settings, response.json()["operation"]["id"], "succeeded", timeout=60)
    assert (
        client_docker.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={app_name}"}
        )
        == []
    )

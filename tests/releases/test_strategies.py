"""Profiles, host overrides, pauses, serial batches, the waiting queue and the estimate."""

from __future__ import annotations

import pytest

from slipway.core.config import get_settings
from tests.releases.archives import make_app_package
from tests.releases.conftest import World, app_scripts

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", ["sqlite"], indirect=True)]

PROFILE = """\
description: a test runtime that records what it is asked to do
scripts:
  deploy: |
    echo "deploy $SLIPWAY_VERSION on $SLIPWAY_HOST role=$SLIPWAY_VAR_ROLE" \\
      >> "$SLIPWAY_STATE_DIR/runtime"
  start: |
    echo "start $(basename "$SLIPWAY_RELEASE_DIR")" >> "$SLIPWAY_STATE_DIR/runtime"
  stop: |
    echo "stop $(basename "$SLIPWAY_RELEASE_DIR")" >> "$SLIPWAY_STATE_DIR/runtime"
"""


@pytest.fixture
def profile_dir(env, tmp_path, monkeypatch) -> dict[str, str]:
    """A user profile `recorder` in SLIPWAY_RELEASE_PROFILE_DIRS; request it before `world`."""
    directory = tmp_path / "profiles"
    directory.mkdir()
    (directory / "recorder.yaml").write_text(PROFILE)
    monkeypatch.setenv("SLIPWAY_RELEASE_PROFILE_DIRS", str(directory))
    env["SLIPWAY_RELEASE_PROFILE_DIRS"] = str(directory)
    get_settings.cache_clear()
    return env


def test_a_profile_supplies_the_scripts_and_host_overrides_win(profile_dir, world: World) -> None:
    world.project = "svc"
    world.setup(
        host_count=2,
        kind="recorder",
        variables={"role": "primary", "ip": "10.1.1.1"},
        host_variables={"h1": {"role": "backup", "ip": "10.2.2.2"}},
    )
    for version in ("1.0.0", "1.0.1"):
        path = make_app_package(
            world.tmp_path, "svc", version, {"conf/app.conf": "ip=[@IP]\n"}, scripts={}
        )
        world.upload(path)
        assert world.deploy_and_wait(package=version)["status"] == "succeeded"

    h0, h1 = world.hosts
    assert world.read(h0, "current/conf/app.conf") == "ip=10.1.1.1\n"
    assert world.read(h1, "current/conf/app.conf") == "ip=10.2.2.2\n"
    assert world.read(h1, ".slipway/runtime").splitlines() == [
        "deploy 1.0.0 on h1 role=backup", "start svc_1.0.0",
        "deploy 1.0.1 on h1 role=backup", "stop svc_1.0.0", "start svc_1.0.1",
    ]  # fmt: skip
    kinds = [p["name"] for p in world.call("GET", "/api/v1/release-profiles")["items"]]
    assert {"wecube", "jar", "war", "static", "node", "recorder"} <= set(kinds)


def test_an_unknown_project_kind_is_refused(world: World) -> None:
    answer = world.client.post(
        "/api/v1/projects", headers=world.admin, json={"name": "x", "kind": "cobol"}
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "unknown_project_kind"
    assert "jar" in answer.json()["error"]["message"]


def test_static_sites_just_switch(world: World) -> None:
    world.project = "site"
    world.setup(host_count=1, kind="static")
    world.upload(
        make_app_package(world.tmp_path, "site", "2.0.0", {"index.html": "hi"}, scripts={})
    )
    view = world.deploy_and_wait(package="2.0.0")
    assert view["status"] == "succeeded"
    assert world.read(world.hosts[0], "current/index.html") == "hi"


def test_serial_batches_with_a_pause_between_them(world: World) -> None:
    world.setup(strategy={"batch_size": "50%", "pause": 1, "serial": True})
    world.upload(make_app_package(world.tmp_path, "demo-app", "1.0.0", scripts=app_scripts()))

    view = world.deploy_and_wait(package="1.0.0")

    assert view["status"] == "succeeded"
    assert view["batches"] == [["h0", "h1"], ["h2"]]
    hosts = {h["host"]: h for h in view["hosts"]}
    # serial: h1 started after h0 finished; the pause: h2 a second after h1
    assert hosts["h1"]["started_at"] >= hosts["h0"]["finished_at"]
    gap = _seconds(hosts["h2"]["started_at"]) - _seconds(hosts["h1"]["finished_at"])
    assert gap >= 0.9


def _seconds(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_waiting_deployments_can_be_reordered(world: World) -> None:
    world.setup(host_count=1)
    for version, extra in (("1.0.0", "sleep 1.5"), ("1.0.1", ""), ("1.0.2", "")):
        world.upload(
            make_app_package(
                world.tmp_path, "demo-app", version, scripts=app_scripts(extra_deploy=extra)
            )
        )
    first = world.deploy(package="1.0.0")
    second = world.deploy(package="1.0.1")
    third = world.deploy(package="1.0.2")
    moved = world.client.post(
        f"/api/v1/operations/{third['operation']['id']}/move",
        headers=world.operator,
        json={"to": "front"},
    )
    assert moved.status_code == 200, moved.text

    views = [world.wait(d["deployment"]["id"]) for d in (first, second, third)]

    assert [v["status"] for v in views] == ["succeeded"] * 3
    assert views[2]["finished_at"] < views[1]["started_at"]
    assert world.current(world.hosts[0]) == "demo-app_1.0.1"


def test_progress_has_an_estimate_from_earlier_deployments(world: World) -> None:
    world.setup(strategy={"canary": 1, "pause": "manual"})
    world.upload(make_app_package(world.tmp_path, "demo-app", "1.0.0", scripts=app_scripts()))
    first = world.deploy(package="1.0.0", strategy={"canary": 0, "pause": 0})
    assert world.wait(first["deployment"]["id"])["status"] == "succeeded"
    world.upload(make_app_package(world.tmp_path, "demo-app", "1.0.1", scripts=app_scripts()))

    second = world.deploy(package="1.0.1")["deployment"]["id"]
    view = world.wait(second, until=("awaiting_continue",))

    assert view["progress"]["total"] == 33 and view["progress"]["done"] == 11
    assert view["estimated_seconds_left"] is not None and view["estimated_seconds_left"] > 0

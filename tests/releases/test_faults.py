"""Faults during deployments: cancel, locks, a killed worker, full disks, cut connections, auth."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.releases.archives import make_app_package
from tests.releases.conftest import SQLITE_ONLY, World, app_scripts, wait_until

pytestmark = pytest.mark.slow

PLAIN = {"conf/app.properties": "db.host=[@db_ip]\n"}


def package(world: World, version: str, files: dict | None = None, **scripts: str) -> dict:
    path = make_app_package(
        world.tmp_path, "demo-app", version, dict(files or PLAIN), scripts=app_scripts(**scripts)
    )
    return world.upload(path)


def host_statuses(view: dict) -> dict[str, str]:
    return {h["host"]: h["status"] for h in view["hosts"]}


def test_cancel_stops_after_the_current_step_and_every_host_keeps_a_whole_release(
    world: World,
) -> None:
    world.setup(strategy={"parallel": 3})
    package(world, "1.0.0")
    world.deploy_and_wait(package="1.0.0")
    package(world, "1.0.1", extra_deploy="sleep 2")
    deployment_id = world.deploy(package="1.0.1")["deployment"]["id"]
    wait_until(
        lambda: any(
            s["name"] == "deploy_scripts" and s["status"] == "running"
            for h in world.deployment(deployment_id)["hosts"]
            for s in h["steps"]
        ),
        "a host running its deploy script",
    )

    answer = world.client.post(
        world.env_path(f"/deployments/{deployment_id}/cancel"), headers=world.operator
    )
    assert answer.status_code == 200, answer.text
    view = world.wait(deployment_id)

    assert view["status"] == "canceled"
    for host, row in zip(world.hosts, view["hosts"], strict=True):
        assert row["status"] == "canceled", row
        assert world.current(host) == f"demo-app_{row['version']}"
        assert row["version"] == "1.0.0"  # canceled before the switch: put back
    # the locks are free again: the next deployment runs at once
    assert world.deploy_and_wait(package="1.0.1")["status"] == "succeeded"


@SQLITE_ONLY
def test_a_second_deployment_waits_for_the_first_then_runs(world: World) -> None:
    world.setup(host_count=1)
    package(world, "1.0.0", extra_deploy="sleep 1.5")
    package(world, "1.0.1")
    first = world.deploy(package="1.0.0")
    second = world.deploy(package="1.0.1")

    operation = world.call("GET", f"/api/v1/operations/{second['operation']['id']}", expect=200)
    assert operation["status"] == "waiting"
    assert world.wait(first["deployment"]["id"])["status"] == "succeeded"
    assert world.wait(second["deployment"]["id"])["status"] == "succeeded"
    assert world.current(world.hosts[0]) == "demo-app_1.0.1"


@SQLITE_ONLY
def test_a_waiting_deployment_can_be_canceled(world: World) -> None:
    world.setup(host_count=1)
    package(world, "1.0.0", extra_deploy="sleep 1")
    first = world.deploy(package="1.0.0")
    second = world.deploy(package="1.0.0")

    answer = world.client.post(
        world.env_path(f"/deployments/{second['deployment']['id']}/cancel"),
        headers=world.operator,
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "canceled"
    assert set(host_statuses(answer.json()).values()) == {"skipped"}
    assert world.wait(first["deployment"]["id"])["status"] == "succeeded"


def test_a_killed_worker_leaves_a_deployment_that_resumes_without_uploading_twice(
    world: World,
) -> None:
    world.setup(strategy={"batch_size": 1})
    slow_on_h1 = (
        '[ "$SLIPWAY_HOST" = h1 ] && [ ! -f "$SLIPWAY_DEPLOY_ROOT/fast" ] && sleep 31; true'
    )
    package(world, "1.0.0", extra_deploy=slow_on_h1)
    worker = world.processes.started[0]
    deployment_id = world.deploy(package="1.0.0")["deployment"]["id"]
    wait_until(
        lambda: (
            host_statuses(world.deployment(deployment_id))["h1"] == "running"
            and any(
                s["name"] == "deploy_scripts"
                for s in world.deployment(deployment_id)["hosts"][1]["steps"]
            )
        ),
        "h1 in its deploy script",
    )

    os.kill(worker.pid, signal.SIGKILL)
    # Another worker: its reaper notices the lost one (so would an API process).
    world.processes.worker()
    view = world.wait(deployment_id, timeout=60)
    assert view["status"] == "failed"
    assert view["error"]["code"] == "worker_lost"
    assert host_statuses(view) == {"h0": "succeeded", "h1": "failed", "h2": "skipped"}
    assert world.current(world.hosts[0]) == "demo-app_1.0.0"

    world.farm.run_on(world.hosts[1], "pkill -f 'sleep 3[1]' || true")
    # the same package now deploys fast on h1: a marker tells its script
    world.farm.run_on(world.hosts[1], f"mkdir -p {world.root} && touch {world.root}/fast")
    answer = world.client.post(
        world.env_path(f"/deployments/{deployment_id}/resume"), headers=world.operator
    )
    assert answer.status_code == 202, answer.text
    view = world.wait(deployment_id, timeout=90)

    assert view["status"] == "succeeded", view
    steps = {h["host"]: {s["name"]: s for s in h["steps"]} for h in view["hosts"]}
    assert steps["h1"]["upload"]["message"] == "already on the host"
    log = world.operation_log(view["operation_id"])
    assert "[h0]" not in log
    for host in world.hosts:
        assert world.current(host) == "demo-app_1.0.0"


@SQLITE_ONLY
def test_a_full_disk_during_extract_fails_that_host_cleanly(world: World) -> None:
    world.setup()
    world.farm.mount_small_disk(world.hosts[1], world.root, "3m")
    try:
        big = {"conf/app.properties": "x=[@db_ip]\n", "lib/blob.bin": os.urandom(4 * 2**20)}
        package(world, "1.0.0", files=big)

        view = world.deploy_and_wait(package="1.0.0", strategy={"max_failures": 3})

        statuses = host_statuses(view)
        assert statuses == {"h0": "succeeded", "h1": "failed", "h2": "succeeded"}
        error = view["hosts"][1]["error"]
        assert error is not None and error["message"]
        assert world.current(world.hosts[1]) == ""
        leftovers = world.on(world.hosts[1], f"ls -A {world.root}/.slipway 2>/dev/null || true")
        assert "staging" not in leftovers
    finally:
        world.farm.run_on(world.hosts[1], f"umount {world.root} || true")


@SQLITE_ONLY
def test_a_connection_cut_mid_upload_fails_the_host_and_resume_finishes(world: World) -> None:
    world.setup(host_count=1)
    big = {"conf/app.properties": "x=[@db_ip]\n", "lib/blob.bin": os.urandom(40 * 2**20)}
    package(world, "1.0.0", files=big)
    host = world.hosts[0]
    deployment_id = world.deploy(package="1.0.0")["deployment"]["id"]
    wait_until(
        lambda: any(
            s["name"] == "upload" and s["status"] == "running"
            for s in world.deployment(deployment_id)["hosts"][0]["steps"]
        ),
        "the upload",
        timeout=30,
    )
    time.sleep(0.05)
    world.farm.kill_sessions(host)

    view = world.wait(deployment_id)
    if view["status"] == "succeeded":
        pytest.skip("the upload finished before the connection was cut")
    assert view["hosts"][0]["error"]["code"] in ("connection_lost", "remote_command_failed")
    assert world.current(host) == ""
    answer = world.client.post(
        world.env_path(f"/deployments/{deployment_id}/resume"), headers=world.operator
    )
    assert answer.status_code == 202, answer.text
    assert world.wait(deployment_id)["status"] == "succeeded"
    assert world.current(host) == "demo-app_1.0.0"


@SQLITE_ONLY
def test_a_host_that_refuses_auth_fails_with_a_clear_error(world: World) -> None:
    world.setup(host_count=1)
    world.call(
        "POST",
        "/api/v1/credentials",
        json={"name": "wrong-pw", "kind": "password", "password": "not-the-password-1"},
        expect=201,
    )
    host = world.farm.hosts[3]
    world.call(
        "POST",
        "/api/v1/hosts",
        json={
            "name": "locked",
            "address": host.address,
            "port": host.port,
            "user": "slipway-pw",
            "credential": "wrong-pw",
            "verify": False,
        },
        expect=201,
    )
    world.call("PATCH", "/api/v1/host-groups/web", json={"hosts": ["h0", "locked"]}, expect=200)
    package(world, "1.0.0")

    view = world.deploy_and_wait(package="1.0.0", strategy={"max_failures": 1})

    statuses = host_statuses(view)
    assert statuses == {"h0": "succeeded", "locked": "failed"}
    error = view["hosts"][1]["error"]
    assert error["code"] == "ssh_auth_failed"
    assert "not-the-password-1" not in str(view)
    assert "not-the-password-1" not in world.operation_log(view["operation_id"])


@SQLITE_ONLY
def test_system_check_tests_every_host_and_names_the_one_that_is_down(world: World) -> None:
    world.setup(host_count=1)
    down = world.farm.hosts[4]
    world.call(
        "POST",
        "/api/v1/hosts",
        json={"name": "down", "address": down.address, "port": down.port,
              "credential": "farm-key"},
        expect=201,
    )  # fmt: skip
    world.farm.stop_host(down)
    try:
        started = world.call("POST", "/api/v1/system/check", expect=202, admin=False)
        operation_id = started["operation"]["id"]
        operation = wait_until(
            lambda: (
                op
                if (op := world.call("GET", f"/api/v1/operations/{operation_id}"))["status"]
                in ("succeeded", "failed")
                else None
            ),
            "system.check",
            timeout=60,
        )
    finally:
        world.farm.start_host(down)
    assert operation["status"] == "failed", world.operation_log(operation_id)
    assert operation["error"].get("details"), operation["error"]
    assert operation["error"]["details"]["failing"] == ["host:down"], operation
    log = world.operation_log(operation_id)
    assert "ok   host:h0" in log and "FAIL host:down" in log

"""Deployments to real sshd hosts: the happy path, batches, failures put back, keep_releases."""

from __future__ import annotations

import pytest

from tests.releases.archives import make_app_package
from tests.releases.conftest import SQLITE_ONLY, World, app_scripts

pytestmark = pytest.mark.slow

CONFIG = {"conf/app.properties": "db.host=[@DB_IP]\ndb.password=[!db_password]\nname=[&name]\n"}


def package(world: World, version: str, **scripts: str) -> dict:
    path = make_app_package(
        world.tmp_path, "demo-app", version, dict(CONFIG), scripts=app_scripts(**scripts)
    )
    return world.upload(path)


def test_deploy_puts_a_whole_release_on_every_host(world: World) -> None:
    world.setup(variables={"db_ip": "10.0.0.9", "name": "shop"})
    uploaded = package(world, "1.0.0")
    assert uploaded["layout"] == "plain"
    assert sorted(uploaded["variables"]) == ["db_ip", "db_password", "name"]

    view = world.deploy_and_wait(package="1.0.0")

    assert view["status"] == "succeeded", view
    assert [h["status"] for h in view["hosts"]] == ["succeeded"] * 3
    assert view["progress"]["percent"] == 100
    for host in world.hosts:
        assert world.current(host) == "demo-app_1.0.0"
        config = world.read(host, "current/conf/app.properties")
        assert "db.host=10.0.0.9" in config and "name=shop" in config
        secret = config.split("db.password=", 1)[1].splitlines()[0]
        assert "s3cret" not in config
        assert world.decrypt(secret) == "s3cret-Value-42"
        trace = world.read(host, "trace").split()
        assert trace == [
            "demo-app_1.0.0", "bin/1_deploy.sh", "demo-app_1.0.0", "bin/2_deploy.sh",
            "demo-app_1.0.0", "bin/start.sh",
        ]  # fmt: skip
    steps = [s["name"] for s in view["hosts"][0]["steps"]]
    assert steps[:4] == ["connect", "prepare", "upload", "extract"] and steps[-1] == "cleanup"
    hosts = {h["host"]: h for h in world.environment_view()["hosts"]}
    assert {h["current_version"] for h in hosts.values()} == {"1.0.0"}
    log = world.operation_log(view["operation_id"])
    assert "[h0] ==>" not in log and "[h1] connect: done" in log
    assert "s3cret-Value-42" not in log
    refused = world.client.delete(
        f"/api/v1/projects/{world.project}/packages/1.0.0", headers=world.operator
    )
    error = refused.json()["error"]
    assert refused.status_code == 409
    assert error["code"] == "in_use" and "h0" in error["message"]


@SQLITE_ONLY
def test_second_release_stops_the_old_one_and_old_releases_are_pruned(world: World) -> None:
    world.setup(keep_releases=2)
    for version in ("1.0.0", "1.0.1", "1.0.2"):
        package(world, version)
        assert world.deploy_and_wait(package=version)["status"] == "succeeded"
    host = world.hosts[0]
    assert world.current(host) == "demo-app_1.0.2"
    trace = world.read(host, "trace").split("\n")
    assert "demo-app_1.0.1 bin/stop.sh" in trace
    assert trace.index("demo-app_1.0.1 bin/stop.sh") < trace.index("demo-app_1.0.2 bin/start.sh")
    listing = world.on(host, f"ls {world.root}").split()
    assert "demo-app_1.0.0" not in listing and {"demo-app_1.0.1", "demo-app_1.0.2"} <= set(listing)
    packages = world.on(host, f"ls {world.root}/.slipway/packages").split()
    assert not any("1.0.0" in name for name in packages)
    kept = {h["host"]: h for h in world.environment_view()["hosts"]}["h0"]["kept_versions"]
    assert kept == ["1.0.1", "1.0.2"]


def test_a_failing_deploy_script_leaves_the_previous_release_running(world: World) -> None:
    world.setup()
    package(world, "1.0.0")
    world.deploy_and_wait(package="1.0.0")
    package(world, "1.0.1", extra_deploy='[ "$SLIPWAY_HOST" = h1 ] && exit 7; true')

    view = world.deploy_and_wait(package="1.0.1", strategy={"max_failures": 5})

    assert view["status"] == "failed"
    by_host = {h["host"]: h for h in view["hosts"]}
    assert by_host["h1"]["status"] == "failed" and by_host["h1"]["version"] == "1.0.0"
    assert "exit" in by_host["h1"]["error"]["message"]
    assert by_host["h0"]["status"] == by_host["h2"]["status"] == "succeeded"
    h1 = world.hosts[1]
    assert world.current(h1) == "demo-app_1.0.0"
    assert "demo-app_1.0.1" not in world.on(h1, f"ls {world.root}").split()
    assert view["error"]["code"] == "hosts_failed" and "h1" in view["error"]["message"]
    env_hosts = {h["host"]: h for h in world.environment_view()["hosts"]}
    assert env_hosts["h1"]["current_version"] == "1.0.0"
    assert env_hosts["h0"]["current_version"] == "1.0.1"


@SQLITE_ONLY
def test_a_health_check_that_never_passes_switches_back_and_restarts(world: World) -> None:
    world.setup()
    package(world, "1.0.0")
    world.deploy_and_wait(package="1.0.0")
    world.call(
        "PATCH",
        world.env_path(),
        json={"health_check": {"command": "test -f /nonexistent", "timeout": 1.5, "interval": 0.3}},
        expect=200,
    )
    package(world, "1.0.1")

    view = world.deploy_and_wait(package="1.0.1", hosts=["h0"])

    assert view["status"] == "failed"
    host = view["hosts"][0]
    assert host["error"]["code"] == "health_check_failed"
    assert world.current(world.hosts[0]) == "demo-app_1.0.0"
    trace = world.read(world.hosts[0], "trace").strip().split("\n")
    # new started, then stopped; the old one started again
    assert trace[-3:] == [
        "demo-app_1.0.1 bin/start.sh", "demo-app_1.0.1 bin/stop.sh", "demo-app_1.0.0 bin/start.sh"
    ]  # fmt: skip


@SQLITE_ONLY
def test_batches_stop_when_failures_exceed_the_budget(world: World) -> None:
    world.setup(strategy={"batch_size": 1, "max_failures": 0})
    package(world, "1.0.0", extra_deploy='[ "$SLIPWAY_HOST" = h0 ] && exit 1; true')

    view = world.deploy_and_wait(package="1.0.0")

    assert [h["status"] for h in view["hosts"]] == ["failed", "skipped", "skipped"]
    for host in world.hosts[1:]:
        assert world.on(host, f"ls {world.root} 2>/dev/null || true").strip() == ""


@SQLITE_ONLY
def test_canary_then_manual_continue(world: World) -> None:
    world.setup(strategy={"canary": 1, "pause": "manual"})
    package(world, "1.0.0")
    started = world.deploy(package="1.0.0")
    deployment_id = started["deployment"]["id"]

    view = world.wait(deployment_id, until=("awaiting_continue", "failed"))
    assert view["status"] == "awaiting_continue", view
    assert view["batches"] == [["h0"], ["h1", "h2"]]
    assert [h["status"] for h in view["hosts"]] == ["succeeded", "pending", "pending"]
    assert world.current(world.hosts[1]) == ""

    world.call(
        "POST", world.env_path(f"/deployments/{deployment_id}/continue"), expect=200, admin=False
    )
    view = world.wait(deployment_id)
    assert view["status"] == "succeeded"
    assert world.current(world.hosts[2]) == "demo-app_1.0.0"


@SQLITE_ONLY
def test_missing_variables_are_refused_before_any_host_is_touched(world: World) -> None:
    world.setup(variables={}, secret_variables={})
    package(world, "1.0.0")

    answer = world.client.post(
        world.env_path("/deployments"), headers=world.operator, json={"package": "1.0.0"}
    )

    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "missing_variables"
    assert error["details"]["missing"] == ["db_ip", "db_password", "name"]
    for name in ("db_ip", "db_password", "name"):
        assert name in error["message"]
    assert world.call("GET", world.env_path("/deployments"), expect=200)["items"] == []
    assert world.on(world.hosts[0], f"ls {world.root} 2>/dev/null || true").strip() == ""


def test_rollback_goes_back_to_the_previous_good_release(world: World) -> None:
    world.setup()
    for version in ("1.0.0", "1.0.1"):
        package(world, version)
        world.deploy_and_wait(package=version)

    answer = world.client.post(world.env_path("/rollback"), headers=world.operator, json={})
    assert answer.status_code == 202, answer.text
    view = world.wait(answer.json()["deployment"]["id"])

    assert view["status"] == "succeeded" and view["kind"] == "rollback"
    for host in world.hosts:
        assert world.current(host) == "demo-app_1.0.0"
    trace = world.read(world.hosts[0], "trace").strip().split("\n")
    assert trace[-2:] == ["demo-app_1.0.1 bin/stop.sh", "demo-app_1.0.0 bin/start.sh"]
    assert {h["current_version"] for h in world.environment_view()["hosts"]} == {"1.0.0"}


@SQLITE_ONLY
def test_rollback_refuses_a_release_that_never_worked(world: World) -> None:
    world.setup()
    package(world, "1.0.0")
    world.deploy_and_wait(package="1.0.0")
    package(world, "1.0.1", extra_deploy="exit 1")
    world.deploy_and_wait(package="1.0.1")

    answer = world.client.post(
        world.env_path("/rollback"), headers=world.operator, json={"to": "1.0.1"}
    )

    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "no_rollback_target"
    assert "1.0.1" in answer.json()["error"]["message"]
    assert world.current(world.hosts[0]) == "demo-app_1.0.0"


@SQLITE_ONLY
def test_flat_layout_restores_what_it_overwrote(world: World) -> None:
    world.setup(layout="flat")
    package(world, "1.0.0")
    assert world.deploy_and_wait(package="1.0.0")["status"] == "succeeded"
    host = world.hosts[0]
    assert world.read(host, ".slipway/version").strip() == "1.0.0"
    before = world.read(host, "conf/app.properties")
    assert "10.0.0.9" in before
    path = make_app_package(
        world.tmp_path,
        "demo-app",
        "1.0.1",
        {"conf/app.properties": "changed=[@db_ip]\n", "lib/new.txt": "new"},
        scripts=app_scripts(start='[ "$SLIPWAY_HOST" = h0 ] && exit 3; true'),
    )
    world.upload(path)

    view = world.deploy_and_wait(package="1.0.1", hosts=["h0"])

    assert view["status"] == "failed"
    assert world.read(host, "conf/app.properties") == before
    assert world.read(host, "lib/new.txt") == ""
    assert world.read(host, ".slipway/version").strip() == "1.0.0"


@SQLITE_ONLY
def test_an_environment_that_requires_approval_refuses_direct_deploys(world: World) -> None:
    world.setup(host_count=1, requires_approval=True)
    package(world, "1.0.0")

    answer = world.client.post(
        world.env_path("/deployments"), headers=world.operator, json={"package": "1.0.0"}
    )

    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "approval_required"
    assert world.call("GET", world.env_path("/deployments"))["items"] == []

"""What builds use: the registry of an image name, a login for the Docker engine (a real `docker
login` and push with the `$` of a robot account), manifests after a push, and system.check."""

from __future__ import annotations

import docker

from slipway.core.db import session_scope
from slipway.targets import registries
from slipway.targets.registry_client import RegistryClient
from tests.jobs.helpers import wait_status
from tests.targets.registries_support import SQLITE_ONLY, add_registry


@SQLITE_ONLY
def test_an_image_finds_its_registry_by_host_or_dns_alias(
    registry, token_registry, client, auth, settings
):
    add_registry(client, auth["admin"], registry, "local")
    add_registry(client, auth["admin"], token_registry, "harbor", dns_alias="harbor.alkaidos.cn")
    images = {
        f"{registry.address}/ns/ubuntu:tag": "local",
        f"{registry.address}/x/y@sha256:{'a' * 64}": "local",
        f"{token_registry.address}/base/ubuntu:18.04": "harbor",
        "harbor.alkaidos.cn/base/ubuntu:18.04": "harbor",
        "Harbor.Alkaidos.CN/base/ubuntu:18.04": "harbor",
        "10.101.12.128/songquanheng-zhejianglab.com/ubuntu:sqh-18.04": None,
        "127.0.0.1/ns/ubuntu:1": None,  # no port: another registry than 127.0.0.1:PORT
        "ubuntu:18.04": None,
        "library/ubuntu": None,
    }

    with session_scope(settings) as session:
        found = {
            image: getattr(registries.registry_for_image(session, image), "name", None)
            for image in images
        }

    assert found == images


@SQLITE_ONLY
def test_a_login_from_the_database_logs_the_docker_engine_in_and_pushes(
    registry, client, auth, settings, docker_engine
):
    add_registry(client, auth["admin"], registry)
    with session_scope(settings) as session:
        login = registries.registry_login(
            session, settings, registries.get_registry_or_raise(session, "local")
        )
    engine = docker.from_env()
    target = f"{registry.address}/slipway/pushed"

    try:
        answer = engine.login(
            username=login.username,
            password=login.password,
            registry=login.server,
            reauth=True,
        )
        engine.images.get("local/busybox:1").tag(target, "v1")
        chunks = list(
            engine.api.push(
                target,
                tag="v1",
                auth_config={"username": login.username, "password": login.password},
                stream=True,
                decode=True,
            )
        )
    finally:
        engine.images.remove(f"{target}:v1", noprune=True)
        engine.close()
    with RegistryClient(login) as reader:
        manifest = reader.manifest("slipway/pushed", "v1")

    assert login.username == "robot$slipway" and login.password == registry.password
    assert (login.server, login.base_url, login.verify) == (registry.address, registry.url, False)
    assert answer["Status"] == "Login Succeeded"
    assert not [chunk for chunk in chunks if "error" in chunk], chunks
    pushed = next(chunk["aux"]["Digest"] for chunk in chunks if "Digest" in chunk.get("aux", {}))
    assert manifest is not None and manifest.digest == pushed
    assert registry.manifest_digest("slipway/pushed", "v1") == pushed
    assert registry.tags("slipway/pushed") == ["v1"]


@SQLITE_ONLY
def test_a_bearer_registry_login_reads_what_was_pushed(
    registry, token_registry, client, auth, settings, docker_engine
):
    digest = registry.push("bearer/app", "2")  # the token registry shares the storage
    add_registry(client, auth["admin"], token_registry, "harbor")
    token_registry.tokens.requests.clear()
    with session_scope(settings) as session:
        login = registries.registry_login(
            session, settings, registries.get_registry_or_raise(session, "harbor")
        )

    with RegistryClient(login) as reader:
        manifest = reader.manifest("bearer/app", "2")
        tags = reader.tags("bearer/app")

    assert manifest is not None and manifest.digest == digest and tags == ["2"]
    assert {request["scope"] for request in token_registry.tokens.requests} == {
        "repository:bearer/app:pull"
    }


@SQLITE_ONLY
def test_check_registries_logs_in_to_each_and_records_the_outcome(
    registry, token_registry, client, auth, settings
):
    add_registry(client, auth["admin"], registry, "local")
    token_registry.add_user("robot$gone", "gone-password-1")
    add_registry(
        client,
        auth["admin"],
        token_registry,
        "harbor",
        username="robot$gone",
        password="gone-password-1",
    )
    token_registry.tokens.users.pop("robot$gone")  # the robot account was deleted in Harbor

    with session_scope(settings) as session:
        results = registries.check_registries(session, settings)
    with session_scope(settings) as session:
        recorded = {row.name: row.last_error for row in registries.list_registries(session)}

    by_name = {result["name"]: result for result in results}
    assert set(by_name) == {"registry:local", "registry:harbor"}
    assert by_name["registry:local"]["ok"] is True
    assert by_name["registry:local"]["details"]["auth"] == "basic"
    assert by_name["registry:harbor"]["ok"] is False
    assert by_name["registry:harbor"]["details"]["code"] == "registry_auth_failed"
    assert recorded["local"] is None and recorded["harbor"]["code"] == "registry_auth_failed"


@SQLITE_ONLY
def test_system_check_includes_every_registry(registry, client, auth, settings, processes):
    add_registry(client, auth["admin"], registry, "local")
    processes.worker()

    response = client.post("/api/v1/system/check", headers=auth["operator"])
    # Only the registry's line is under test here; the others (Docker, workers) have their own.
    done = wait_status(settings, response.json()["operation"]["id"], "succeeded", "failed")

    checks = {check["name"]: check for check in done.result["checks"]}
    assert checks["registry:local"]["ok"] is True, done.result
    assert "robot$slipway" in checks["registry:local"]["message"]
    log = client.get(f"/api/v1/operations/{done.id}/logs", headers=auth["viewer"]).text
    assert "ok   registry:local" in log and registry.password not in log

"""`POST /api/v1/builds` end to end: a spec in, an image in the registry and a callback out."""

from __future__ import annotations

import copy

import pytest

from tests.builds import support
from tests.builds.jobs.support import (
    BUSYBOX,
    Receiver,
    add_registry,
    assert_succeeded,
    log_text,
    wait_until_final,
)
from tests.conftest import bearer, wait_for

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

SEED_REQUEST = support.SEED_REQUEST


def native_spec(registry, repo: str, **extra) -> dict:
    return {
        "task_name": "native-1",
        "base_image": BUSYBOX,
        "target_image": f"{registry.address}/{repo}:1",
        "labels": {"team": "qa"},
        **extra,
    }


def test_a_native_spec_is_built_pushed_and_called_back_with_the_configured_headers(
    builds_env, settings, client, tokens, registry, repo, worker
):
    add_registry(client, tokens["admin"], registry)
    put = client.put(
        "/api/v1/settings/callback-headers",
        json={"X-BizType": "DROS", "X-Login-UserId": "1", "Content-Type": "application/json"},
        headers=bearer(tokens["admin"]),
    )
    assert put.status_code == 200, put.text
    receiver = Receiver()
    try:
        answer = client.post(
            "/api/v1/builds",
            json=native_spec(registry, repo, callback_url=receiver.url),
            headers=bearer(tokens["operator"]),
        )
        assert answer.status_code == 202, answer.text
        build, operation = answer.json()["build"], answer.json()["operation"]
        assert answer.headers["location"].endswith(f"/api/v1/operations/{operation['id']}")
        assert build["status"] == "queued" and build["source_format"] == "native"

        assert_succeeded(settings, operation["id"])
        wait_for(lambda: receiver.requests, timeout=30, what="the callback")
    finally:
        receiver.close()

    shown = client.get(f"/api/v1/builds/{build['id']}", headers=bearer(tokens["viewer"])).json()
    assert shown["status"] == "succeeded"
    assert shown["digest"] == registry.manifest_digest(repo, "1")
    dockerfile = client.get(
        f"/api/v1/builds/{build['id']}/dockerfile", headers=bearer(tokens["viewer"])
    )
    assert dockerfile.headers["content-type"].startswith("text/plain")
    assert dockerfile.text.startswith("# ") or "FROM local/busybox:1" in dockerfile.text
    assert "team" in dockerfile.text
    callback = receiver.requests[0]
    assert callback["headers"]["X-BizType"] == "DROS"
    assert callback["headers"]["X-Login-UserId"] == "1"
    assert callback["json"]["status"] == "succeeded"
    assert callback["json"]["task_name"] == "native-1"
    assert callback["json"]["digest"] == shown["digest"]
    listed = client.get("/api/v1/builds?task_name=native-1", headers=bearer(tokens["viewer"]))
    assert [item["id"] for item in listed.json()["items"]] == [build["id"]]


def test_the_seed_request_as_sent_is_understood_and_refused_only_for_its_unknown_registry(
    builds_env, settings, client, tokens
):
    answer = client.post("/api/v1/builds", json=SEED_REQUEST, headers=bearer(tokens["operator"]))

    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "registry_not_configured"
    assert error["details"]["field"] == "task_data.target_image_name"
    assert "10.101.12.128" in error["message"]
    assert client.get("/api/v1/builds", headers=bearer(tokens["viewer"])).json()["items"] == []


def test_the_seed_request_pushes_to_the_registry_its_dns_alias_names(
    builds_env, settings, client, tokens, registry
):
    answer = client.post(
        "/api/v1/registries",
        json={
            "name": "harbor",
            "url": registry.address,
            "dns_alias": "10.101.12.128",
            "username": registry.username,
            "password": registry.password,
        },
        headers=bearer(tokens["admin"]),
    )
    assert answer.status_code == 201, answer.text
    request = copy.deepcopy(SEED_REQUEST)
    request["task_data"]["callback_url"] = "http://127.0.0.1:9/callback"

    accepted = client.post("/api/v1/builds", json=request, headers=bearer(tokens["operator"]))

    assert accepted.status_code == 202, accepted.text
    build = accepted.json()["build"]
    assert build["registry"] == "harbor"
    assert build["source_format"] == "fastbuild"
    dockerfile = client.get(
        f"/api/v1/builds/{build['id']}/dockerfile", headers=bearer(tokens["viewer"])
    ).text
    assert "FROM harbor.alkaidos.cn/base/ubuntu:18.04" in dockerfile
    assert "1597398607723978754" in dockerfile


def test_a_callback_to_a_forbidden_address_is_refused_before_anything_is_saved(
    settings, client, tokens, registry
):
    add_registry(client, tokens["admin"], registry)
    answer = client.post(
        "/api/v1/builds",
        json=native_spec(registry, "x/y", callback_url="http://169.254.169.254/latest/meta-data"),
        headers=bearer(tokens["operator"]),
    )

    assert answer.status_code in (400, 422), answer.text
    assert answer.json()["error"]["details"]["field"] == "callback_url"
    assert client.get("/api/v1/builds", headers=bearer(tokens["viewer"])).json()["items"] == []


def test_an_unknown_endpoint_is_refused(settings, client, tokens, registry):
    add_registry(client, tokens["admin"], registry)
    answer = client.post(
        "/api/v1/builds?endpoint=nowhere",
        json=native_spec(registry, "x/y"),
        headers=bearer(tokens["operator"]),
    )

    assert answer.status_code == 404, answer.text
    assert "nowhere" in answer.json()["error"]["message"]


def test_cancel_of_a_finished_build_names_its_state(
    settings, client, tokens, registry, repo, worker
):
    add_registry(client, tokens["admin"], registry)
    answer = client.post(
        "/api/v1/builds", json=native_spec(registry, repo), headers=bearer(tokens["operator"])
    )
    build, operation = answer.json()["build"], answer.json()["operation"]
    wait_until_final(settings, operation["id"])

    refused = client.post(
        f"/api/v1/builds/{build['id']}/cancel", headers=bearer(tokens["operator"])
    )

    assert refused.status_code == 409
    assert refused.json()["error"]["details"]["status"] == "succeeded"


def test_an_unchanged_spec_rebuilt_hits_the_cache_on_every_step(
    settings, client, tokens, registry, repo, worker
):
    add_registry(client, tokens["admin"], registry)
    spec = native_spec(registry, repo)
    operations = []
    for _ in range(2):
        answer = client.post("/api/v1/builds", json=spec, headers=bearer(tokens["operator"]))
        operations.append(answer.json()["operation"]["id"])
        assert_succeeded(settings, operations[-1])

    second = log_text(settings, operations[1])
    steps = [line for line in second.splitlines() if line.startswith("Step ")]
    assert steps and second.count("Using cache") >= len(steps) - 1

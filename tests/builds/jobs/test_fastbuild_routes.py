"""FastBuild's own routes under /api/fast-build/, in its {code, message, data} shape."""

from __future__ import annotations

import copy
import io
import tarfile

import pytest

from tests.builds.jobs.support import BUSYBOX, assert_succeeded
from tests.builds.jobs.test_builds_api import SEED_REQUEST
from tests.conftest import bearer

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
CONFIG = "/api/fast-build/config/config-fastbuild"


def jenkins_tar(tls_engine) -> bytes:
    """The TLS tar as FastBuild's operators make it: a folder with its `-jenkins` file names."""
    buffer = io.BytesIO()
    members = {
        "tls/ca-jenkins.pem": tls_engine.ca_pem,
        "tls/cert-jenkins.pem": tls_engine.client.cert_pem,
        "tls/key-jenkins.pem": tls_engine.client.key_pem,
    }
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def configure(client, token, registry, tls_engine, *, password=None):
    host, port = tls_engine.url.removeprefix("tcp://").rsplit(":", 1)
    return client.post(
        CONFIG,
        data={
            "fastbuild_host": "127.0.0.1",
            "fastbuild_port": "48001",
            "harbor_username": registry.username,
            "harbor_password": password or registry.password,
            "harbor_registry": registry.address,
            "harbor_registry_dns": "10.101.12.128",
            "docker_host": host,
            "docker_port": port,
        },
        files={"docker_tls_tar_file": ("tls.tar", jenkins_tar(tls_engine), "application/x-tar")},
        headers=bearer(token),
    )


def test_config_fastbuild_then_build_image_builds_on_the_tls_server_and_pushes(
    builds_env, settings, client, tokens, registry, repo, tls_engine, worker
):
    configured = configure(client, tokens["admin"], registry, tls_engine)
    assert configured.status_code == 200, configured.text
    body = configured.json()
    assert body["code"] == 200
    assert body["data"]["harbor"]["username"] == registry.username  # the `$` survived
    assert body["data"]["docker_server"]["tls"] is True
    assert registry.password not in configured.text

    request = copy.deepcopy(SEED_REQUEST)
    request["task_data"]["target_image_name"] = f"{registry.address}/{repo}:sqh-18.04"
    request["task_data"]["callback_url"] = "http://127.0.0.1:9/callback"
    request["dockerfile_json"]["base_image"] = BUSYBOX
    installers = request["dockerfile_json"]["image_installer_config"]
    installers["package_manager_installer_config"]["source"] = {
        "installer_name": "",
        "type": "",
        "file_name": "",
    }
    installers["python_env"]["install_loc"] = ""
    answer = client.post(
        "/api/fast-build/image/build-image", json=request, headers=bearer(tokens["operator"])
    )
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert answer.json()["code"] == 200 and data["task_id"] > 0

    assert_succeeded(settings, data["operation_id"])
    tasks = client.get("/api/fast-build/image/tasks", headers=bearer(tokens["viewer"])).json()
    assert [task["task_id"] for task in tasks["data"]] == [data["task_id"]]
    assert tasks["data"][0]["endpoint"] == "fastbuild-docker"
    image = request["task_data"]["target_image_name"]
    checked = client.post(
        "/api/fast-build/image/check-image",
        params={"image_name": image},
        headers=bearer(tokens["operator"]),
    ).json()
    assert checked["code"] == 200 and checked["data"]["exists"] is True
    assert checked["data"]["digest"] == registry.manifest_digest(repo, "sqh-18.04")
    assert tls_engine.cli("image", "inspect", image).returncode == 0


def test_a_wrong_harbor_password_is_refused_in_fastbuilds_shape_and_nothing_is_saved(
    settings, client, tokens, registry, tls_engine
):
    answer = configure(client, tokens["admin"], registry, tls_engine, password="wrong-password")

    assert answer.status_code in (400, 422), answer.text
    body = answer.json()
    assert set(body) == {"code", "message", "data"}
    assert body["code"] == answer.status_code
    assert body["data"]["error"]["details"]["field"].endswith("password")
    assert "wrong-password" not in answer.text
    shown = client.get(CONFIG, headers=bearer(tokens["admin"])).json()["data"]
    assert shown["docker_server"] is None and shown["harbor"] is None


def test_fastbuild_routes_want_a_token_and_answer_in_their_shape(settings, client):
    answer = client.get("/api/fast-build/image/tasks")

    assert answer.status_code == 401
    assert answer.json()["code"] == 401
    assert answer.json()["data"]["error"]["code"] == "unauthenticated"


def test_update_headers_are_what_the_next_callback_carries(settings, client, tokens):
    answer = client.post(
        "/api/fast-build/config/update-headers",
        json={"X-BizType": "DROS", "X-Login-UserId": "1", "Content-Type": "application/json"},
        headers=bearer(tokens["admin"]),
    )

    assert answer.status_code == 200, answer.text
    shown = client.get("/api/v1/settings/callback-headers", headers=bearer(tokens["viewer"]))
    assert shown.json()["headers"]["X-BizType"] == "DROS"


def test_test_callback_without_any_callback_yet_says_so(settings, client, tokens):
    answer = client.post("/api/fast-build/config/test-callback", headers=bearer(tokens["operator"]))

    assert answer.status_code in (404, 409), answer.text
    assert answer.json()["code"] == answer.status_code


def test_pull_image_brings_a_registry_image_onto_the_build_engine(
    settings, client, tokens, registry, repo, tls_engine
):
    assert configure(client, tokens["admin"], registry, tls_engine).status_code == 200
    registry.push(repo, "base")
    image = f"{registry.address}/{repo}:base"

    answer = client.post(
        "/api/fast-build/image/pull-image",
        params={"image_name": image},
        headers=bearer(tokens["operator"]),
    )

    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["endpoint"] == "fastbuild-docker"
    assert tls_engine.cli("image", "inspect", image).returncode == 0
    missing = client.post(
        "/api/fast-build/image/check-image",
        params={"image_name": f"{registry.address}/{repo}:nope"},
        headers=bearer(tokens["operator"]),
    ).json()
    assert missing["code"] == 200 and missing["data"]["exists"] is False


def test_a_docker_server_that_does_not_answer_is_refused_and_nothing_is_saved(
    settings, client, tokens
):
    answer = client.post(
        "/api/fast-build/config/update-docker-server",
        data={"host": "127.0.0.1", "port": "9"},
        headers=bearer(tokens["admin"]),
    )

    assert answer.status_code == 503, answer.text
    assert answer.json()["code"] == 503
    assert answer.json()["data"]["error"]["code"] == "endpoint_unreachable"
    shown = client.get(CONFIG, headers=bearer(tokens["admin"])).json()["data"]
    assert shown["docker_server"] is None

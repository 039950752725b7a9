"""The built-in library installs unmodified (on a stand-in image tagged as its template expects),
the privilege policy can be lifted per source by an admin, and the `slipway apps` CLI."""

from __future__ import annotations

import io
import subprocess

import httpx
import pytest

from tests.api.helpers import assert_error
from tests.conftest import SLIPWAY, bearer, wait_for
from tests.jobs.helpers import wait_status

pytestmark = pytest.mark.usefixtures("apps_env")

STAND_IN = """\
FROM local/busybox:1
RUN mkdir -p /usr/share/nginx/html /etc/nginx/conf.d \\
 && echo 'stand-in nginx' > /usr/share/nginx/html/index.html
CMD ["httpd", "-f", "-p", "80", "-h", "/usr/share/nginx/html"]
STOPSIGNAL SIGKILL
"""


@pytest.fixture(scope="session")
def nginx_stand_in(engine) -> str:
    """`nginx:1.28` built from busybox: no registry is reachable here."""
    engine.images.build(
        fileobj=io.BytesIO(STAND_IN.encode()), tag="nginx:1.28", rm=True, network_mode="none"
    )
    return "nginx:1.28"


def test_the_built_in_nginx_template_installs_unmodified(
    settings, worker, client, tokens, app_name, port, nginx_stand_in, engine
):
    response = client.post(
        "/api/v1/apps",
        json={"app": "nginx", "name": app_name, "settings": {"W9_HTTP_PORT_SET": port}},
        headers=bearer(tokens["operator"]),
    )
    assert response.status_code == 202, response.text
    assert response.json()["app"]["source"] == "builtin"
    wait_status(settings, response.json()["operation"]["id"], "succeeded", timeout=90)
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text.strip() == "stand-in nginx"
    shown = client.get(f"/api/v1/apps/{app_name}", headers=bearer(tokens["viewer"])).json()
    assert shown["status"] == "running" and shown["version"] == "1.28"
    assert engine.networks.list(names=["slipway"])


def test_an_admin_may_allow_privileged_templates_per_source(
    settings, worker, client, tokens, app_name
):
    refused = client.post(
        "/api/v1/apps", json={"app": "priv", "name": app_name}, headers=bearer(tokens["operator"])
    )
    error = assert_error(refused, 422, "policy_refused")
    assert "privileged" in error["message"] and "host network" in error["message"]
    assert "/var/run/docker.sock" in error["message"]
    source = client.get("/api/v1/catalog/priv", headers=bearer(tokens["viewer"])).json()["source"]
    by_operator = client.patch(
        f"/api/v1/catalog-sources/{source}",
        json={"allow_privileged": True},
        headers=bearer(tokens["operator"]),
    )
    assert_error(by_operator, 403, "forbidden")
    allowed = client.patch(
        f"/api/v1/catalog-sources/{source}",
        json={"allow_privileged": True},
        headers=bearer(tokens["admin"]),
    )
    assert allowed.status_code == 200, allowed.text
    response = client.post(
        "/api/v1/apps", json={"app": "priv", "name": app_name}, headers=bearer(tokens["operator"])
    )
    assert response.status_code == 202, response.text
    # Whether a privileged container may start depends on the host (this sandbox refuses the
    # capabilities); the policy's part is that slipway now hands it to compose.
    op_id = response.json()["operation"]["id"]
    wait_status(settings, op_id, "succeeded", "failed", timeout=90)
    log = client.get(f"/api/v1/operations/{op_id}/logs", headers=bearer(tokens["viewer"])).text
    assert "==> docker compose up" in log and "policy" not in log


def cli(settings, env, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SLIPWAY, "apps", *args],
        env={**env, "SLIPWAY_URL": env["SLIPWAY_URL"], "SLIPWAY_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_apps_cli_installs_lists_stops_and_uninstalls(
    settings, apps_env, worker, tokens, app_name, port
):
    url = worker.api()
    env = {**apps_env, "SLIPWAY_URL": url}
    found = cli(settings, env, tokens["viewer"], "catalog", "tiny")
    assert found.returncode == 0, found.stderr
    assert "web" in found.stdout and "Tiny Web" in found.stdout
    installed = cli(
        settings,
        env,
        tokens["operator"],
        "install",
        "web",
        app_name,
        "-s",
        f"W9_HTTP_PORT_SET={port}",
        "--wait",
    )
    assert installed.returncode == 0, installed.stderr
    assert "W9_POWER_PASSWORD=" in installed.stdout and "shown once" in installed.stdout
    assert "docker compose up" in installed.stdout
    listed = cli(settings, env, tokens["viewer"], "list")
    assert any(
        line.split()[:3] == [app_name, "local", "running"] for line in listed.stdout.splitlines()
    )
    again = cli(settings, env, tokens["operator"], "install", "web", app_name)
    assert again.returncode == 4
    assert again.stderr.startswith("error: app_exists") and len(again.stderr.splitlines()) == 1
    stopped = cli(settings, env, tokens["operator"], "stop", app_name, "--wait")
    assert stopped.returncode == 0, stopped.stderr
    refused = cli(settings, env, tokens["operator"], "stop", app_name)
    assert refused.returncode == 4 and "allowed: start" in refused.stderr
    logs = cli(settings, env, tokens["viewer"], "logs", app_name)
    assert "web | serving" in logs.stdout
    viewer = cli(settings, env, tokens["viewer"], "uninstall", app_name)
    assert viewer.returncode == 5
    gone = cli(settings, env, tokens["operator"], "uninstall", app_name, "--purge", "--wait")
    assert gone.returncode == 0, gone.stderr
    wait_for(
        lambda: cli(settings, env, tokens["viewer"], "show", app_name).returncode == 3,
        timeout=10,
        what="the app to be gone",
    )

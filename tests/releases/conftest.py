"""A release world for tests: real sshd hosts, the API in-process, a real worker.

`world` makes a credential (the farm's key), hosts h0..h2 pinned by a real handshake, a group,
a project `demo` and an environment `prod` whose deploy root is a fresh directory under /srv
on every host, so tests sharing the session's farm never see each other's files.
"""

from __future__ import annotations

import base64
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from tests.conftest import Processes, bearer, wait_for
from tests.support.sshd import SSHFarm

FINAL = ("succeeded", "failed", "canceled")
# The release flow's SQL is the same on both backends; each module runs its core tests on both
# and the rest on SQLite alone, to keep the suite's time in bounds.
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


class World:
    def __init__(
        self,
        client: Any,
        tokens: dict[str, str],
        farm: SSHFarm,
        tmp_path: Path,
        processes: Processes,
    ) -> None:
        self.client = client
        self.admin = bearer(tokens["admin"])
        self.operator = bearer(tokens["operator"])
        self.farm = farm
        self.tmp_path = tmp_path
        self.processes = processes
        self.root = f"/srv/t{uuid.uuid4().hex[:10]}"
        self.project = "demo"
        self.environment = "prod"
        self.hosts = farm.hosts[:3]
        self.private_key: str | None = None

    # --- set-up --------------------------------------------------------------------------------

    def setup(self, host_count: int = 3, kind: str = "wecube", **environment: Any) -> World:
        self.hosts = self.farm.hosts[:host_count]
        self.call(
            "POST",
            "/api/v1/credentials",
            json={
                "name": "farm-key",
                "kind": "ssh_key",
                "private_key": self.farm.client_private_key,
            },
            expect=201,
        )
        for host in self.hosts:
            self.call(
                "POST",
                "/api/v1/hosts",
                json={
                    "name": host.name,
                    "address": host.address,
                    "port": host.port,
                    "user": "root",
                    "credential": "farm-key",
                },
                expect=201,
            )
        self.call(
            "POST",
            "/api/v1/host-groups",
            json={"name": "web", "hosts": [h.name for h in self.hosts]},
            expect=201,
        )
        self.call("POST", "/api/v1/projects", json={"name": self.project, "kind": kind}, expect=201)
        body = {
            "name": self.environment,
            "host_group": "web",
            "deploy_root": self.root,
            "variables": {"db_ip": "10.0.0.9", "name": "shop"},
            "secret_variables": {"db_password": "s3cret-Value-42"},
            "generate_key_pair": True,
            **environment,
        }
        created = self.call(
            "POST", f"/api/v1/projects/{self.project}/environments", json=body, expect=201
        )
        self.private_key = created.get("generated_private_key")
        return self

    # --- calls ---------------------------------------------------------------------------------

    def call(
        self, method: str, path: str, *, expect: int | None = None, admin: bool = True, **kw: Any
    ) -> Any:
        answer = self.client.request(
            method, path, headers=self.admin if admin else self.operator, **kw
        )
        if expect is not None:
            assert answer.status_code == expect, answer.text
        return answer.json() if answer.content else None

    def env_path(self, suffix: str = "") -> str:
        return f"/api/v1/projects/{self.project}/environments/{self.environment}{suffix}"

    def upload(self, path: Path, expect: int = 201) -> Any:
        with path.open("rb") as handle:
            answer = self.client.post(
                f"/api/v1/projects/{self.project}/packages",
                headers=self.operator,
                files={"file": (path.name, handle, "application/gzip")},
            )
        assert answer.status_code == expect, answer.text
        return answer.json()

    def deploy(self, expect: int = 202, **body: Any) -> Any:
        answer = self.client.post(self.env_path("/deployments"), headers=self.operator, json=body)
        assert answer.status_code == expect, answer.text
        return answer.json()

    def deployment(self, deployment_id: int) -> Any:
        return self.call("GET", self.env_path(f"/deployments/{deployment_id}"), expect=200)

    def wait(
        self, deployment_id: int, *, timeout: float = 60, until: tuple[str, ...] = FINAL
    ) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            view = self.deployment(deployment_id)
            if view["status"] in until:
                return view
            if time.monotonic() > deadline:
                raise AssertionError(f"deployment still {view['status']}: {view}")
            time.sleep(0.1)

    def deploy_and_wait(self, **body: Any) -> Any:
        started = self.deploy(**body)
        return self.wait(started["deployment"]["id"])

    def operation_log(self, operation_id: str) -> str:
        answer = self.client.get(f"/api/v1/operations/{operation_id}/logs", headers=self.admin)
        assert answer.status_code == 200, answer.text
        return answer.text

    def environment_view(self) -> Any:
        return self.call("GET", self.env_path(), expect=200)

    # --- looking at the hosts ------------------------------------------------------------------

    def on(self, host: Any, command: str) -> str:
        return self.farm.run_on(host, command).stdout

    def current(self, host: Any) -> str:
        return self.on(host, f"readlink {self.root}/current || true").strip()

    def read(self, host: Any, path: str) -> str:
        return self.on(host, f"cat {self.root}/{path} 2>/dev/null || true")

    def decrypt(self, ciphertext: str) -> str:
        assert self.private_key
        key = serialization.load_pem_private_key(self.private_key.encode(), password=None)
        return key.decrypt(  # type: ignore[union-attr]
            base64.b64decode(ciphertext),
            padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
        ).decode()


@pytest.fixture
def world(client, tokens, ssh_farm, tmp_path, processes, settings) -> World:  # noqa: F811
    processes.worker()
    return World(client, tokens, ssh_farm, tmp_path, processes)


def script(body: str) -> str:
    return "#!/bin/sh\nset -e\n" + body + "\n"


def app_scripts(extra_deploy: str = "", start: str = "", stop: str = "") -> dict[str, str]:
    """Scripts that leave traces in <deploy root>/trace: which release ran what, in order."""
    trace = 'echo "$(basename "$SLIPWAY_RELEASE_DIR") $0" >> "$SLIPWAY_DEPLOY_ROOT/trace"'
    return {
        "bin/1_deploy.sh": script(trace + "\n" + extra_deploy),
        "bin/2_deploy.sh": script(trace),
        "bin/start.sh": script(trace + "\n" + start),
        "bin/stop.sh": script(trace + "\n" + stop),
    }


def wait_until(predicate: Any, what: str, timeout: float = 30) -> Any:
    return wait_for(predicate, timeout=timeout, what=what)

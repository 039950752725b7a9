"""`slipway builds …` through a real API and worker: submit a spec file, follow, read back."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from slipway.core.config import Settings
from tests.cli.helpers import invoke, ok, one_error_line
from tests.conftest import Processes, make_user
from tests.support.registry import RegistryServer

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _remove_image(name: str) -> None:
    import docker

    client = docker.from_env()
    try:
        client.images.remove(name, force=True)
    except docker.errors.ImageNotFound:
        pass
    finally:
        client.close()


@SQLITE_ONLY
def test_submit_follow_status_dockerfile_and_list(
    env: dict[str, str],
    settings: Settings,
    processes: Processes,
    registry: RegistryServer,
    tmp_path: Path,
) -> None:
    cli = {
        **env,
        "SLIPWAY_URL": processes.api(),
        "SLIPWAY_TOKEN": make_user(settings, "ops", "admin"),
    }
    processes.worker()
    ok(
        invoke(
            "registries", "add", "local", "--url", registry.address, "--username",
            registry.username, "--password-stdin", stdin=f"{registry.password}\n", env=cli,
        )
    )  # fmt: skip
    repo = f"slipway-test/cli{uuid.uuid4().hex[:8]}"
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "task_name": "from-the-cli",
                "base_image": "local/busybox:1",
                "target_image": f"{registry.address}/{repo}:1",
            }
        )
    )

    try:
        submitted = ok(invoke("builds", "submit", str(spec), "--follow", env=cli))
    finally:
        _remove_image(f"{registry.address}/{repo}:1")
    build_id = submitted.split()[1]
    status = json.loads(ok(invoke("builds", "status", build_id, env=cli)))
    dockerfile = ok(invoke("builds", "dockerfile", build_id, env=cli))
    listed = ok(invoke("builds", "list", env=cli))
    logs = ok(invoke("builds", "logs", build_id, env=cli))

    assert submitted.startswith(f"build {build_id} (from-the-cli) queued as operation ")
    assert "==> push" in submitted
    assert status["status"] == "succeeded"
    assert status["digest"] == registry.manifest_digest(repo, "1")
    assert "FROM local/busybox:1" in dockerfile
    assert listed.split()[:3] == [build_id, "succeeded", "from-the-cli"]
    assert f"verified {registry.address}/{repo}:1@" in logs


@SQLITE_ONLY
def test_a_spec_that_is_not_json_is_refused_in_one_line(
    env: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text("{not json")
    cli = {**env, "SLIPWAY_URL": "http://127.0.0.1:9", "SLIPWAY_TOKEN": "x"}

    result = invoke("builds", "submit", str(spec), env=cli)

    one_error_line(result, exit_code=2, contains="is not valid JSON")

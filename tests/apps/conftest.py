"""A real Docker engine and a catalog of small busybox apps (tests/apps/library) for app tests."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from slipway.core.config import get_settings
from tests.conftest import Processes, free_port

LIBRARY = Path(__file__).resolve().parent / "library"
TEST_NETWORK = "slipway-test"


@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    """The local engine, with the busybox images the test templates use."""
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means there is no engine here
        pytest.skip(f"no Docker engine on /var/run/docker.sock ({exc}); run `make test`")
    try:
        image = client.images.get("local/busybox:1")
    except docker.errors.ImageNotFound:
        pytest.skip("image local/busybox:1 is missing; `make test` builds it")
    image.tag("local/busybox", "2")
    return client


@pytest.fixture
def apps_env(env, engine, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """SLIPWAY_CATALOG_DIRS points at the test library; request it before `settings`."""
    monkeypatch.setenv("SLIPWAY_CATALOG_DIRS", str(LIBRARY))
    get_settings.cache_clear()
    env["SLIPWAY_CATALOG_DIRS"] = str(LIBRARY)
    return env


@pytest.fixture
def app_name(engine) -> Iterator[str]:
    """A fresh app name; whatever the test leaves on the engine under it is removed."""
    name = f"t{uuid.uuid4().hex[:10]}"
    yield name
    cleanup_project(engine, name)


def cleanup_project(engine: docker.DockerClient, name: str) -> None:
    label = f"com.docker.compose.project={name}"
    for container in engine.containers.list(all=True, filters={"label": label}):
        container.remove(force=True)
    for volume in engine.volumes.list(filters={"label": label}):
        volume.remove(force=True)


@pytest.fixture
def worker(apps_env, settings, processes: Processes) -> Processes:
    processes.env.update(apps_env)
    processes.worker()
    return processes


@pytest.fixture
def port() -> int:
    return free_port()


def compose_up_by_hand(directory: Path, project: str) -> None:
    """Start a compose project the way a user (or Websoft9) would, outside slipway."""
    subprocess.run(
        ["docker-compose", "-p", project, "up", "-d"],
        cwd=directory,
        check=True,
        capture_output=True,
    )

"""Fixtures of the build job tests: the local engine, a fresh repository, a worker."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from tests.builds.jobs.support import BUSYBOX


@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    try:
        client = docker.from_env()
        client.ping()
        client.images.get(BUSYBOX)
    except Exception as exc:  # noqa: BLE001 - any failure means there is nothing to build on
        pytest.skip(f"no Docker engine with {BUSYBOX} here ({exc}); run `make test`")
    return client


@pytest.fixture
def repo(registry: Any, engine: docker.DockerClient) -> Iterator[str]:
    """A fresh repository name in the test registry; local images of it are removed after."""
    name = f"slipway-test/b{uuid.uuid4().hex[:10]}"
    yield name
    for image in engine.images.list(name=f"{registry.address}/{name}"):
        for tag in image.tags:
            engine.images.remove(tag, force=True)


# The seed's own [aes] section: FastBuild's clients encrypt webSSHSecret/jupyterLabSecret with it.
SEED_AES_KEY = "c7e71f37dda040fd"
SEED_AES_IV = "0000000000000000"


@pytest.fixture
def builds_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Callbacks to this machine allowed, the seed's AES key set; request it before `settings`."""
    from slipway.core.config import get_settings

    values = {
        "SLIPWAY_OUTBOUND_ALLOW": "127.0.0.1/32",
        "SLIPWAY_FASTBUILD_AES_KEY": SEED_AES_KEY,
        "SLIPWAY_FASTBUILD_AES_IV": SEED_AES_IV,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    env.update(values)
    get_settings.cache_clear()
    return env


@pytest.fixture
def worker(settings: Any, processes: Any) -> Any:
    processes.worker()
    return processes


@pytest.fixture(scope="session")
def tls_engine(engine: docker.DockerClient) -> Iterator[Any]:
    """A second dockerd that speaks only TLS (FastBuild's remote Docker server), with busybox."""
    from tests.conftest import free_port
    from tests.targets.engines import start_tls_engine, tls_engine_problem

    problem = tls_engine_problem()
    if problem:
        pytest.skip(problem)
    remote = start_tls_engine(free_port())
    try:
        image = b"".join(engine.images.get(BUSYBOX).save(named=True))
        with tempfile.NamedTemporaryFile(suffix=".tar") as archive:
            archive.write(image)
            archive.flush()
            loaded = remote.cli("load", "-i", archive.name)
            assert loaded.returncode == 0, loaded.stderr
        yield remote
    finally:
        remote.stop()

"""A second Docker engine for the remote app tests: tests/targets' TLS-only dockerd, plus what the
app tests need of it (the test image loaded, a stop that keeps its data, a restart, cleanup).

The engine reuses `start_tls_engine`: its own CA, data root and exec root, reachable only over
tcp+TLS. Stopping it keeps the data root (and so the loaded image); `restart` starts the very same
dockerd command line again, on the same port with the same certificates.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker

from slipway.remote.docker import EngineSpec, TLSMaterial, docker_client
from tests.targets.engines import START_TIMEOUT, TLSEngine

PROJECT_LABEL = "com.docker.compose.project"


def load_image(engine: TLSEngine, image: str) -> None:
    """`docker save IMAGE | docker -H tcp://… --tlsverify … load`: the engine has its own store."""
    with tempfile.TemporaryDirectory(prefix="slw-img-") as directory:
        archive = Path(directory) / "image.tar"
        subprocess.run(
            ["docker", "save", "-o", str(archive), image],
            check=True,
            capture_output=True,
            timeout=60,
        )
        loaded = engine.cli("load", "-i", str(archive))
    assert loaded.returncode == 0, f"loading {image} failed: {loaded.stderr}"


def spec_of(engine: TLSEngine, name: str = "remote") -> EngineSpec:
    return EngineSpec(
        name=name,
        url=engine.url,
        tls=TLSMaterial(
            ca_pem=engine.ca_pem,
            cert_pem=engine.client.cert_pem,
            key_pem=engine.client.key_pem,
        ),
    )


@contextmanager
def client_of(engine: TLSEngine) -> Iterator[docker.DockerClient]:
    with docker_client(spec_of(engine), timeout=30) as client:
        yield client


def is_running(engine: TLSEngine) -> bool:
    return engine.process is not None and engine.process.poll() is None


def freeze(engine: TLSEngine) -> None:
    """SIGSTOP: the engine accepts connections (the kernel does) but answers nothing."""
    assert engine.process is not None
    os.kill(engine.process.pid, signal.SIGSTOP)


def go_away(engine: TLSEngine, timeout: float = 30) -> None:
    """Stop the dockerd (frozen or not) and wait until it has exited; its data root stays."""
    process = engine.process
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    os.kill(process.pid, signal.SIGCONT)  # a frozen dockerd handles the SIGTERM once it runs
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def restart(engine: TLSEngine) -> None:
    """Start the same dockerd again (same port, certificates and data root); returns once
    `docker info` answers."""
    assert engine.process is not None
    go_away(engine)
    command = list(engine.process.args)  # type: ignore[arg-type]
    with open(engine.log_path, "ab") as log:
        engine.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if engine.process.poll() is not None:
            raise RuntimeError(f"the TLS dockerd exited at restart:\n{engine.log()}")
        result = engine.cli("info", "--format", "{{.ServerVersion}}")
        if result.returncode == 0 and result.stdout.strip():
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the TLS dockerd did not answer again within {START_TIMEOUT} s: "
                f"{result.stderr.strip()}\n{engine.log()}"
            )
        time.sleep(0.2)


def remove_projects(engine: TLSEngine) -> None:
    """Remove every compose project's containers, volumes and networks from the engine."""
    label = {"label": PROJECT_LABEL}
    with client_of(engine) as client:
        for container in client.containers.list(all=True, filters=label):
            container.remove(force=True)
        for volume in client.volumes.list(filters=label):
            volume.remove(force=True)
        for network in client.networks.list(filters=label):
            network.remove()


def project_containers(engine: TLSEngine, name: str) -> list[str]:
    with client_of(engine) as client:
        found = client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={name}"})
        return sorted(f"{c.name}:{c.status}" for c in found)

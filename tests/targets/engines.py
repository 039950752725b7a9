"""Real Docker engines for the tests: the machine's own, and a second one that speaks only TLS.

The second engine is a separate dockerd with its own data, exec root and pid file, listening on
tcp://127.0.0.1:PORT with --tlsverify and no unix socket, so nothing it does touches the main one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker

from tests.support.process import stop_process
from tests.targets.pki import CertificateAuthority, Pair

DOCKERD = "/usr/sbin/dockerd"
LOCAL_SOCKET = "unix:///var/run/docker.sock"
START_TIMEOUT = 60


def local_engine_problem() -> str | None:
    """Why the machine's engine cannot be used, or None when it answers."""
    try:
        client = docker.DockerClient(base_url=LOCAL_SOCKET, timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        return (
            f"the Docker engine at {LOCAL_SOCKET} does not answer ({first_line}); "
            "`make test` starts one (scripts/test-services.sh)"
        )
    return None


def tls_engine_problem() -> str | None:
    """Why a second dockerd cannot be started here, or None."""
    if os.geteuid() != 0:
        return "starting a second dockerd for the TLS tests needs root"
    if not os.access(DOCKERD, os.X_OK) or shutil.which("docker") is None:
        return f"{DOCKERD} or the docker CLI is not installed (apt-get install docker.io)"
    return local_engine_problem()


@dataclass
class TLSEngine:
    """A running dockerd that accepts only clients with a certificate from `ca`."""

    url: str
    ca: CertificateAuthority
    client: Pair
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default_factory=Path)

    @property
    def ca_pem(self) -> str:
        return self.ca.pem

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def cli(self, *args: str, client: Pair | None = None) -> subprocess.CompletedProcess[str]:
        """The docker CLI against this engine, with `client` (default: the good one)."""
        pair = client or self.client
        cert, key = pair.write(self.directory / "pki", f"cli-{id(pair)}")
        return subprocess.run(
            [
                "docker",
                "-H",
                self.url,
                "--tlsverify",
                "--tlscacert",
                str(self.directory / "pki" / "ca.pem"),
                "--tlscert",
                str(cert),
                "--tlskey",
                str(key),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "DOCKER_CONFIG": str(self.directory / "cli-config")},
        )

    @property
    def bridge(self) -> str:
        return f"slwtls{self.url.rsplit(':', 1)[-1]}"

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=30)
        subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True)
        shutil.rmtree(self.directory, ignore_errors=True)


def make_bridge(name: str, port: int) -> None:
    """A bridge for a test engine, in TEST-NET-1 (a documentation range, routed nowhere)."""
    subprocess.run(["ip", "link", "delete", name], capture_output=True)
    subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
    subnet = 16 * (port % 16)  # a /28 of its own per engine, so engines side by side differ
    subprocess.run(["ip", "addr", "add", f"192.0.2.{subnet + 1}/28", "dev", name], check=True)
    subprocess.run(["ip", "link", "set", name, "up"], check=True)


def start_tls_engine(port: int) -> TLSEngine:
    """Generate a CA, a server certificate for 127.0.0.1 and a client certificate, and start a
    dockerd on tcp://127.0.0.1:`port` that verifies clients; returns once `docker info` works."""
    # Short, because containerd's socket lives under the exec root and socket paths are short.
    directory = Path(tempfile.mkdtemp(prefix="slw-tls-"))
    pki = directory / "pki"
    pki.mkdir()
    ca = CertificateAuthority("slipway test engine CA")
    (pki / "ca.pem").write_text(ca.pem)
    server_cert, server_key = ca.server("127.0.0.1").write(pki, "server")
    config = directory / "daemon.json"
    config.write_text("{}\n")  # not the machine's /etc/docker/daemon.json
    engine = TLSEngine(
        url=f"tcp://127.0.0.1:{port}",
        ca=ca,
        client=ca.client(),
        directory=directory,
        log_path=directory / "dockerd.log",
    )
    command = [
        DOCKERD,
        "--host",
        engine.url,
        "--tlsverify",
        "--tlscacert",
        str(pki / "ca.pem"),
        "--tlscert",
        str(server_cert),
        "--tlskey",
        str(server_key),
        "--data-root",
        str(directory / "data"),
        "--exec-root",
        str(directory / "exec"),
        "--pidfile",
        str(directory / "dockerd.pid"),
        "--config-file",
        str(config),
        # Its own bridge: with --bridge=none, dockerd deletes the default `docker0` interface at
        # start, and this one shares the machine's network namespace with the main engine.
        f"--bridge={engine.bridge}",
        "--iptables=false",
        "--ip-masq=false",
    ]
    make_bridge(engine.bridge, port)
    with open(engine.log_path, "wb") as log:
        engine.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if engine.process.poll() is not None:
            log_text = engine.log()
            engine.stop()
            raise RuntimeError(f"the TLS dockerd exited at start:\n{log_text}")
        result = engine.cli("info", "--format", "{{.ServerVersion}}")
        if result.returncode == 0 and result.stdout.strip():
            return engine
        if time.monotonic() > deadline:
            log_text = engine.log()
            engine.stop()
            raise RuntimeError(
                f"the TLS dockerd did not answer `docker info` within {START_TIMEOUT} s: "
                f"{result.stderr.strip()}\n{log_text}"
            )
        time.sleep(0.2)

"""The only code that makes Docker clients and compose command lines.

Every job builds its own client from an `EngineSpec` (plain data, read from the database by id) and
closes it when done: a client is never shared across jobs or threads. That is the cure for
FastBuild's `'APIClient' object has no attribute '_proxy_configs'`, which came from reusing one.
TLS material lives in memory and the database (encrypted); the SDK and the compose CLI need files,
so they get a private temporary directory that exists only while the client does.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.tls import TLSConfig

from slipway.core.errors import ExternalServiceError, SlipwayError, UnavailableError

LOCAL_SOCKET = "unix:///var/run/docker.sock"
CONNECT_TIMEOUT = 15
# Any API version the SDK accepts; replaced by the engine's own before a TLS client is used.
_NO_VERSION_PROBE = docker.constants.MINIMUM_DOCKER_API_VERSION


@dataclass(frozen=True)
class TLSMaterial:
    ca_pem: str
    cert_pem: str
    key_pem: str


@dataclass(frozen=True)
class EngineSpec:
    """How to reach one Docker engine."""

    name: str
    url: str
    tls: TLSMaterial | None = None

    @property
    def is_local(self) -> bool:
        return self.url.startswith("unix://")


@contextmanager
def _tls_dir(tls: TLSMaterial) -> Iterator[Path]:
    """ca.pem, cert.pem and key.pem in a 0700 directory removed on exit (the CLI's layout)."""
    directory = Path(tempfile.mkdtemp(prefix="slipway-tls-"))
    try:
        files = (("ca.pem", tls.ca_pem), ("cert.pem", tls.cert_pem), ("key.pem", tls.key_pem))
        for name, text in files:
            path = directory / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _sdk_url(url: str) -> str:
    return url.replace("tcp://", "https://", 1) if url.startswith("tcp://") else url


@contextmanager
def docker_client(spec: EngineSpec, *, timeout: int = 120) -> Iterator[docker.DockerClient]:
    """A new client for `spec`, closed on exit."""
    if spec.tls is None:
        client = docker.DockerClient(base_url=spec.url, timeout=timeout)
        try:
            yield client
        finally:
            client.close()
        return
    with _tls_dir(spec.tls) as directory:
        tls = TLSConfig(
            client_cert=(str(directory / "cert.pem"), str(directory / "key.pem")),
            ca_cert=str(directory / "ca.pem"),
            verify=True,
        )
        # Created without contacting the engine, so that requests' environment lookup can be
        # turned off first: with it on, REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE replace the
        # endpoint's CA and every handshake fails. Then the API version is negotiated as usual.
        client = docker.DockerClient(
            base_url=_sdk_url(spec.url), tls=tls, timeout=timeout, version=_NO_VERSION_PROBE
        )
        try:
            client.api.trust_env = False
            client.api._version = _negotiate_version(client)
            yield client
        finally:
            client.close()


def _negotiate_version(client: docker.DockerClient) -> str:
    try:
        return str(client.api.version(api_version=False)["ApiVersion"])
    except docker.errors.DockerException:
        raise
    except Exception as exc:  # the SDK's own auto-detection wraps failures the same way
        raise docker.errors.DockerException(
            f"Error while fetching server API version: {exc}"
        ) from exc


def ping(spec: EngineSpec) -> dict[str, str]:
    """Connect and describe the engine, or raise a clear error saying why not."""
    try:
        with docker_client(spec, timeout=CONNECT_TIMEOUT) as client:
            version = client.version()
    except docker.errors.DockerException as exc:
        raise describe_failure(spec, exc) from None
    except Exception as exc:  # requests/ssl errors surface as plain exceptions too
        raise describe_failure(spec, exc) from None
    return {
        "version": str(version.get("Version", "")),
        "api_version": str(version.get("ApiVersion", "")),
        "os": str(version.get("Os", "")),
        "arch": str(version.get("Arch", "")),
    }


def describe_failure(spec: EngineSpec, exc: BaseException) -> SlipwayError:
    """The error to show for a failed connection: a TLS mismatch, or an engine that is away."""
    text = str(exc)
    if "HTTP request to an HTTPS server" in text:
        return ExternalServiceError(
            f"engine {spec.name} ({spec.url}) requires TLS: give its CA, a client certificate "
            "and the client key",
            code="endpoint_tls_failed",
        )
    if "WRONG_VERSION_NUMBER" in text:
        return ExternalServiceError(
            f"engine {spec.name} ({spec.url}) does not speak TLS at this address: remove the TLS "
            "material or use the engine's TLS port",
            code="endpoint_tls_failed",
        )
    if "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text or "certificate" in text.lower():
        return ExternalServiceError(
            f"engine {spec.name} ({spec.url}) refused the TLS handshake: check that the CA, "
            "certificate and key belong to this engine",
            code="endpoint_tls_failed",
        )
    reason = text.splitlines()[0][:200] if text else type(exc).__name__
    return UnavailableError(
        f"engine {spec.name} ({spec.url}) does not answer: {reason}", code="endpoint_unreachable"
    )


@functools.cache
def compose_program() -> tuple[str, ...]:
    """`docker compose` (v2) when the docker CLI has it, else `docker-compose` (v1)."""
    docker_cli = shutil.which("docker")
    if docker_cli:
        probe = subprocess.run(
            [docker_cli, "compose", "version"], capture_output=True, text=True, timeout=30
        )
        if probe.returncode == 0:
            return (docker_cli, "compose")
    legacy = shutil.which("docker-compose")
    if legacy:
        return (legacy,)
    raise UnavailableError(
        "neither `docker compose` nor `docker-compose` is installed on this worker: install the "
        "docker compose plugin (or docker-compose)",
        code="compose_missing",
    )


@contextmanager
def compose_invocation(spec: EngineSpec) -> Iterator[tuple[list[str], dict[str, str]]]:
    """The compose command prefix and the environment that points it at `spec`'s engine."""
    program = list(compose_program())
    if spec.tls is None:
        yield program, {"DOCKER_HOST": spec.url}
        return
    with _tls_dir(spec.tls) as directory:
        yield (
            program,
            {
                "DOCKER_HOST": spec.url,
                "DOCKER_TLS_VERIFY": "1",
                "DOCKER_CERT_PATH": str(directory),
                # docker-compose v1 talks through requests, which would let these replace the CA.
                "REQUESTS_CA_BUNDLE": "",
                "CURL_CA_BUNDLE": "",
            },
        )

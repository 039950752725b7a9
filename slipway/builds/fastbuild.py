"""FastBuild's one-shot configuration, mapped onto slipway's own targets.

FastBuild kept its Docker server, Harbor and host as append-only rows, newest wins. Here they are a
Docker endpoint (`fastbuild-docker`) and a registry (`fastbuild-harbor`) with revisions, plus the
host it announced, as runtime settings. Everything is checked (engine ping, registry login) before
anything is saved, and saved together.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy.orm import Session

from slipway.core import runtime_settings
from slipway.core.config import Settings
from slipway.core.errors import InputError
from slipway.targets import registries, registry_changes
from slipway.targets import service as targets
from slipway.targets.checks import check_url, is_host
from slipway.targets.tls import MAX_UPLOAD_BYTES, TLSUpload, too_large

ENDPOINT_NAME = "fastbuild-docker"
REGISTRY_NAME = "fastbuild-harbor"
HOST_SETTING = "fastbuild.host"
DEFAULT_ENDPOINT_SETTING = "builds.default_endpoint"
# The names FastBuild's bundles use, and the plain ones slipway's own bundles use.
_TLS_NAMES = {
    "ca-jenkins.pem": "ca",
    "cert-jenkins.pem": "cert",
    "key-jenkins.pem": "key",
    "ca.pem": "ca",
    "cert.pem": "cert",
    "key.pem": "key",
}
TLS_HINT = "the tar holds ca-jenkins.pem, cert-jenkins.pem and key-jenkins.pem (or ca/cert/key.pem)"


def read_fastbuild_tls(data: bytes, *, field: str) -> TLSUpload:
    """FastBuild's TLS tar (any directory depth, its `-jenkins` names) as three PEM files."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise too_large(field)
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            for member in archive:
                role = _TLS_NAMES.get(PurePosixPath(member.name).name)
                if role is None or member.isdir():
                    continue
                if not member.isfile() or member.size > MAX_UPLOAD_BYTES:
                    raise InputError(
                        f"{field}: {member.name!r} is not a small regular file; {TLS_HINT}",
                        field=field,
                        code="invalid_tls_bundle",
                    )
                handle = archive.extractfile(member)
                assert handle is not None
                found[role] = handle.read()
    except (tarfile.TarError, EOFError, OSError):
        raise InputError(
            f"{field} is not a readable tar archive; {TLS_HINT}",
            field=field,
            code="invalid_tls_bundle",
        ) from None
    missing = [role for role in ("ca", "cert", "key") if role not in found]
    if missing:
        raise InputError(
            f"{field} lacks the {', '.join(missing)} file(s); {TLS_HINT}",
            field=field,
            code="invalid_tls_bundle",
        )
    return TLSUpload(ca=found["ca"], cert=found["cert"], key=found["key"])


def docker_url(host: str, port: int) -> str:
    return check_url(f"tcp://{host}:{port}", field="docker_host")


def save_docker_server(
    session: Session,
    settings: Settings,
    *,
    host: str,
    port: int,
    tls: TLSUpload | None,
    actor: str,
) -> str:
    """Create or change the `fastbuild-docker` endpoint (pinged first) and build there."""
    url = docker_url(host, port)
    if targets.get(session, ENDPOINT_NAME) is None:
        targets.create(
            session,
            settings,
            name=ENDPOINT_NAME,
            url=url,
            tls=tls,
            description="FastBuild's Docker server",
            actor=actor,
        )
    else:
        targets.update(
            session,
            settings,
            name=ENDPOINT_NAME,
            url=url,
            tls=tls,
            remove_tls=tls is None,
            actor=actor,
        )
    runtime_settings.put(session, settings, DEFAULT_ENDPOINT_SETTING, ENDPOINT_NAME, actor=actor)
    return ENDPOINT_NAME


@dataclass(frozen=True)
class HarborForm:
    username: str
    password: str
    registry: str
    registry_dns: str


def save_harbor(session: Session, settings: Settings, harbor: HarborForm, *, actor: str) -> str:
    """Create or change the `fastbuild-harbor` registry (logged in to first)."""
    fields: dict[str, Any] = {
        "url": harbor.registry,
        "username": harbor.username,
        "password": harbor.password,
        "dns_alias": harbor.registry_dns or None,
    }
    if registries.get_registry(session, REGISTRY_NAME) is None:
        registry_changes.create_registry(
            session, settings, name=REGISTRY_NAME, actor=actor, **fields
        )
    else:
        registry_changes.update_registry(
            session, settings, name=REGISTRY_NAME, actor=actor, **fields
        )
    return REGISTRY_NAME


def configure(
    session: Session,
    settings: Settings,
    *,
    host: str,
    port: int,
    harbor: HarborForm,
    docker_host: str,
    docker_port: int,
    tls: TLSUpload | None,
    actor: str,
) -> dict[str, Any]:
    """FastBuild's `config-fastbuild`: all three at once, or nothing (the caller commits)."""
    if not is_host(host):
        raise InputError(
            f"fastbuild_host {host!r} is not an IP address or host name", field="fastbuild_host"
        )
    save_docker_server(session, settings, host=docker_host, port=docker_port, tls=tls, actor=actor)
    save_harbor(session, settings, harbor, actor=actor)
    runtime_settings.put(session, settings, HOST_SETTING, {"host": host, "port": port}, actor=actor)
    return current(session)


def current(session: Session) -> dict[str, Any]:
    """What FastBuild is configured with now (no secret)."""
    endpoint = targets.get(session, ENDPOINT_NAME)
    registry = registries.get_registry(session, REGISTRY_NAME)
    return {
        "host": runtime_settings.get(session, HOST_SETTING, None),
        "docker_server": None
        if endpoint is None
        else {"name": endpoint.name, "url": endpoint.url, "tls": endpoint.has_tls},
        "harbor": None
        if registry is None
        else {
            "name": registry.name,
            "registry": registry.url,
            "registry_dns": registry.dns_alias,
            "username": registry.username,
        },
    }

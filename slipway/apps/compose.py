"""Compose files and .env files of installed apps: policy checks, rendering, command lines."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from slipway.core.errors import InputError

COMPOSE_FILES = ("docker-compose.yml", "docker-compose.yaml", "compose.yml", "compose.yaml")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:[:?-][^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def compose_file(app_dir: Path) -> Path:
    for name in COMPOSE_FILES:
        if (app_dir / name).is_file():
            return app_dir / name
    raise InputError(
        f"{app_dir.name} has no docker-compose.yml", field="app", code="no_compose_file"
    )


@dataclass
class ComposeReport:
    """What a compose file asks of the engine, for the policy check."""

    privileged_services: list[str] = field(default_factory=list)
    host_network_services: list[str] = field(default_factory=list)
    outside_binds: list[str] = field(default_factory=list)
    local_binds: list[str] = field(default_factory=list)
    external_networks: list[str] = field(default_factory=list)
    published_ports: list[int] = field(default_factory=list)
    services: list[str] = field(default_factory=list)


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Replace $VAR and ${VAR} the way compose does (defaults ignored: values come from .env)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return env.get(name, "")

    return _VAR.sub(value, text.replace("$$", "\0")).replace("\0", "$")


def inspect(path: Path, env: Mapping[str, str]) -> ComposeReport:
    """Read the compose file with `env` substituted and list what the policy cares about."""
    try:
        document = yaml.safe_load(interpolate(path.read_text(), env)) or {}
    except yaml.YAMLError as exc:
        raise InputError(
            f"{path.name} is not valid YAML: {str(exc).splitlines()[0]}", field="compose_file"
        ) from None
    report = ComposeReport()
    services: dict[str, Any] = document.get("services") or {}
    for name, service in services.items():
        service = service or {}
        report.services.append(name)
        if service.get("privileged") in (True, "true"):
            report.privileged_services.append(name)
        if str(service.get("network_mode", "")) == "host":
            report.host_network_services.append(name)
        for volume in service.get("volumes") or []:
            source = _bind_source(volume)
            if source is None:
                continue
            if source.startswith("./") or source == ".":
                report.local_binds.append(source)
            else:
                report.outside_binds.append(f"{name}: {source}")
        for port in service.get("ports") or []:
            published = _published_port(port)
            if published is not None:
                report.published_ports.append(published)
    for name, network in (document.get("networks") or {}).items():
        if network and network.get("external"):
            report.external_networks.append(str(network.get("name") or name))
    return report


def _bind_source(volume: Any) -> str | None:
    """The host side of a bind mount, or None for a named volume."""
    if isinstance(volume, dict):
        if volume.get("type") != "bind":
            return None
        source = str(volume.get("source", ""))
    else:
        parts = str(volume).split(":")
        if len(parts) < 2:
            return None
        source = parts[0]
    if source.startswith(("/", "~", ".")):
        normalized = os.path.normpath(source)
        if source.startswith("./") and not normalized.startswith(".."):
            return "./" + normalized
        return source
    return None


def _published_port(port: Any) -> int | None:
    if isinstance(port, dict):
        published = port.get("published")
        return int(published) if str(published or "").isdigit() else None
    text = str(port).split("/")[0]
    parts = text.split(":")
    if len(parts) < 2:
        return None
    candidate = parts[-2]
    return int(candidate) if candidate.isdigit() else None


# --- .env ---------------------------------------------------------------------------------------


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds passwords), atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def resolved_env(template_defaults: Mapping[str, str], values: Mapping[str, str]) -> dict[str, str]:
    """Variables as compose will see them: template defaults, overridden, references expanded."""
    merged = {**template_defaults, **values}
    resolved: dict[str, str] = {}
    for name, raw in merged.items():
        resolved[name] = interpolate(raw, {**merged, **resolved})
    return resolved

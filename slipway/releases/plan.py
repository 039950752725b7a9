"""What a deployment will do before it touches anything: batches, and the rendered config files.

Shared by the API (to refuse a deploy at once) and by the job (which renders again with the
values of the moment, so a variable changed while the deployment waited is honoured).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from slipway.core.config import Settings
from slipway.core.errors import InputError
from slipway.core.secrets import Vault
from slipway.releases import archive, packages, profiles, service, variables
from slipway.releases.models import Environment, Package, Project
from slipway.targets import hosts as targets_hosts
from slipway.targets.models import Host


def batches(host_ids: list[int], strategy: dict[str, Any]) -> list[list[int]]:
    """Split hosts (in group order) into batches: an optional canary batch, then equal ones."""
    remaining = list(host_ids)
    planned: list[list[int]] = []
    canary = min(int(strategy.get("canary") or 0), len(remaining))
    if canary:
        planned.append(remaining[:canary])
        remaining = remaining[canary:]
    size = strategy.get("batch_size")
    if isinstance(size, str) and size.endswith("%"):
        size = max(1, math.ceil(len(host_ids) * int(size[:-1]) / 100))
    size = int(size) if size else len(remaining) or 1
    planned += [remaining[i : i + size] for i in range(0, len(remaining), size)]
    return planned


def parallelism(settings: Settings, strategy: dict[str, Any], batch_size: int) -> int:
    if strategy.get("serial"):
        return 1
    wanted = int(strategy.get("parallel") or batch_size or 1)
    return max(1, min(wanted, batch_size or 1, settings.release_parallel_limit))


def select_hosts(session: Session, environment: Environment, names: list[str] | None) -> list[Host]:
    group = targets_hosts.get_group_or_raise(session, str(environment.host_group_id))
    members = targets_hosts.group_members(session, group)
    if not members:
        raise InputError(
            f"host group {group.name} has no hosts; add hosts to it first",
            field="host_group",
            code="no_hosts",
        )
    if names is None:
        return members
    by_name = {host.name: host for host in members}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise InputError(
            f"hosts {', '.join(unknown)} are not in group {group.name} ({', '.join(by_name)})",
            field="hosts",
        )
    if not names:
        raise InputError("hosts is empty; name at least one host or leave it out", field="hosts")
    return [host for host in members if host.name in set(names)]


@dataclass
class Rendered:
    """Config files with their variables filled in, per host (paths relative to the release)."""

    files: dict[str, dict[str, bytes]] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    used: dict[str, list[str]] = field(default_factory=dict)


def render(
    session: Session,
    settings: Settings,
    vault: Vault,
    environment: Environment,
    package: Package,
    hosts: list[Host],
) -> Rendered:
    """Render the package's config files for every host; refuse listing every missing name."""
    inspection = package.inspection or {}
    config_files: list[str] = inspection.get("config_files") or []
    if not config_files:
        return Rendered(files={host.name: {} for host in hosts})
    root = inspection.get("content_root") or ""
    members = {f"{root}/{path}" if root else path: path for path in config_files}
    contents = archive.read_members(packages.file_of(settings, package), members)
    originals = {members[member]: data for member, data in contents.items()}
    secrets = service.secret_values(session, vault, environment)
    literal = project_literals(session, environment)
    rendered = Rendered(
        secrets=list(secrets.values()), used=variables.used_variables(originals, literal=literal)
    )
    by_overrides: dict[tuple[tuple[str, str], ...], dict[str, bytes]] = {}
    missing: dict[str, set[str]] = {}
    hosts_missing: dict[str, list[str]] = {}
    first: variables.MissingVariablesError | None = None
    for host in hosts:
        overrides = (environment.host_variables or {}).get(host.name, {})
        key = tuple(sorted(overrides.items()))
        if key not in by_overrides:
            values = variables.merge_variables(environment.variables or {}, overrides)
            try:
                by_overrides[key] = variables.render_files(
                    originals,
                    values=values,
                    secrets=secrets,
                    public_key_pem=environment.public_key_pem,
                    literal=literal,
                )
            except variables.MissingVariablesError as exc:
                first = first or exc
                for name, files in exc.details["files"].items():
                    missing.setdefault(name, set()).update(files)
                    hosts_missing.setdefault(name, []).append(host.name)
                continue
        rendered.files[host.name] = by_overrides[key]
    if missing:
        assert first is not None
        error = variables.MissingVariablesError(
            missing, stored_as_secret=first.details.get("stored_as_secret", [])
        )
        error.message = "the deploy is refused before any host is touched: " + error.message
        error.details["hosts"] = hosts_missing
        raise error
    return rendered


def project_literals(session: Session, environment: Environment) -> list[str]:
    project = session.get(Project, environment.project_id)
    return list(project.literal_placeholders or []) if project else []


def check_package_scripts(project: Project, package: Package) -> None:
    """A wecube package must bring the scripts slipway runs for it."""
    if project.kind != profiles.PACKAGE_KIND:
        return
    scripts = (package.inspection or {}).get("scripts") or {}
    if not scripts.get("start"):
        raise InputError(
            f"package {package.filename} has no start script (start.sh at its top or in bin/); "
            "a wecube package must bring start.sh and stop.sh, or give the project a profile "
            "kind (jar, war, static, node)",
            field="package",
            code="no_start_script",
        )

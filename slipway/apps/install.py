"""Installing an app from the catalog: the install request, the checks that validate it before
anything is recorded (name free on the endpoint, edition and version, settings and generated
passwords, the compose policy, published ports, the engine's memory and disk), and `install`, which
records the app with its secrets in the vault and submits its `app.install` operation."""

from __future__ import annotations

import secrets
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.apps import compose
from slipway.apps.catalog import CatalogApp, load_catalog
from slipway.apps.models import App, InstallState
from slipway.apps.service import app_dir, check_name, lock_key, subject
from slipway.apps.status import Project, snapshot
from slipway.core.config import Settings
from slipway.core.errors import ConflictError, InputError
from slipway.core.secrets import open_vault
from slipway.jobs import service as jobs
from slipway.jobs.models import Operation, Trigger
from slipway.remote.docker import EngineSpec
from slipway.targets import service as targets

INSTALL_TIMEOUT = 3600  # seconds, as Websoft9 AppManage's queue


@dataclass(frozen=True)
class InstallRequest:
    app: str
    name: str
    edition: str | None = None
    version: str | None = None
    endpoint: str | None = None
    settings: dict[str, str] = field(default_factory=dict)


def install(
    session: Session,
    settings: Settings,
    *,
    request: InstallRequest,
    actor: str | None,
    trigger: Trigger | str = Trigger.api,
) -> tuple[App, Operation, dict[str, str]]:
    """Validate everything, then record the app and start its install; returns the generated
    passwords, which are shown this once."""
    check_name(request.name)
    entry = load_catalog(session, settings).get(request.app)
    edition, version = _pick_version(entry, request.edition, request.version)
    endpoint = request.endpoint or "local"
    targets.ensure_local(session, settings)
    spec = targets.engine_spec(session, settings, endpoint)
    projects = snapshot(spec)
    _refuse_taken_name(session, spec, projects, request.name)
    values, generated = _settings_for(entry, request.settings)
    values.update({"W9_ID": request.name, "W9_VERSION": version, "W9_DIST": edition})
    report = compose.inspect(
        compose.compose_file(entry.path), compose.resolved_env(entry.env_defaults, values)
    )
    _check_policy(entry, spec, report)
    _check_ports(spec, entry, report, projects)
    _check_requirements(spec, entry)

    vault = open_vault(session, settings)
    plain = {k: v for k, v in values.items() if k not in entry.password_settings}
    app = App(
        name=request.name,
        endpoint=endpoint,
        catalog_key=entry.key,
        source=entry.source,
        edition=edition,
        version=version,
        settings=plain,
        secret_settings={},
        app_dir=str(app_dir(settings, endpoint, request.name)),
        install_state=InstallState.installing,
    )
    session.add(app)
    session.flush()
    app.secret_settings = {
        name: vault.store(session, owner=f"app:{app.id}", value=values[name])
        for name in entry.password_settings
        if name in values
    }
    operation = jobs.submit(
        session,
        settings,
        kind="app.install",
        subject=subject(endpoint, request.name),
        params={"app_id": app.id, "app": entry.key, "version": version},
        actor=actor,
        trigger=trigger,
        lock_keys=[lock_key(endpoint, request.name)],
        timeout=INSTALL_TIMEOUT,
    )
    app.last_operation_id = operation.id
    session.commit()
    return app, operation, generated


def _pick_version(entry: CatalogApp, edition: str | None, version: str | None) -> tuple[str, str]:
    dists = {e.dist: e for e in entry.editions}
    chosen = dists.get(edition) if edition else dists.get(entry.default_edition)
    if chosen is None:
        raise InputError(
            f"{entry.key} has no edition {edition!r}; choose one of {', '.join(dists)}",
            field="edition",
            code="unknown_edition",
        )
    version = version or (entry.default_version if chosen.dist == entry.default_edition else None)
    version = version or (chosen.versions[0] if chosen.versions else None)
    if version is None or not entry.version_ok(chosen.dist, version):
        raise InputError(
            f"{entry.key} {chosen.dist} has no version {version!r}; choose one of "
            f"{', '.join(chosen.versions)}",
            field="version",
            code="unknown_version",
        )
    return chosen.dist, version


def _refuse_taken_name(
    session: Session, spec: EngineSpec, projects: dict[str, Project], name: str
) -> None:
    existing = session.scalar(select(App).where(App.endpoint == spec.name, App.name == name))
    if existing is not None:
        raise ConflictError(
            f"an app named {name!r} already exists on endpoint {spec.name}; pick another name "
            "or uninstall it first",
            code="app_exists",
            details={"field": "name"},
        )
    if name in projects:
        raise ConflictError(
            f"a compose project named {name!r} already runs on endpoint {spec.name}; adopt it "
            f"with POST /api/v1/apps/{name}/adopt or pick another name",
            code="app_exists",
            details={"field": "name"},
        )


def _settings_for(
    entry: CatalogApp, given: dict[str, Any]
) -> tuple[dict[str, str], dict[str, str]]:
    """The template's settings with the user's values; empty passwords are generated."""
    values: dict[str, str] = {}
    for name, value in given.items():
        if name not in entry.env_defaults:
            raise InputError(
                f"{entry.key} has no setting {name}; known settings: "
                f"{', '.join(sorted(entry.env_defaults))}",
                field=f"settings.{name}",
                code="unknown_setting",
            )
        values[name] = str(value)
    generated = {}
    for name in entry.password_settings:
        if not values.get(name):
            values[name] = generated[name] = _password()
    missing = [
        name
        for name in entry.required_settings
        if name not in entry.password_settings
        and not values.get(name)
        and not entry.env_defaults.get(name)
    ]
    if missing:
        raise InputError(
            f"{entry.key} needs the setting(s) {', '.join(missing)}",
            field=f"settings.{missing[0]}",
            code="missing_settings",
            details={"field": f"settings.{missing[0]}", "missing": missing},
        )
    return values, generated


def _password() -> str:
    # Letters and digits only: templates put passwords in URLs, shells and YAML unquoted.
    alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(20))


def _check_policy(entry: CatalogApp, spec: EngineSpec, report: compose.ComposeReport) -> None:
    problems = [
        *(f"service {s} is privileged" for s in report.privileged_services),
        *(f"service {s} uses the host network" for s in report.host_network_services),
        *(f"bind mount outside the app folder ({b})" for b in report.outside_binds),
    ]
    if problems and not entry.allow_privileged:
        raise InputError(
            f"{entry.key} is refused by policy: {'; '.join(problems)}. An admin may allow this "
            f"for catalog source {entry.source} (allow_privileged)",
            field="app",
            code="policy_refused",
            details={"field": "app", "problems": problems},
        )
    if report.local_binds and not spec.is_local:
        raise InputError(
            f"{entry.key} bind-mounts files from its app folder ({', '.join(report.local_binds)}), "
            f"which cannot reach the remote engine {spec.name}; install it on a local endpoint",
            field="endpoint",
            code="remote_bind_mounts",
        )


def _check_ports(
    spec: EngineSpec, entry: CatalogApp, report: compose.ComposeReport, projects: dict[str, Project]
) -> None:
    taken: dict[int, str] = {}
    for project_name, project in projects.items():
        for container in project.containers:
            for port in container.ports:
                taken[int(port["public"])] = f"app {project_name}"
    for port in report.published_ports:
        if not 0 < port < 65536:
            raise InputError(f"port {port} is not a valid port", field="settings", code="bad_port")
        owner = taken.get(port) or (_listener(port) if spec.is_local else None)
        if owner:
            setting = entry.http_port_setting or "settings"
            raise ConflictError(
                f"port {port} is already taken by {owner}; choose another with settings.{setting}",
                code="port_taken",
                details={"field": f"settings.{setting}", "port": port},
            )


def _listener(port: int) -> str | None:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            return "a program listening on this machine"
    return None


def _check_requirements(spec: EngineSpec, entry: CatalogApp) -> None:
    from slipway.remote.docker import docker_client

    with docker_client(spec, timeout=30) as client:
        info = client.info()
    memory_gb = int(info.get("MemTotal", 0)) / 2**30
    need = entry.requirements
    problems = []
    if need.memory_gb and memory_gb and memory_gb < need.memory_gb:
        problems.append(f"memory: needs {need.memory_gb:g} GB, engine has {memory_gb:.1f} GB")
    if need.disk_gb and spec.is_local:
        root = Path(str(info.get("DockerRootDir") or "/"))
        free_gb = shutil.disk_usage(root if root.exists() else "/").free / 2**30
        if free_gb < need.disk_gb:
            problems.append(f"disk: needs {need.disk_gb:g} GB free, engine has {free_gb:.1f} GB")
    if problems:
        raise InputError(
            f"{entry.key} cannot run on {spec.name}: {'; '.join(problems)}",
            field="endpoint",
            code="requirements_not_met",
            details={"field": "endpoint", "problems": problems},
        )

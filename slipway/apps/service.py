"""Installed apps: validate and start installs, lifecycle actions, settings, adoption, status."""

from __future__ import annotations

import re
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
from slipway.apps.status import (
    ALLOWED_ACTIONS,
    AppAction,
    AppStatus,
    ContainerState,
    Project,
    app_status,
    snapshot,
)
from slipway.core.config import Settings
from slipway.core.errors import (
    ConflictError,
    InputError,
    InvalidStateError,
    NotFoundError,
    SlipwayError,
)
from slipway.core.secrets import open_vault
from slipway.jobs import service as jobs
from slipway.jobs.models import Operation, OperationStatus, Trigger
from slipway.remote.docker import EngineSpec
from slipway.targets import service as targets

NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
MASK = "******"
ACTIVE_STATUSES = (
    OperationStatus.scheduled,
    OperationStatus.waiting,
    OperationStatus.queued,
    OperationStatus.running,
)
INSTALL_TIMEOUT = 3600  # seconds, as Websoft9 AppManage's queue


def lock_key(endpoint: str, name: str) -> str:
    return f"app:{endpoint}:{name}"


def subject(endpoint: str, name: str) -> str:
    return f"app:{endpoint}/{name}"


def apps_on(session: Session, endpoint: str) -> list[str]:
    """The apps installed on an endpoint (which therefore may not be deleted)."""
    names = session.scalars(select(App.name).where(App.endpoint == endpoint).order_by(App.name))
    return [f"app {name}" for name in names]


targets.register_usage_check(apps_on)


def app_dir(settings: Settings, endpoint: str, name: str) -> Path:
    return settings.data_dir / "apps" / endpoint / name


# --- reading ------------------------------------------------------------------------------------


def get_or_raise(session: Session, name: str, *, endpoint: str | None = None) -> App:
    query = select(App).where(App.name == name)
    if endpoint:
        query = query.where(App.endpoint == endpoint)
    found = list(session.scalars(query))
    if not found:
        where = f" on endpoint {endpoint}" if endpoint else ""
        raise NotFoundError(f"no app named {name!r}{where}", code="app_not_found")
    if len(found) > 1:
        raise InputError(
            f"apps named {name!r} exist on several endpoints "
            f"({', '.join(a.endpoint for a in found)}); add ?endpoint=",
            field="endpoint",
        )
    return found[0]


@dataclass
class AppView:
    """An app with its live status, as the API shows it."""

    app: App
    status: AppStatus
    allowed_actions: list[str]
    containers: list[ContainerState] = field(default_factory=list)
    operation: Operation | None = None
    engine_error: str | None = None


def _active_operations(session: Session, apps: list[App]) -> dict[str, Operation]:
    if not apps:
        return {}
    subjects = [subject(a.endpoint, a.name) for a in apps]
    rows = session.scalars(
        select(Operation)
        .where(Operation.subject.in_(subjects), Operation.status.in_(ACTIVE_STATUSES))
        .order_by(Operation.created_at)
    )
    return {row.subject or "": row for row in rows}


def views(session: Session, settings: Settings, apps: list[App]) -> list[AppView]:
    """Status for many apps: one engine query per endpoint, one database query for operations."""
    active = _active_operations(session, apps)
    projects: dict[str, dict[str, Project] | SlipwayError] = {}
    for endpoint in {a.endpoint for a in apps}:
        try:
            projects[endpoint] = snapshot(targets.engine_spec(session, settings, endpoint))
        except SlipwayError as exc:
            projects[endpoint] = exc
        except Exception as exc:
            projects[endpoint] = SlipwayError(f"engine {endpoint} does not answer: {exc}")
    result = []
    for app in apps:
        engine = projects[app.endpoint]
        operation = active.get(subject(app.endpoint, app.name))
        containers = None if isinstance(engine, SlipwayError) else _containers(engine, app.name)
        status = app_status(
            operation_kind=operation.kind if operation else None,
            install_failed=app.install_state == InstallState.failed,
            containers=containers,
        )
        result.append(
            AppView(
                app=app,
                status=status,
                allowed_actions=[a.value for a in ALLOWED_ACTIONS[status]],
                containers=containers or [],
                operation=operation,
                engine_error=engine.message if isinstance(engine, SlipwayError) else None,
            )
        )
    return result


def _containers(projects: dict[str, Project], name: str) -> list[ContainerState]:
    project = projects.get(name)
    return project.containers if project else []


def list_views(
    session: Session, settings: Settings, *, endpoint: str | None = None
) -> list[AppView]:
    query = select(App).order_by(App.endpoint, App.name)
    if endpoint:
        query = query.where(App.endpoint == endpoint)
    return views(session, settings, list(session.scalars(query)))


def view(
    session: Session, settings: Settings, name: str, *, endpoint: str | None = None
) -> AppView:
    return views(session, settings, [get_or_raise(session, name, endpoint=endpoint)])[0]


# --- install ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstallRequest:
    app: str
    name: str
    edition: str | None = None
    version: str | None = None
    endpoint: str | None = None
    settings: dict[str, str] = field(default_factory=dict)


def check_name(name: str) -> None:
    if not NAME_PATTERN.match(name):
        raise InputError(
            f"app name {name[:80]!r} is not a DNS label: use 1-63 lowercase letters, digits and "
            "'-', starting and ending with a letter or digit",
            field="name",
        )


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


# --- lifecycle ----------------------------------------------------------------------------------


def act(
    session: Session,
    settings: Settings,
    *,
    name: str,
    endpoint: str | None,
    action: AppAction,
    actor: str | None,
    params: dict[str, Any] | None = None,
    trigger: Trigger | str = Trigger.api,
) -> Operation:
    """Start a lifecycle operation if the app's status allows it (409 naming what is allowed)."""
    current = view(session, settings, name, endpoint=endpoint)
    if action not in current.allowed_actions:
        allowed = ", ".join(current.allowed_actions) or "nothing until its operation ends"
        raise InvalidStateError(
            f"cannot {action.value} app {name!r} while it is {current.status}; allowed: {allowed}",
            details={"status": current.status, "allowed_actions": current.allowed_actions},
        )
    app = current.app
    if action == AppAction.upgrade:
        version = str((params or {}).get("version") or "")
        entry = load_catalog(session, settings).get(app.catalog_key or "")
        if not entry.version_ok(app.edition or entry.default_edition, version):
            raise InputError(
                f"{entry.key} has no version {version!r} in edition {app.edition}",
                field="version",
                code="unknown_version",
            )
    operation = jobs.submit(
        session,
        settings,
        kind=f"app.{action.value}",
        subject=subject(app.endpoint, app.name),
        params={"app_id": app.id, **(params or {})},
        actor=actor,
        trigger=trigger,
        lock_keys=[lock_key(app.endpoint, app.name)],
    )
    app.last_operation_id = operation.id
    session.commit()
    return operation


def uninstall(
    session: Session,
    settings: Settings,
    *,
    name: str,
    endpoint: str | None,
    purge: bool,
    actor: str | None,
    trigger: Trigger | str = Trigger.api,
) -> Operation:
    """Uninstall; an install still in progress is canceled first."""
    current = view(session, settings, name, endpoint=endpoint)
    app = current.app
    if current.operation is not None and current.operation.kind == "app.install":
        jobs.cancel(session, settings, current.operation.id, actor=actor)
    elif current.status == AppStatus.uninstalling:
        raise InvalidStateError(
            f"app {name!r} is already being uninstalled", details={"status": current.status}
        )
    operation = jobs.submit(
        session,
        settings,
        kind="app.uninstall",
        subject=subject(app.endpoint, app.name),
        params={"app_id": app.id, "purge": purge},
        actor=actor,
        trigger=trigger,
        lock_keys=[lock_key(app.endpoint, app.name)],
    )
    app.last_operation_id = operation.id
    session.commit()
    return operation


# --- settings -----------------------------------------------------------------------------------


def read_env(session: Session, app: App) -> dict[str, str]:
    """The app's settings; secret values are masked."""
    return {**app.settings, **{name: MASK for name in app.secret_settings}}


def update_env(session: Session, settings: Settings, *, app: App, values: dict[str, Any]) -> App:
    """Change settings; they take effect at the next redeploy."""
    entry = load_catalog(session, settings).get(app.catalog_key) if app.catalog_key else None
    vault = open_vault(session, settings)
    fixed = {"W9_ID", "W9_VERSION", "W9_DIST"}
    plain = dict(app.settings)
    secret_ids = dict(app.secret_settings)
    for name, raw in values.items():
        value = str(raw)
        if name in fixed:
            raise InputError(
                f"{name} cannot be changed here (use upgrade for the version)",
                field=f"settings.{name}",
            )
        if entry is not None and name not in entry.env_defaults:
            raise InputError(
                f"{app.catalog_key} has no setting {name}",
                field=f"settings.{name}",
                code="unknown_setting",
            )
        if value == MASK:
            continue  # a masked value read back unchanged
        if name in secret_ids:
            vault.store(session, owner=f"app:{app.id}", value=value, secret_id=secret_ids[name])
        elif entry is not None and name in entry.password_settings:
            secret_ids[name] = vault.store(session, owner=f"app:{app.id}", value=value)
        else:
            plain[name] = value
    app.settings = plain
    app.secret_settings = secret_ids
    app.is_redeploy_pending = True
    session.commit()
    return app


def env_values(session: Session, settings: Settings, app: App) -> dict[str, str]:
    """Every setting in clear, for writing the app's .env on a worker."""
    vault = open_vault(session, settings)
    return {
        **app.settings,
        **{name: vault.reveal(session, sid) for name, sid in app.secret_settings.items()},
    }


# --- adopt --------------------------------------------------------------------------------------


def adopt(
    session: Session, settings: Settings, *, name: str, endpoint: str | None, actor: str | None
) -> App:
    """Take over a compose project already running on the endpoint (started by hand or Websoft9)."""
    check_name(name)
    endpoint = endpoint or "local"
    targets.ensure_local(session, settings)
    spec = targets.engine_spec(session, settings, endpoint)
    if session.scalar(select(App).where(App.endpoint == endpoint, App.name == name)):
        raise ConflictError(f"app {name!r} is already managed by slipway", code="app_exists")
    project = snapshot(spec).get(name)
    if project is None:
        raise NotFoundError(
            f"no compose project named {name!r} runs on endpoint {endpoint}",
            code="project_not_found",
        )
    app = App(
        name=name,
        endpoint=endpoint,
        catalog_key=None,
        settings={},
        secret_settings={},
        app_dir=project.working_dir or "",
        install_state=InstallState.adopted,
    )
    session.add(app)
    session.commit()
    return app

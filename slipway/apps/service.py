"""Installed apps: reading them with their status, lifecycle actions, settings and adoption, and
the helpers installs share (names, lock keys, app folders); installing is in `apps.install`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.apps.catalog import load_catalog
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
from slipway.targets import service as targets

NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
MASK = "******"
ACTIVE_STATUSES = (
    OperationStatus.scheduled,
    OperationStatus.waiting,
    OperationStatus.queued,
    OperationStatus.running,
)


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


def check_name(name: str) -> None:
    if not NAME_PATTERN.match(name):
        raise InputError(
            f"app name {name[:80]!r} is not a DNS label: use 1-63 lowercase letters, digits and "
            "'-', starting and ending with a letter or digit",
            field="name",
        )


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

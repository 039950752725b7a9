"""Projects and environments: what is released, where to, and with which settings."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from slipway.core.config import Settings
from slipway.core.db import utcnow
from slipway.core.errors import ConflictError, InputError, NotFoundError
from slipway.core.lookup import by_name_or_id
from slipway.core.secrets import Vault
from slipway.releases import profiles, variables
from slipway.releases.models import Deployment, DeploymentStatus, Environment, HostRelease, Project
from slipway.releases.schemas import DatabaseTarget, EnvironmentCreate, EnvironmentUpdate
from slipway.targets import credentials
from slipway.targets import hosts as targets_hosts
from slipway.targets.checks import check_name
from slipway.targets.models import Credential, HostGroup

MAX_VARIABLES = 1000
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_VARIABLE_VALUE = 65536


# --- projects ----------------------------------------------------------------------------------


def get_project_or_raise(session: Session, ref: str) -> Project:
    project = by_name_or_id(session, Project, ref)
    if project is None:
        raise NotFoundError(f"project {ref!r} does not exist", code="project_not_found")
    return project


def list_projects(session: Session) -> list[Project]:
    return list(session.scalars(select(Project).order_by(Project.name)))


def _check_globs(globs: list[str]) -> list[str]:
    for pattern in globs:
        if not pattern or pattern.startswith("/") or ".." in pattern.split("/"):
            raise InputError(
                f"config glob {pattern!r} must be a relative pattern inside the release, "
                "like conf/** or etc/*.properties",
                field="config_globs",
            )
    return globs


def _check_literals(names: list[str]) -> list[str]:
    for name in names:
        if not VARIABLE_NAME.fullmatch(name):
            raise InputError(
                f"literal placeholder {name[:80]!r} must be a bare name: thread for [%thread]",
                field="literal_placeholders",
            )
    return names


def create_project(
    session: Session,
    settings: Settings,
    *,
    name: str,
    kind: str,
    description: str = "",
    config_globs: list[str] | None = None,
    literal_placeholders: list[str] | None = None,
) -> Project:
    check_name(name)
    profiles.check_kind(settings, kind)
    if by_name_or_id(session, Project, name) is not None:
        raise ConflictError(f"project {name!r} exists already; pick another name", code="exists")
    project = Project(
        name=name,
        kind=kind,
        description=description,
        config_globs=_check_globs(config_globs if config_globs is not None else ["conf/**"]),
        literal_placeholders=_check_literals(literal_placeholders or []),
    )
    session.add(project)
    session.commit()
    return project


def update_project(
    session: Session,
    project: Project,
    *,
    description: str | None = None,
    config_globs: list[str] | None = None,
    literal_placeholders: list[str] | None = None,
) -> Project:
    if literal_placeholders is not None:
        project.literal_placeholders = _check_literals(literal_placeholders)
    if description is not None:
        project.description = description
    if config_globs is not None:
        project.config_globs = _check_globs(config_globs)
    project.updated_at = utcnow()
    session.commit()
    return project


def delete_project(session: Session, settings: Settings, project: Project) -> None:
    from slipway.releases import packages  # packages imports this module

    _refuse_if_busy(session, Deployment.project_id == project.id, f"project {project.name}")
    for package in packages.list_packages(session, project):
        packages.remove_file(settings, package)
    session.delete(project)
    session.commit()


def _refuse_if_busy(session: Session, condition: Any, what: str) -> None:
    busy = session.scalar(
        select(func.count())
        .select_from(Deployment)
        .where(
            condition,
            Deployment.status.not_in([s.value for s in DeploymentStatus if s.is_final]),
        )
    )
    if busy:
        raise ConflictError(
            f"{what} has a deployment in progress; wait for it or cancel it first",
            code="in_use",
        )


# --- environments ------------------------------------------------------------------------------


def get_environment_or_raise(session: Session, project: Project, ref: str) -> Environment:
    environment = by_name_or_id(session, Environment, ref, project_id=project.id)
    if environment is None:
        raise NotFoundError(
            f"environment {ref!r} does not exist in project {project.name}",
            code="environment_not_found",
        )
    return environment


def list_environments(session: Session, project: Project) -> list[Environment]:
    return list(
        session.scalars(
            select(Environment)
            .where(Environment.project_id == project.id)
            .order_by(Environment.name)
        )
    )


def _check_root(root: str) -> str:
    normalized = posixpath.normpath(root)
    if not root.startswith("/") or normalized in ("/", "//") or any(c in root for c in "\n\0"):
        raise InputError(
            f"deploy_root {root!r} must be an absolute directory below / on the hosts, "
            "like /data/wecube-core",
            field="deploy_root",
        )
    return normalized


def _check_variables(values: dict[str, Any], field: str) -> None:
    if len(values) > MAX_VARIABLES:
        raise InputError(f"at most {MAX_VARIABLES} {field}", field=field)
    for name, value in values.items():
        if not VARIABLE_NAME.fullmatch(name):
            raise InputError(
                f"{field} name {name[:80]!r} may hold only letters, digits and '_', "
                "starting with a letter or '_' (as in [@db_ip])",
                field=field,
            )
        if value is not None and len(value) > MAX_VARIABLE_VALUE:
            raise InputError(f"{field} {name} is longer than {MAX_VARIABLE_VALUE}", field=field)


def _check_host_variables(
    session: Session, group: HostGroup, values: dict[str, dict[str, str]]
) -> None:
    members = {host.name for host in targets_hosts.group_members(session, group)}
    for host, overrides in values.items():
        if host not in members:
            raise InputError(
                f"host_variables names host {host!r}, which is not in group {group.name} "
                f"({', '.join(sorted(members)) or 'no hosts'})",
                field="host_variables",
            )
        _check_variables(overrides, "host_variables")


def _set_database(
    session: Session,
    vault: Vault,
    environment: Environment,
    database: DatabaseTarget,
) -> None:
    from slipway.releases import dbtarget

    dbtarget.check_url(database.url)
    if database.credential is not None:
        credential = session.scalar(
            select(Credential).where(Credential.name == database.credential)
        )
        if credential is None or credential.kind != "password":
            raise InputError(
                f"database.credential {database.credential!r} is not a password credential; "
                'create one with POST /api/v1/credentials {"kind": "password"}',
                field="database.credential",
            )
    environment.database = {"url": database.url, "credential": database.credential}
    if database.password is not None:
        environment.database_secret_id = vault.store(
            session,
            owner=f"environment-db:{environment.project_id}",
            value=database.password,
            secret_id=environment.database_secret_id,
        )


def _set_secret_variables(
    session: Session, vault: Vault, environment: Environment, values: dict[str, str | None]
) -> None:
    stored = dict(environment.secret_variables or {})
    for name, value in values.items():
        key = name.casefold()
        existing = next((k for k in stored if k.casefold() == key), None)
        if value is None:
            if existing is not None:
                vault.forget(session, stored.pop(existing))
            continue
        stored[existing or name] = vault.store(
            session,
            owner=f"environment-var:{environment.project_id}",
            value=value,
            secret_id=stored.get(existing) if existing else None,
        )
    environment.secret_variables = stored


def _set_public_key(environment: Environment, public_key: str | None, generate: bool) -> str | None:
    """Set the app's public key; returns a generated private key, to be shown once."""
    if generate:
        private_pem, public_pem = variables.generate_keypair()
        environment.public_key_pem = public_pem
        return private_pem
    if public_key is not None:
        environment.public_key_pem = variables.normalize_public_key(public_key)
    return None


@dataclass
class EnvironmentSaved:
    environment: Environment
    generated_private_key: str | None


def create_environment(
    session: Session, settings: Settings, vault: Vault, project: Project, body: EnvironmentCreate
) -> EnvironmentSaved:
    check_name(body.name)
    if by_name_or_id(session, Environment, body.name, project_id=project.id) is not None:
        raise ConflictError(
            f"environment {body.name!r} exists already in project {project.name}", code="exists"
        )
    group = targets_hosts.get_group_or_raise(session, body.host_group)
    _check_variables(body.variables, "variables")
    _check_variables(body.secret_variables, "secret_variables")
    _check_host_variables(session, group, body.host_variables)
    environment = Environment(
        project_id=project.id,
        name=body.name,
        host_group_id=group.id,
        deploy_root=_check_root(body.deploy_root),
        layout=body.layout,
        variables=body.variables,
        secret_variables={},
        host_variables=body.host_variables,
        strategy=body.strategy.model_dump(exclude_defaults=True),
        keep_releases=body.keep_releases,
        health_check=body.health_check.model_dump() if body.health_check else None,
        requires_approval=body.requires_approval,
    )
    private_key = _set_public_key(environment, body.public_key, body.generate_key_pair)
    session.add(environment)
    session.flush()
    _set_secret_variables(session, vault, environment, dict(body.secret_variables))
    if body.database is not None:
        _set_database(session, vault, environment, body.database)
    session.commit()
    return EnvironmentSaved(environment, private_key)


def update_environment(
    session: Session, vault: Vault, environment: Environment, body: EnvironmentUpdate
) -> EnvironmentSaved:
    group = session.get(HostGroup, environment.host_group_id)
    if body.host_group is not None:
        group = targets_hosts.get_group_or_raise(session, body.host_group)
        environment.host_group_id = group.id
    if body.deploy_root is not None:
        environment.deploy_root = _check_root(body.deploy_root)
    if body.layout is not None:
        environment.layout = body.layout
    if body.variables is not None:
        _check_variables(body.variables, "variables")
        environment.variables = body.variables
    if body.host_variables is not None:
        assert group is not None
        _check_host_variables(session, group, body.host_variables)
        environment.host_variables = body.host_variables
    if body.strategy is not None:
        environment.strategy = body.strategy.model_dump(exclude_defaults=True)
    if body.keep_releases is not None:
        environment.keep_releases = body.keep_releases
    if body.health_check is not None:
        environment.health_check = body.health_check.model_dump()
    if body.remove_health_check:
        environment.health_check = None
    if body.requires_approval is not None:
        environment.requires_approval = body.requires_approval
    if body.secret_variables is not None:
        _check_variables(body.secret_variables, "secret_variables")
        _set_secret_variables(session, vault, environment, body.secret_variables)
    if body.database is not None:
        _set_database(session, vault, environment, body.database)
    if body.remove_database:
        environment.database = None
        if environment.database_secret_id:
            vault.forget(session, environment.database_secret_id)
            environment.database_secret_id = None
    private_key = _set_public_key(environment, body.public_key, body.generate_key_pair)
    environment.updated_at = utcnow()
    session.commit()
    return EnvironmentSaved(environment, private_key)


def delete_environment(session: Session, vault: Vault, environment: Environment) -> None:
    _refuse_if_busy(
        session, Deployment.environment_id == environment.id, f"environment {environment.name}"
    )
    for secret_id in (environment.secret_variables or {}).values():
        vault.forget(session, secret_id)
    if environment.database_secret_id:
        vault.forget(session, environment.database_secret_id)
    session.delete(environment)
    session.commit()


def host_releases(session: Session, environment: Environment) -> list[HostRelease]:
    return list(
        session.scalars(
            select(HostRelease)
            .where(HostRelease.environment_id == environment.id)
            .order_by(HostRelease.host_name)
        )
    )


def database_password(
    session: Session, settings: Settings, vault: Vault, environment: Environment
) -> str | None:
    """The environment's DB password: its own, else its password credential's."""
    if environment.database_secret_id:
        return vault.reveal(session, environment.database_secret_id)
    name = (environment.database or {}).get("credential")
    if name:
        credential = session.scalar(select(Credential).where(Credential.name == name))
        if credential is not None:
            return credentials.reveal(session, settings, credential).password
    return None


def secret_values(session: Session, vault: Vault, environment: Environment) -> dict[str, str]:
    return {
        name: vault.reveal(session, secret_id)
        for name, secret_id in (environment.secret_variables or {}).items()
    }


def environments_using_group(session: Session, group: HostGroup) -> list[str]:
    rows = session.execute(
        select(Project.name, Environment.name)
        .join(Project, Project.id == Environment.project_id)
        .where(Environment.host_group_id == group.id)
    )
    return [f"environment {project}/{environment}" for project, environment in rows]


targets_hosts.register_group_usage_check(environments_using_group)

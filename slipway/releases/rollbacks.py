"""Rollbacks: which kept release that worked each host goes back to, and starting the
`release.rollback` operation that switches them."""

from __future__ import annotations

from sqlalchemy.orm import Session

from slipway.core.config import Settings
from slipway.core.errors import ConflictError, InputError
from slipway.jobs.models import Trigger
from slipway.releases import dbpackage, plan, service
from slipway.releases.deployments import Started, start
from slipway.releases.models import Deployment, Environment, Project
from slipway.releases.schemas import RollbackCreate
from slipway.targets.models import Host


def rollback_targets(
    session: Session, environment: Environment, hosts: list[Host], to: str | None
) -> dict[int, str]:
    """The release each host goes back to; only ever one that succeeded there and is kept."""
    releases = {row.host_id: row for row in service.host_releases(session, environment)}
    targets: dict[int, str] = {}
    problems: list[str] = []
    for host in hosts:
        row = releases.get(host.id)
        good = [v for v in (row.good_versions if row else []) if v in (row.kept_versions or [])]
        current = row.current_version if row else None
        if to is not None:
            if to not in good:
                problems.append(
                    f"{host.name}: {to} never succeeded there or is no longer kept "
                    f"(good and kept: {', '.join(good) or 'none'})"
                )
            targets[host.id] = to
            continue
        earlier = [v for v in good if v != current]
        if not earlier:
            problems.append(f"{host.name}: no earlier release that worked is kept")
            continue
        targets[host.id] = earlier[-1]
    if problems:
        raise ConflictError(
            "cannot roll back: " + "; ".join(problems),
            code="no_rollback_target",
            details={"hosts": problems},
        )
    return targets


def rollback(
    session: Session,
    settings: Settings,
    project: Project,
    environment: Environment,
    body: RollbackCreate,
    *,
    actor: str | None,
) -> Started:
    hosts = plan.select_hosts(session, environment, body.hosts)
    targets = rollback_targets(session, environment, hosts, body.to)
    if body.db and not environment.database:
        raise InputError(
            f"environment {environment.name} has no database to roll back",
            field="db",
            code="no_database",
        )
    strategy = dict(environment.strategy or {})
    # A rollback is an emergency: one batch, as parallel as allowed, no pause.
    batches = [[host.id for host in hosts]]
    versions = sorted(set(targets.values()), key=dbpackage.version_key)
    deployment = Deployment(
        project_id=project.id,
        environment_id=environment.id,
        kind="rollback",
        version=versions[0] if len(versions) == 1 else None,
        plan={
            "batches": batches,
            "strategy": {"parallel": strategy.get("parallel")},
            "targets": {str(k): v for k, v in targets.items()},
            "db_to": (body.to or versions[0]) if body.db else None,
        },
        options={"hosts": body.hosts, "db": body.db, "to": body.to},
        actor=actor,
    )
    return start(
        session,
        settings,
        deployment,
        environment,
        project,
        hosts,
        batches,
        kind="release.rollback",
        actor=actor,
        trigger=Trigger.rollback if actor is None else Trigger.api,
    )

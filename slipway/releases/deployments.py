"""Deployments and rollbacks as the API sees them: start, continue, cancel, resume, and views."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.core.config import Settings
from slipway.core.db import utcnow
from slipway.core.errors import ConflictError, InputError, InvalidStateError, NotFoundError
from slipway.core.secrets import Vault
from slipway.jobs import service as jobs
from slipway.jobs.models import Operation, OperationStatus, Trigger
from slipway.releases import dbpackage, packages, plan, service
from slipway.releases.models import (
    FLAT_STEPS,
    ROLLBACK_STEPS,
    VERSIONED_STEPS,
    Deployment,
    DeploymentHost,
    DeploymentStatus,
    Environment,
    HostRelease,
    HostStatus,
    Package,
    Project,
)
from slipway.releases.schemas import DeploymentCreate, RollbackCreate
from slipway.targets.models import Host

FINAL = [s.value for s in DeploymentStatus if s.is_final]


def lock_keys(environment: Environment, host_ids: list[int]) -> list[str]:
    return [f"host:{environment.id}:{host_id}" for host_id in host_ids]


def get_or_raise(session: Session, environment: Environment, deployment_id: str) -> Deployment:
    deployment = None
    if deployment_id.isdigit():
        deployment = session.get(Deployment, int(deployment_id))
    if deployment is None or deployment.environment_id != environment.id:
        raise NotFoundError(
            f"deployment {deployment_id!r} does not exist in environment {environment.name}",
            code="deployment_not_found",
        )
    return reconcile(session, deployment)


def list_(session: Session, environment: Environment, *, limit: int, before: int | None):
    query = select(Deployment).where(Deployment.environment_id == environment.id)
    if before is not None:
        query = query.where(Deployment.id < before)
    rows = list(session.scalars(query.order_by(Deployment.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = [reconcile(session, row) for row in rows[:limit]]
    return rows, (rows[-1].id if more else None)


def reconcile(session: Session, deployment: Deployment) -> Deployment:
    """A deployment whose operation ended without it noticing (canceled while queued, worker
    killed) takes the operation's end: the job is the only other writer of its status."""
    if DeploymentStatus(deployment.status).is_final or deployment.operation_id is None:
        return deployment
    operation = session.get(Operation, deployment.operation_id)
    if operation is None or operation.status not in (
        OperationStatus.failed,
        OperationStatus.canceled,
        OperationStatus.succeeded,
    ):
        return deployment
    deployment.status = (
        DeploymentStatus.canceled
        if operation.status == OperationStatus.canceled
        else DeploymentStatus.failed
    )
    deployment.error = operation.error or deployment.error
    deployment.finished_at = operation.finished_at or utcnow()
    for host in hosts_of(session, deployment):
        if host.status == HostStatus.pending:
            host.status = HostStatus.skipped
        elif host.status == HostStatus.running:
            # Its worker died mid-step: what it runs is known only after a resume looks.
            host.status = HostStatus.failed
            host.error = {"code": "interrupted", "message": "the worker stopped mid-step"}
    session.commit()
    return deployment


def hosts_of(session: Session, deployment: Deployment) -> list[DeploymentHost]:
    return list(
        session.scalars(
            select(DeploymentHost)
            .where(DeploymentHost.deployment_id == deployment.id)
            .order_by(DeploymentHost.batch, DeploymentHost.id)
        )
    )


def _check_approval(environment: Environment) -> None:
    if environment.requires_approval:
        raise InvalidStateError(
            f"environment {environment.name} requires an approval for deploys, and approvals "
            "are not available in this version yet; set requires_approval to false to deploy",
            code="approval_required",
        )


def _strategy(environment: Environment, body_strategy: Any) -> dict[str, Any]:
    strategy = dict(environment.strategy or {})
    if body_strategy is not None:
        strategy.update(body_strategy.model_dump(exclude_unset=True))
    return strategy


@dataclass
class Started:
    deployment: Deployment | None
    operation: Operation | None
    dry_run: dict[str, Any] | None = None


def _submit(
    session: Session,
    settings: Settings,
    deployment: Deployment,
    environment: Environment,
    project: Project,
    host_ids: list[int],
    *,
    kind: str,
    actor: str | None,
    trigger: str,
) -> Operation:
    operation = jobs.submit(
        session,
        settings,
        kind=kind,
        subject=f"{project.name}/{environment.name}",
        params={"deployment_id": deployment.id},
        actor=actor,
        trigger=trigger,
        lock_keys=lock_keys(environment, host_ids),
        enqueue=False,
    )
    deployment.operation_id = operation.id
    session.commit()
    jobs.enqueue_all(settings, [operation] if operation.status == OperationStatus.queued else [])
    return operation


def deploy(
    session: Session,
    settings: Settings,
    vault: Vault,
    project: Project,
    environment: Environment,
    body: DeploymentCreate,
    *,
    actor: str | None,
    trigger: str = Trigger.api,
) -> Started:
    _check_approval(environment)
    package = (
        packages.get_package_or_raise(session, project, body.package, is_db=False)
        if body.package
        else None
    )
    db_package = (
        packages.get_package_or_raise(session, project, body.db_package, is_db=True)
        if body.db_package
        else None
    )
    if db_package is not None and not environment.database:
        raise InputError(
            f"environment {environment.name} has no database; set its database "
            "(url and password or credential) before deploying a DB package",
            field="db_package",
            code="no_database",
        )
    hosts = plan.select_hosts(session, environment, body.hosts) if package else []
    if package is not None:
        plan.check_package_scripts(project, package)
        plan.render(session, settings, vault, environment, package, hosts)
    strategy = _strategy(environment, body.strategy)
    batches = plan.batches([host.id for host in hosts], strategy)
    if body.dry_run:
        return Started(
            None,
            None,
            dry_run=_dry_run(
                session, settings, vault, environment, package, db_package, hosts, batches
            ),
        )
    deployment = Deployment(
        project_id=project.id,
        environment_id=environment.id,
        kind="deploy",
        package_id=package.id if package else None,
        db_package_id=db_package.id if db_package else None,
        version=package.version if package else None,
        db_version=db_package.version if db_package else None,
        plan={"batches": batches, "strategy": strategy},
        options={"hosts": body.hosts},
        actor=actor,
    )
    session.add(deployment)
    session.flush()
    _add_hosts(session, deployment, hosts, batches)
    operation = _submit(
        session,
        settings,
        deployment,
        environment,
        project,
        [host.id for host in hosts],
        kind="release.deploy",
        actor=actor,
        trigger=trigger,
    )
    return Started(deployment, operation)


def _add_hosts(
    session: Session, deployment: Deployment, hosts: list[Host], batches: list[list[int]]
) -> None:
    batch_of = {host_id: index for index, batch in enumerate(batches) for host_id in batch}
    for host in hosts:
        session.add(
            DeploymentHost(
                deployment_id=deployment.id,
                host_id=host.id,
                host_name=host.name,
                batch=batch_of[host.id],
            )
        )


def _dry_run(
    session: Session,
    settings: Settings,
    vault: Vault,
    environment: Environment,
    package: Package | None,
    db_package: Package | None,
    hosts: list[Host],
    batches: list[list[int]],
) -> dict[str, Any]:
    from slipway.releases import dbplan

    names = {host.id: host.name for host in hosts}
    releases = {row.host_id: row for row in service.host_releases(session, environment)}
    return {
        "version": package.version if package else None,
        "db_version": db_package.version if db_package else None,
        "batches": [[names[host_id] for host_id in batch] for batch in batches],
        "hosts": [
            {
                "host": host.name,
                "current_version": releases[host.id].current_version
                if host.id in releases
                else None,
            }
            for host in hosts
        ],
        "db": dbplan.upgrade_plan(session, settings, vault, environment, db_package).to_dict()
        if db_package
        else None,
        "variables": (package.inspection or {}).get("variables", {}) if package else {},
    }


def continue_(session: Session, deployment: Deployment) -> Deployment:
    if deployment.status != DeploymentStatus.awaiting_continue:
        raise InvalidStateError(
            f"deployment {deployment.id} is {deployment.status}, not waiting for a continue",
            details={"status": deployment.status},
        )
    deployment.continued_batches = max(deployment.continued_batches, deployment.next_batch)
    session.commit()
    return deployment


def cancel(
    session: Session, settings: Settings, deployment: Deployment, *, actor: str | None
) -> Deployment:
    if DeploymentStatus(deployment.status).is_final or deployment.operation_id is None:
        raise InvalidStateError(
            f"deployment {deployment.id} is already {deployment.status}",
            details={"status": deployment.status},
        )
    jobs.cancel(session, settings, deployment.operation_id, actor=actor)
    session.refresh(deployment)
    return reconcile(session, deployment)


def resume(
    session: Session,
    settings: Settings,
    project: Project,
    environment: Environment,
    deployment: Deployment,
    *,
    actor: str | None,
) -> Operation:
    if not DeploymentStatus(deployment.status).is_final or deployment.status == "succeeded":
        raise InvalidStateError(
            f"deployment {deployment.id} is {deployment.status}; only a failed or canceled "
            "deployment can be resumed",
            details={"status": deployment.status},
        )
    hosts = hosts_of(session, deployment)
    left = [host for host in hosts if host.status != HostStatus.succeeded]
    if not left and not (deployment.db_package_id and not deployment.db_result):
        raise InvalidStateError(f"deployment {deployment.id} has nothing left to do")
    for host in left:
        host.status = HostStatus.pending
        host.error = None
    deployment.status = DeploymentStatus.queued
    deployment.error = None
    deployment.finished_at = None
    deployment.next_batch = min((host.batch for host in left), default=0)
    deployment.continued_batches = deployment.next_batch
    return _submit(
        session,
        settings,
        deployment,
        environment,
        project,
        [host.host_id for host in hosts],
        kind="release.resume",
        actor=actor,
        trigger=Trigger.api,
    )


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
    session.add(deployment)
    session.flush()
    _add_hosts(session, deployment, hosts, batches)
    operation = _submit(
        session,
        settings,
        deployment,
        environment,
        project,
        [host.id for host in hosts],
        kind="release.rollback",
        actor=actor,
        trigger=Trigger.rollback if actor is None else Trigger.api,
    )
    return Started(deployment, operation)


def _estimate(session: Session, deployment: Deployment, done: int, total: int) -> float | None:
    """Seconds left, from how long the environment's recent deployments took per step."""
    if DeploymentStatus(deployment.status).is_final or total == 0:
        return None
    recent = session.scalars(
        select(Deployment)
        .where(
            Deployment.environment_id == deployment.environment_id,
            Deployment.kind == deployment.kind,
            Deployment.status == DeploymentStatus.succeeded,
            Deployment.id != deployment.id,
        )
        .order_by(Deployment.id.desc())
        .limit(5)
    ).all()
    per_step: list[float] = []
    for past in recent:
        steps = sum(len(host.steps or []) for host in hosts_of(session, past))
        if past.started_at and past.finished_at and steps:
            per_step.append((past.finished_at - past.started_at).total_seconds() / steps)
    if not per_step:
        return None
    parallel = max(1, int((deployment.plan.get("strategy") or {}).get("parallel") or 1))
    return round(sum(per_step) / len(per_step) * (total - done) / parallel, 1)


def view(session: Session, deployment: Deployment) -> dict[str, Any]:
    project = session.get(Project, deployment.project_id)
    environment = session.get(Environment, deployment.environment_id)
    hosts = hosts_of(session, deployment)
    names = {host.host_id: host.host_name for host in hosts}
    per_host = steps_per_host(deployment, environment)
    total = per_host * len(hosts) + (1 if deployment.db_package_id or deployment.db_result else 0)
    done = sum(
        per_host
        if host.status in (HostStatus.succeeded, HostStatus.skipped)
        else sum(1 for step in host.steps or [] if step.get("status") == "done")
        for host in hosts
    ) + (1 if deployment.db_result else 0)
    done = min(done, total)
    return {
        "id": deployment.id,
        "project": project.name if project else "",
        "environment": environment.name if environment else "",
        "kind": deployment.kind,
        "version": deployment.version,
        "db_version": deployment.db_version,
        "status": deployment.status,
        "operation_id": deployment.operation_id,
        "batches": [[names.get(h, str(h)) for h in batch] for batch in deployment.plan["batches"]],
        "next_batch": deployment.next_batch,
        "strategy": deployment.plan.get("strategy") or {},
        "hosts": [
            {
                "host": host.host_name,
                "batch": host.batch,
                "status": host.status,
                "previous_version": host.previous_version,
                "version": host.version,
                "steps": host.steps or [],
                "error": host.error,
                "started_at": host.started_at,
                "finished_at": host.finished_at,
            }
            for host in hosts
        ],
        "progress": {
            "done": done,
            "total": total,
            "percent": int(done * 100 / total) if total else 100,
        },
        "estimated_seconds_left": _estimate(session, deployment, done, total),
        "db": deployment.db_result,
        "error": deployment.error,
        "actor": deployment.actor,
        "created_at": deployment.created_at,
        "started_at": deployment.started_at,
        "finished_at": deployment.finished_at,
    }


def steps_per_host(deployment: Deployment, environment: Environment | None) -> int:
    if deployment.kind == "rollback":
        return len(ROLLBACK_STEPS)
    is_flat = environment is not None and environment.layout == "flat"
    return len(FLAT_STEPS if is_flat else VERSIONED_STEPS)


def host_release_view(row: HostRelease) -> dict[str, Any]:
    return {
        "host": row.host_name,
        "current_version": row.current_version,
        "good_versions": row.good_versions or [],
        "kept_versions": row.kept_versions or [],
        "deployment": row.deployment_id,
        "updated_at": row.updated_at,
    }

"""Starting and steering deployments: deploy (or its dry run), continue, cancel, resume, and
what deploys and rollbacks (`rollbacks`) share: their hosts, their operation, reconciling with it
and the steps a host runs (also counted by the jobs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.core.config import Settings
from slipway.core.db import utcnow
from slipway.core.errors import InputError, InvalidStateError
from slipway.core.secrets import Vault
from slipway.jobs import service as jobs
from slipway.jobs.models import Operation, OperationStatus, Trigger
from slipway.releases import packages, plan, service
from slipway.releases.models import (
    FLAT_STEPS,
    ROLLBACK_STEPS,
    VERSIONED_STEPS,
    Deployment,
    DeploymentHost,
    DeploymentStatus,
    Environment,
    HostStatus,
    Package,
    Project,
)
from slipway.releases.schemas import DeploymentCreate
from slipway.targets.models import Host


def lock_keys(environment: Environment, host_ids: list[int]) -> list[str]:
    return [f"host:{environment.id}:{host_id}" for host_id in host_ids]


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


def submit(
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
    return start(
        session,
        settings,
        deployment,
        environment,
        project,
        hosts,
        batches,
        kind="release.deploy",
        actor=actor,
        trigger=trigger,
    )


def start(
    session: Session,
    settings: Settings,
    deployment: Deployment,
    environment: Environment,
    project: Project,
    hosts: list[Host],
    batches: list[list[int]],
    *,
    kind: str,
    actor: str | None,
    trigger: str,
) -> Started:
    """Store a new deployment (or rollback) with a row per host, and submit its operation."""
    session.add(deployment)
    session.flush()
    _add_hosts(session, deployment, hosts, batches)
    operation = submit(
        session,
        settings,
        deployment,
        environment,
        project,
        [host.id for host in hosts],
        kind=kind,
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
    return submit(
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


def steps_per_host(deployment: Deployment, environment: Environment | None) -> int:
    if deployment.kind == "rollback":
        return len(ROLLBACK_STEPS)
    is_flat = environment is not None and environment.layout == "flat"
    return len(FLAT_STEPS if is_flat else VERSIONED_STEPS)

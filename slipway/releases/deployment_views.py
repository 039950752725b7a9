"""Reading deployments: finding one or a page of them, and what the API shows of each (hosts,
steps, progress, time left) and of what each host of an environment runs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.core.errors import NotFoundError
from slipway.releases.deployments import hosts_of, reconcile, steps_per_host
from slipway.releases.models import (
    Deployment,
    DeploymentStatus,
    Environment,
    HostRelease,
    HostStatus,
    Project,
)


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


def list_(
    session: Session, environment: Environment, *, limit: int, before: int | None
) -> tuple[list[Deployment], int | None]:
    query = select(Deployment).where(Deployment.environment_id == environment.id)
    if before is not None:
        query = query.where(Deployment.id < before)
    rows = list(session.scalars(query.order_by(Deployment.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = [reconcile(session, row) for row in rows[:limit]]
    return rows, (rows[-1].id if more else None)


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


def host_release_view(row: HostRelease) -> dict[str, Any]:
    return {
        "host": row.host_name,
        "current_version": row.current_version,
        "good_versions": row.good_versions or [],
        "kept_versions": row.kept_versions or [],
        "deployment": row.deployment_id,
        "updated_at": row.updated_at,
    }

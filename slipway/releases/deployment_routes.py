"""HTTP routes of deployments: start (or dry-run), list, read, continue, cancel, resume, and
roll back, all under one environment of a project."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from slipway.api.deps import Operator, SessionDep, SettingsDep, Viewer
from slipway.core.secrets import open_vault
from slipway.jobs.routes import accepted
from slipway.jobs.schemas import OperationEnvelope, OperationRead
from slipway.releases import deployment_views, deployments, rollbacks, service
from slipway.releases.models import Environment, Project
from slipway.releases.schemas import (
    DeploymentAccepted,
    DeploymentCreate,
    DeploymentList,
    DeploymentPlanRead,
    DeploymentRead,
    RollbackCreate,
)

router = APIRouter(prefix="/projects/{project}/environments/{environment}", tags=["releases"])


def _both(session: Any, project: str, environment: str) -> tuple[Project, Environment]:
    row = service.get_project_or_raise(session, project)
    return row, service.get_environment_or_raise(session, row, environment)


@router.post(
    "/deployments",
    response_model=DeploymentAccepted | DeploymentPlanRead,
    status_code=status.HTTP_202_ACCEPTED,
)
def create_deployment(
    principal: Operator,
    session: SessionDep,
    settings: SettingsDep,
    project: str,
    environment: str,
    body: DeploymentCreate,
    request: Request,
    response: Response,
) -> Any:
    """Deploy a package version (and/or a DB package) as a `release.deploy` operation.

    With `dry_run`, answers 200 with the plan (batches, hosts, DB delta) and touches nothing."""
    row, env = _both(session, project, environment)
    started = deployments.deploy(
        session, settings, open_vault(session, settings), row, env, body, actor=principal.name
    )
    if started.dry_run is not None:
        response.status_code = status.HTTP_200_OK
        return DeploymentPlanRead(**started.dry_run)
    assert started.deployment is not None and started.operation is not None
    envelope = accepted(response, request, OperationRead.of(started.operation))
    return DeploymentAccepted(
        operation=envelope.operation,
        deployment=DeploymentRead(**deployment_views.view(session, started.deployment)),
    )


@router.get("/deployments", response_model=DeploymentList)
def list_deployments(
    _: Viewer,
    session: SessionDep,
    project: str,
    environment: str,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    cursor: Annotated[str | None, Query(pattern=r"^\d+$")] = None,
) -> DeploymentList:
    _, env = _both(session, project, environment)
    rows, next_id = deployment_views.list_(
        session, env, limit=limit, before=int(cursor) if cursor else None
    )
    return DeploymentList(
        items=[DeploymentRead(**deployment_views.view(session, r)) for r in rows],
        next_cursor=str(next_id) if next_id else None,
    )


@router.get("/deployments/{deployment}", response_model=DeploymentRead)
def get_deployment(
    _: Viewer, session: SessionDep, project: str, environment: str, deployment: str
) -> DeploymentRead:
    _, env = _both(session, project, environment)
    found = deployment_views.get_or_raise(session, env, deployment)
    return DeploymentRead(**deployment_views.view(session, found))


@router.post("/deployments/{deployment}/continue", response_model=DeploymentRead)
def continue_deployment(
    _: Operator, session: SessionDep, project: str, environment: str, deployment: str
) -> DeploymentRead:
    _, env = _both(session, project, environment)
    found = deployments.continue_(session, deployment_views.get_or_raise(session, env, deployment))
    return DeploymentRead(**deployment_views.view(session, found))


@router.post("/deployments/{deployment}/cancel", response_model=DeploymentRead)
def cancel_deployment(
    principal: Operator,
    session: SessionDep,
    settings: SettingsDep,
    project: str,
    environment: str,
    deployment: str,
) -> DeploymentRead:
    _, env = _both(session, project, environment)
    found = deployment_views.get_or_raise(session, env, deployment)
    found = deployments.cancel(session, settings, found, actor=principal.name)
    return DeploymentRead(**deployment_views.view(session, found))


@router.post(
    "/deployments/{deployment}/resume",
    response_model=DeploymentAccepted,
    status_code=status.HTTP_202_ACCEPTED,
)
def resume_deployment(
    principal: Operator,
    session: SessionDep,
    settings: SettingsDep,
    project: str,
    environment: str,
    deployment: str,
    request: Request,
    response: Response,
) -> DeploymentAccepted:
    row, env = _both(session, project, environment)
    found = deployment_views.get_or_raise(session, env, deployment)
    operation = deployments.resume(session, settings, row, env, found, actor=principal.name)
    envelope = accepted(response, request, OperationRead.of(operation))
    return DeploymentAccepted(
        operation=envelope.operation,
        deployment=DeploymentRead(**deployment_views.view(session, found)),
    )


@router.post("/rollback", response_model=DeploymentAccepted, status_code=status.HTTP_202_ACCEPTED)
def rollback(
    principal: Operator,
    session: SessionDep,
    settings: SettingsDep,
    project: str,
    environment: str,
    body: RollbackCreate,
    request: Request,
    response: Response,
) -> DeploymentAccepted:
    """Switch hosts back to a kept release that succeeded there (default: the previous one)."""
    row, env = _both(session, project, environment)
    started = rollbacks.rollback(session, settings, row, env, body, actor=principal.name)
    assert started.deployment is not None and started.operation is not None
    envelope: OperationEnvelope = accepted(response, request, OperationRead.of(started.operation))
    return DeploymentAccepted(
        operation=envelope.operation,
        deployment=DeploymentRead(**deployment_views.view(session, started.deployment)),
    )

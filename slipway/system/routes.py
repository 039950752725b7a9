from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse

from slipway.api.deps import Operator, SessionDep, SettingsDep, Viewer
from slipway.jobs import service as jobs_service
from slipway.jobs.models import Trigger
from slipway.jobs.routes import accepted
from slipway.jobs.schemas import OperationEnvelope, OperationRead
from slipway.system import metrics, service

router = APIRouter(tags=["system"])
metrics_router = APIRouter(tags=["system"])


@router.get("/health")
def health(session: SessionDep, settings: SettingsDep) -> JSONResponse:
    """200 when the database and Redis answer and a worker is alive; 503 naming what fails."""
    ok, body = service.health(session, settings)
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/version")
def version(_: Viewer, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    """The version manifest: slipway, its components, schema revision and supported systems."""
    return service.version(session, settings)


@router.post(
    "/system/check", response_model=OperationEnvelope, status_code=status.HTTP_202_ACCEPTED
)
def system_check(
    principal: Operator,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
) -> OperationEnvelope:
    """Check the database, Redis, workers and data dir as a `system.check` operation."""
    operation = jobs_service.submit(
        session, settings, kind="system.check", actor=principal.name, trigger=Trigger.api
    )
    return accepted(response, request, OperationRead.of(operation))


@metrics_router.get("/metrics", include_in_schema=True)
def prometheus_metrics(_: Viewer, settings: SettingsDep) -> Response:
    """Prometheus text format: operations by kind and status, durations, queue depth, workers."""
    return Response(metrics.render(settings), media_type="text/plain; version=0.0.4")

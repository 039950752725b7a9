"""The builds API: submit a spec (FastBuild's request JSON as is, or slipway's), read it back."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response, status
from fastapi.responses import PlainTextResponse

from slipway.api.deps import Operator, SessionDep, SettingsDep, Viewer
from slipway.api.pagination import decode_cursor, encode_cursor
from slipway.builds import service
from slipway.builds.models import BuildStatus
from slipway.builds.schemas import BuildAccepted, BuildList, BuildRead
from slipway.jobs.routes import accepted
from slipway.jobs.schemas import OperationEnvelope, OperationRead

router = APIRouter(prefix="/builds", tags=["builds"])

SPEC_EXAMPLE = {
    "task_name": "ubuntu-tools",
    "base_image": "127.0.0.1:5000/base/ubuntu:22.04",
    "target_image": "127.0.0.1:5000/team/tools:1",
    "apt": {"mirror": {"type": "ali", "file_name": "ubuntu-22.04.list"}, "packages": ["curl"]},
}


def _read(session: Any, build: Any) -> BuildRead:
    return BuildRead.of(build, service.operation_of(session, build))


@router.post("", response_model=BuildAccepted, status_code=status.HTTP_202_ACCEPTED)
def submit_build(
    principal: Operator,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
    body: Annotated[dict[str, Any], Body(examples=[SPEC_EXAMPLE])],
    endpoint: Annotated[
        str | None, Query(max_length=63, description="the Docker endpoint to build on")
    ] = None,
) -> BuildAccepted:
    """Build an image as a `build.image` operation.

    The body is FastBuild's request JSON exactly as its clients send it (`task_data`,
    `dockerfile_json`, `webSSHSecret`, `jupyterLabSecret`) or slipway's own spec (see
    docs/builds.md). The Dockerfile is rendered now: `GET /builds/{id}/dockerfile` shows it.
    """
    done = service.submit(session, settings, body=body, actor=principal.name, endpoint=endpoint)
    envelope = accepted(response, request, OperationRead.of(done.operation))
    return BuildAccepted(operation=envelope.operation, build=_read(session, done.build))


@router.get("", response_model=BuildList)
def list_builds(
    _: Viewer,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    status_: Annotated[BuildStatus | None, Query(alias="status")] = None,
    task_name: Annotated[str | None, Query(max_length=255)] = None,
) -> BuildList:
    before = decode_cursor(cursor, int)
    builds = service.list_(session, limit=limit, before=before, status=status_, task_name=task_name)
    items = BuildRead.list_of(builds, service.operations_of(session, builds))
    next_cursor = encode_cursor(builds[-1].id) if len(builds) == limit else None
    return BuildList(items=items, next_cursor=next_cursor)


@router.get("/{build_id}", response_model=BuildRead)
def get_build(_: Viewer, session: SessionDep, build_id: str) -> BuildRead:
    return _read(session, service.get_or_raise(session, build_id))


@router.get("/{build_id}/dockerfile", response_class=PlainTextResponse)
def get_dockerfile(_: Viewer, session: SessionDep, build_id: str) -> PlainTextResponse:
    """The Dockerfile exactly as it is (or was) built."""
    build = service.get_or_raise(session, build_id)
    return PlainTextResponse(build.dockerfile, media_type="text/plain; charset=utf-8")


@router.post("/{build_id}/cancel", response_model=OperationEnvelope)
def cancel_build(
    principal: Operator, session: SessionDep, settings: SettingsDep, build_id: str
) -> OperationEnvelope:
    """Stop the build: removed from the queue, or stopped and its leftovers removed."""
    build = service.get_or_raise(session, build_id)
    operation = service.cancel(session, settings, build, actor=principal.name)
    return OperationEnvelope(operation=OperationRead.of(operation))

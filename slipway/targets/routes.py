"""/api/v1/docker-endpoints: admins write, viewers read, operators may test.

Create and update take multipart/form-data (text fields, `labels` as JSON text, and the files
`ca`, `cert`, `key` or `tls_bundle`) or a JSON object with the PEMs as text.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status
from pydantic import BaseModel

from slipway.api.deps import Admin, Operator, SessionDep, SettingsDep, Viewer
from slipway.api.pagination import decode_cursor, next_cursor
from slipway.targets import service
from slipway.targets.forms import create_input, update_input
from slipway.targets.schemas import (
    DockerEndpointCreate,
    DockerEndpointList,
    DockerEndpointRead,
    DockerEndpointRevisionList,
    DockerEndpointRevisionRead,
    DockerEndpointTestResult,
    DockerEndpointUpdate,
    EngineInfo,
)
from slipway.targets.tls import TLSUpload

router = APIRouter(prefix="/docker-endpoints", tags=["docker endpoints"])


def _request_body(model: type[BaseModel], *, is_create: bool) -> dict[str, Any]:
    """The OpenAPI description of a body that may be multipart/form-data or JSON."""
    text = {"type": "string"}
    binary = {"type": "string", "format": "binary"}
    properties: dict[str, Any] = {
        "url": {**text, "description": "unix:///path/to/docker.sock or tcp://host:port"},
        "labels": {**text, "description": 'a JSON object of strings, e.g. {"team": "web"}'},
        "description": text,
        "ca": {**binary, "description": "the engine's CA certificate (PEM)"},
        "cert": {**binary, "description": "the client certificate (PEM)"},
        "key": {**binary, "description": "the client key (PEM); stored encrypted"},
        "tls_bundle": {
            **binary,
            "description": "instead of ca/cert/key: a tar holding ca.pem, cert.pem, key.pem",
        },
    }
    if is_create:
        properties = {"name": {**text, "description": "a DNS label"}, **properties}
    else:
        properties["remove_tls"] = {"type": "boolean"}
    form = {"type": "object", "properties": properties}
    if is_create:
        form["required"] = ["name", "url"]
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": form},
                "application/json": {"schema": model.model_json_schema()},
            },
        }
    }


CreateInput = Annotated[tuple[DockerEndpointCreate, TLSUpload], Depends(create_input)]
UpdateInput = Annotated[tuple[DockerEndpointUpdate, TLSUpload], Depends(update_input)]


# --- routes -----------------------------------------------------------------------------------


@router.get("", response_model=DockerEndpointList)
def list_endpoints(
    _: Viewer,
    session: SessionDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> DockerEndpointList:
    after = decode_cursor(cursor, str)
    items = service.list_(session, settings=settings, limit=limit + 1, after=after)
    session.commit()  # the built-in `local` may have been written just now
    return DockerEndpointList(
        items=[DockerEndpointRead.of(item) for item in items[:limit]],
        next_cursor=next_cursor(items, limit, "name"),
    )


@router.post(
    "",
    response_model=DockerEndpointRead,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_request_body(DockerEndpointCreate, is_create=True),
)
def create_endpoint(
    principal: Admin, session: SessionDep, settings: SettingsDep, body: CreateInput
) -> DockerEndpointRead:
    """Add an engine; it must answer a ping with this address and TLS material to be saved."""
    fields, upload = body
    endpoint = service.create(
        session,
        settings,
        name=fields.name,
        url=fields.url,
        labels=fields.labels,
        description=fields.description,
        tls=upload,
        actor=principal.name,
    )
    session.commit()
    return DockerEndpointRead.of(endpoint)


@router.get("/{name}", response_model=DockerEndpointRead)
def get_endpoint(
    _: Viewer, session: SessionDep, settings: SettingsDep, name: str
) -> DockerEndpointRead:
    endpoint = service.get_or_raise(session, name, settings=settings)
    session.commit()
    return DockerEndpointRead.of(endpoint)


@router.patch(
    "/{name}",
    response_model=DockerEndpointRead,
    openapi_extra=_request_body(DockerEndpointUpdate, is_create=False),
)
def update_endpoint(
    principal: Admin, session: SessionDep, settings: SettingsDep, name: str, body: UpdateInput
) -> DockerEndpointRead:
    """Change an endpoint: a new revision; a new address or TLS material is pinged first."""
    fields, upload = body
    endpoint = service.update(
        session,
        settings,
        name=name,
        url=fields.url,
        labels=fields.labels,
        description=fields.description,
        tls=upload,
        remove_tls=fields.remove_tls,
        actor=principal.name,
    )
    session.commit()
    return DockerEndpointRead.of(endpoint)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_endpoint(_: Admin, session: SessionDep, settings: SettingsDep, name: str) -> None:
    service.delete(session, settings, name=name)
    session.commit()


@router.post("/{name}/test", response_model=DockerEndpointTestResult)
def ping_endpoint(
    _: Operator, session: SessionDep, settings: SettingsDep, name: str
) -> DockerEndpointTestResult:
    """Ping the engine now; the outcome is also recorded on the endpoint."""
    check = service.probe(session, settings, name=name)
    session.commit()
    if check.error is not None:
        raise check.error
    assert check.engine is not None and check.endpoint.last_checked_at is not None
    return DockerEndpointTestResult(
        name=check.endpoint.name,
        checked_at=check.endpoint.last_checked_at,
        engine=EngineInfo.model_validate(check.engine),
    )


@router.get("/{name}/revisions", response_model=DockerEndpointRevisionList)
def list_revisions(
    _: Viewer,
    session: SessionDep,
    settings: SettingsDep,
    name: str,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> DockerEndpointRevisionList:
    """Every saved state of the endpoint, newest (the one in effect) first."""
    before = decode_cursor(cursor, int)
    items = service.revisions(session, name=name, settings=settings, limit=limit + 1, before=before)
    session.commit()
    return DockerEndpointRevisionList(
        items=[DockerEndpointRevisionRead.of(item) for item in items[:limit]],
        next_cursor=next_cursor(items, limit, "revision"),
    )

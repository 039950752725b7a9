"""/api/v1/registries: admins write, operators may test, viewers read (never the password).

Creating a registry, or changing its url, username, password or insecure flag, logs in to it
first: a refused login answers 422 `registry_auth_failed` naming `password`, an unreachable
registry 502 `registry_unreachable`, and nothing is saved.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from slipway.api.deps import Admin, Operator, SessionDep, SettingsDep, Viewer
from slipway.api.pagination import decode_cursor, next_cursor
from slipway.targets import registries, registry_changes
from slipway.targets.registry_schemas import (
    RegistryCreate,
    RegistryList,
    RegistryRead,
    RegistryRevisionList,
    RegistryRevisionRead,
    RegistryTestResult,
    RegistryUpdate,
)

router = APIRouter(prefix="/registries", tags=["registries"])

Limit = Annotated[int, Query(ge=1, le=500)]


@router.get("", response_model=RegistryList)
def list_registries(
    _: Viewer, session: SessionDep, limit: Limit = 100, cursor: str | None = None
) -> RegistryList:
    items = registries.list_registries(session, limit=limit + 1, after=decode_cursor(cursor, str))
    return RegistryList(
        items=[RegistryRead.of(item) for item in items[:limit]],
        next_cursor=next_cursor(items, limit, "name"),
    )


@router.post("", response_model=RegistryRead, status_code=status.HTTP_201_CREATED)
def create_registry(
    principal: Admin, session: SessionDep, settings: SettingsDep, body: RegistryCreate
) -> RegistryRead:
    """Add a registry: it is logged in to first (Basic or Bearer token), the password stored
    encrypted."""
    registry = registry_changes.create_registry(
        session,
        settings,
        name=body.name,
        url=body.url,
        username=body.username,
        password=body.password,
        dns_alias=body.dns_alias,
        insecure=body.insecure,
        description=body.description,
        actor=principal.name,
    )
    session.commit()
    return RegistryRead.of(registry)


@router.get("/{name}", response_model=RegistryRead)
def get_registry(_: Viewer, session: SessionDep, name: str) -> RegistryRead:
    return RegistryRead.of(registries.get_registry_or_raise(session, name))


@router.patch("/{name}", response_model=RegistryRead)
def update_registry(
    principal: Admin, session: SessionDep, settings: SettingsDep, name: str, body: RegistryUpdate
) -> RegistryRead:
    """Change a registry: a new revision; a new url, username, password or insecure flag is
    logged in with first."""
    dns_alias = body.dns_alias if "dns_alias" in body.model_fields_set else registry_changes.KEEP
    registry = registry_changes.update_registry(
        session,
        settings,
        name=name,
        url=body.url,
        username=body.username,
        password=body.password,
        dns_alias=dns_alias,
        insecure=body.insecure,
        description=body.description,
        actor=principal.name,
    )
    session.commit()
    return RegistryRead.of(registry)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_registry(_: Admin, session: SessionDep, settings: SettingsDep, name: str) -> None:
    """Remove a registry and its password; refused (409) while something uses it."""
    registry_changes.delete_registry(session, settings, name=name)
    session.commit()


@router.post("/{name}/test", response_model=RegistryTestResult)
def test_registry(
    _: Operator, session: SessionDep, settings: SettingsDep, name: str
) -> RegistryTestResult:
    """Log in now with the saved password; the outcome is also recorded on the registry."""
    tested = registries.probe_registry(session, settings, name=name)
    session.commit()
    if tested.error is not None:
        raise tested.error
    assert tested.found is not None and tested.registry.last_checked_at is not None
    return RegistryTestResult(
        name=tested.registry.name,
        checked_at=tested.registry.last_checked_at,
        base_url=tested.found.base_url,
        auth_scheme=tested.found.auth_scheme,
        api_version=tested.found.api_version,
    )


@router.get("/{name}/revisions", response_model=RegistryRevisionList)
def list_revisions(
    _: Viewer, session: SessionDep, name: str, limit: Limit = 100, cursor: str | None = None
) -> RegistryRevisionList:
    """Every saved state of the registry, newest (the one in effect) first."""
    before = decode_cursor(cursor, int)
    items = registries.registry_revisions(session, name, limit=limit + 1, before=before)
    return RegistryRevisionList(
        items=[RegistryRevisionRead.of(item) for item in items[:limit]],
        next_cursor=next_cursor(items, limit, "revision"),
    )

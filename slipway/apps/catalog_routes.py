"""The catalog and its sources over HTTP: anyone may read, admins change the sources."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from slipway.api.deps import Admin, SessionDep, SettingsDep, Viewer
from slipway.api.pagination import decode_cursor, encode_cursor, invalid_cursor
from slipway.apps import catalog_sources as sources
from slipway.apps.catalog import load_catalog
from slipway.apps.catalog_schemas import (
    AppChange,
    CatalogAppDetail,
    CatalogAppSummary,
    CatalogList,
    CatalogSourceCreate,
    CatalogSourceList,
    CatalogSourceRead,
    CatalogSourceUpdate,
    RefreshRead,
)
from slipway.apps.catalog_snapshots import RefreshResult

router = APIRouter(tags=["catalog"])


@router.get("/catalog", response_model=CatalogList)
def list_catalog(
    _: Viewer,
    session: SessionDep,
    settings: SettingsDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> CatalogList:
    """Apps of every catalog source; `q` matches key, name and trademark, best first."""
    offset = decode_cursor(cursor, int) or 0
    if offset < 0:
        raise invalid_cursor()
    found = load_catalog(session, settings).search(q)
    session.commit()  # the first call adds the built-in catalog and SLIPWAY_CATALOG_DIRS
    page = found[offset : offset + limit]
    more = offset + limit < len(found)
    return CatalogList(
        items=[CatalogAppSummary.of(app) for app in page],
        next_cursor=encode_cursor(offset + limit) if more else None,
    )


@router.get("/catalog/{key}", response_model=CatalogAppDetail)
def get_catalog_app(
    _: Viewer,
    session: SessionDep,
    settings: SettingsDep,
    key: str,
    source: Annotated[str | None, Query(max_length=64)] = None,
) -> CatalogAppDetail:
    """One app with its settings (secrets never shown), README and notes."""
    catalog = load_catalog(session, settings)
    session.commit()
    app = catalog.get(key, source=source)
    return CatalogAppDetail.detail(app, catalog.also_in(key))


@router.get("/catalog-sources", response_model=CatalogSourceList)
def list_catalog_sources(
    _: Viewer, session: SessionDep, settings: SettingsDep
) -> CatalogSourceList:
    rows = sources.list_sources(session, settings)
    session.commit()
    return CatalogSourceList(items=[CatalogSourceRead.of(row) for row in rows])


@router.post("/catalog-sources", response_model=RefreshRead, status_code=status.HTTP_201_CREATED)
def create_catalog_source(
    _: Admin, session: SessionDep, settings: SettingsDep, body: CatalogSourceCreate
) -> RefreshRead:
    """Add a source and fetch it; nothing is saved when it cannot be fetched or is unsafe."""
    result = sources.create_source(
        session,
        settings,
        name=body.name,
        kind=body.kind,
        location=body.location,
        allow_privileged=body.allow_privileged,
    )
    session.commit()
    return _refresh_read(result)


@router.get("/catalog-sources/{name}", response_model=CatalogSourceRead)
def get_catalog_source(
    _: Viewer, session: SessionDep, settings: SettingsDep, name: str
) -> CatalogSourceRead:
    sources.ensure_seeded(session, settings)
    session.commit()
    return CatalogSourceRead.of(sources.get_source_or_raise(session, name))


@router.patch("/catalog-sources/{name}", response_model=CatalogSourceRead)
def update_catalog_source(
    _: Admin, session: SessionDep, settings: SettingsDep, name: str, body: CatalogSourceUpdate
) -> CatalogSourceRead:
    """Change the location (fetched first) or allow_privileged."""
    row = sources.update_source(
        session,
        settings,
        name=name,
        location=body.location,
        allow_privileged=body.allow_privileged,
    )
    session.commit()
    return CatalogSourceRead.of(row)


@router.delete("/catalog-sources/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_catalog_source(_: Admin, session: SessionDep, settings: SettingsDep, name: str) -> None:
    sources.delete_source(session, settings, name=name)
    session.commit()


@router.post("/catalog-sources/{name}/refresh", response_model=RefreshRead)
def refresh_catalog_source(
    _: Admin, session: SessionDep, settings: SettingsDep, name: str
) -> RefreshRead:
    """Fetch the source again and switch to it atomically; says which apps changed. A failure
    keeps the catalog as it was and is recorded on the source."""
    result = sources.refresh_source(session, settings, name=name)
    session.commit()
    return _refresh_read(result)


def _refresh_read(result: RefreshResult) -> RefreshRead:
    return RefreshRead(
        source=CatalogSourceRead.of(result.source),
        is_changed=result.is_changed,
        version_before=result.version_before,
        version=result.source.version,
        added=result.added,
        removed=result.removed,
        updated=[AppChange(**item) for item in result.updated],
    )

"""API models of the catalog and its sources."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from slipway.apps.catalog_fetch import display_location
from slipway.apps.catalog_template import CatalogApp
from slipway.apps.models import CatalogSource

SECRET_MARKERS = ("PASSWORD", "SECRET", "TOKEN")


class EditionRead(BaseModel):
    dist: str
    versions: list[str]


class RequirementsRead(BaseModel):
    cpu: float = Field(description="CPU cores")
    memory_gb: float
    disk_gb: float
    url: str | None = None


class CatalogAppSummary(BaseModel):
    key: str
    name: str
    trademark: str
    source: str
    catalog_version: str
    editions: list[EditionRead]
    default_edition: str
    default_version: str
    requirements: RequirementsRead

    @classmethod
    def of(cls, app: CatalogApp) -> CatalogAppSummary:
        return cls(**_summary_fields(app))


def _summary_fields(app: CatalogApp) -> dict[str, Any]:
    return {
        "key": app.key,
        "name": app.name,
        "trademark": app.trademark,
        "source": app.source,
        "catalog_version": app.catalog_version,
        "editions": [EditionRead(dist=e.dist, versions=e.versions) for e in app.editions],
        "default_edition": app.default_edition,
        "default_version": app.default_version,
        "requirements": RequirementsRead(
            cpu=app.requirements.cpu,
            memory_gb=app.requirements.memory_gb,
            disk_gb=app.requirements.disk_gb,
            url=app.requirements.url,
        ),
    }


class SettingRead(BaseModel):
    name: str
    default: str | None = Field(description="null for secrets: their defaults are never shown")
    is_secret: bool
    is_required: bool = Field(description="an install must be given it")
    is_settable: bool = Field(description="a user may choose it at install")
    is_generated: bool = Field(description="generated at install when left empty")


class CatalogAppDetail(CatalogAppSummary):
    settings: list[SettingRead]
    required_settings: list[str]
    password_settings: list[str]
    http_port_setting: str | None
    network: str | None
    allow_privileged: bool
    also_in: list[str] = Field(description="the sources offering this key; the last one is used")
    readme: str | None
    notes: str | None
    changelog: str | None

    @classmethod
    def detail(cls, app: CatalogApp, also_in: list[str]) -> CatalogAppDetail:
        settings = [
            SettingRead(
                name=s.name,
                default=None if any(m in s.name for m in SECRET_MARKERS) else s.default,
                is_secret=any(m in s.name for m in SECRET_MARKERS),
                is_required=s.is_required,
                is_settable=s.is_settable,
                is_generated=s.name in app.password_settings,
            )
            for s in app.settings
        ]
        return cls(
            **_summary_fields(app),
            settings=settings,
            required_settings=app.required_settings,
            password_settings=app.password_settings,
            http_port_setting=app.http_port_setting,
            network=app.network,
            allow_privileged=app.allow_privileged,
            also_in=also_in,
            readme=app.readme,
            notes=app.notes,
            changelog=app.changelog,
        )


class CatalogList(BaseModel):
    items: list[CatalogAppSummary]
    next_cursor: str | None = None


class CatalogSourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    kind: Literal["dir", "archive"]
    location: str = Field(
        min_length=1,
        max_length=2048,
        description="dir: an absolute directory path; archive: an http(s) URL or absolute path "
        "of a .tar.gz, .tar or .zip",
    )
    allow_privileged: bool = Field(
        False,
        description="let this source's apps use privileged mode, the host network and host-path "
        "binds outside their folder",
    )


class CatalogSourceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    location: str | None = Field(None, min_length=1, max_length=2048)
    allow_privileged: bool | None = None


class RefreshError(BaseModel):
    code: str
    message: str


class SkippedApp(BaseModel):
    folder: str
    reason: str


class CatalogSourceRead(BaseModel):
    name: str
    kind: str
    origin: str = Field(description="builtin, env (SLIPWAY_CATALOG_DIRS) or api")
    location: str
    allow_privileged: bool
    version: str | None = Field(description="declared by the source, else a content hash")
    content_hash: str | None
    snapshot: str | None
    apps: list[str]
    skipped: list[SkippedApp]
    last_refresh_at: datetime | None
    last_refresh_error: RefreshError | None
    last_changes: dict[str, list[str]] | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, source: CatalogSource) -> CatalogSourceRead:
        return cls(
            name=source.name,
            kind=source.kind,
            origin=source.origin,
            location=display_location(source.location),
            allow_privileged=source.allow_privileged,
            version=source.version,
            content_hash=source.content_hash,
            snapshot=source.snapshot,
            apps=sorted(source.apps or {}),
            skipped=[
                SkippedApp(folder=folder, reason=reason)
                for folder, reason in sorted((source.skipped or {}).items())
            ],
            last_refresh_at=source.last_refresh_at,
            last_refresh_error=source.last_refresh_error,
            last_changes=source.last_changes,
            created_at=source.created_at,
            updated_at=source.updated_at,
        )


class CatalogSourceList(BaseModel):
    items: list[CatalogSourceRead]
    next_cursor: str | None = None


class AppChange(BaseModel):
    key: str
    default_version_before: str | None
    default_version: str
    versions_added: list[str]
    versions_removed: list[str]


class RefreshRead(BaseModel):
    source: CatalogSourceRead
    is_changed: bool
    version_before: str | None
    version: str | None
    added: list[str]
    removed: list[str]
    updated: list[AppChange]

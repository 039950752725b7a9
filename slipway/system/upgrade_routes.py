"""GET /upgrade: what a newer release would change, and whether this system may take it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from slipway.api.deps import SessionDep, SettingsDep, Viewer
from slipway.system import upgrade

router = APIRouter(tags=["system"])


class OsSupport(BaseModel):
    name: str
    version: str
    system: str | None = Field(None, description="the OS_SUPPORT entry this system matched")
    is_supported: bool


class CoreUpgrade(BaseModel):
    current: str
    available: str | None
    is_available: bool
    may_upgrade: bool = Field(description="a newer release exists and this system is supported")
    os: OsSupport


class SourceUpgrade(BaseModel):
    name: str
    current: str
    is_available: bool | None = Field(
        None, description="null when the source's version is a content hash, not comparable"
    )


class CatalogUpgrade(BaseModel):
    available: str | None = Field(description="LIBRARY.VERSION of the manifest")
    is_available: bool
    sources: list[SourceUpgrade]


class UpgradeRead(BaseModel):
    is_configured: bool
    manifest: str | None
    message: str
    core: CoreUpgrade
    catalog: CatalogUpgrade
    services: dict[str, Any] = Field(description="SERVICES of the manifest, as it has them")


@router.get("/upgrade", response_model=UpgradeRead)
def check_upgrade(_: Viewer, session: SessionDep, settings: SettingsDep) -> UpgradeRead:
    """Compare slipway's and each catalog source's version with the release manifest
    (SLIPWAY_RELEASE_MANIFEST); 502 when the manifest cannot be read."""
    body = upgrade.check_upgrade(session, settings)
    session.commit()
    return UpgradeRead.model_validate(body)

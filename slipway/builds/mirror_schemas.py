"""API models of mirror profiles."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from slipway.builds.mirror_models import MirrorProfileRevision
from slipway.builds.mirrors import ResolvedMirror

CONTENT_DESCRIPTION = (
    "apt (NAME.list): deb/deb-src lines with http(s) URLs; yum (NAME.repo): ini sections with an "
    "http(s) baseurl or mirrorlist"
)


class MirrorProfileCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(max_length=32, description="the mirror, e.g. ali, 163, qinghua, ustc")
    file_name: str = Field(max_length=64, description="NAME.list (apt) or NAME.repo (yum)")
    content: str = Field(max_length=64 * 1024, description=CONTENT_DESCRIPTION)
    description: str = Field("", max_length=2048)


class MirrorProfileUpdate(BaseModel):
    """The new content (and description); what is left out stays."""

    model_config = ConfigDict(extra="forbid")

    content: str = Field(max_length=64 * 1024, description=CONTENT_DESCRIPTION)
    description: str | None = Field(None, max_length=2048)


class MirrorProfileRead(BaseModel):
    type: str
    file_name: str
    manager: str = Field(description="apt or yum")
    content: str
    description: str
    source: str = Field(description="built-in (shipped with slipway) or saved (through the API)")
    overrides_builtin: bool
    revision: int = Field(description="0 for a built-in profile")
    created_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def of(cls, profile: ResolvedMirror, *, overrides_builtin: bool) -> MirrorProfileRead:
        return cls(
            type=profile.type,
            file_name=profile.file_name,
            manager=profile.manager,
            content=profile.content,
            description=profile.description,
            source=profile.source,
            overrides_builtin=overrides_builtin,
            revision=profile.revision,
            created_at=profile.created_at,
            updated_at=profile.updated_at,
        )


class MirrorProfileList(BaseModel):
    items: list[MirrorProfileRead]
    next_cursor: str | None = None


class MirrorProfileRevisionRead(BaseModel):
    revision: int
    content: str
    description: str
    changes: list[str]
    actor: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: MirrorProfileRevision) -> MirrorProfileRevisionRead:
        return cls(
            revision=row.revision,
            content=row.content,
            description=row.description,
            changes=row.changes,
            actor=row.actor,
            created_at=row.created_at,
        )


class MirrorProfileRevisionList(BaseModel):
    items: list[MirrorProfileRevisionRead]
    next_cursor: str | None = None

"""/api/v1/settings/outbound-allow: the allow-list of the outbound-address policy.

Admins change it; viewers may read it, as they read every other piece of configuration: it
names networks and hosts, never a secret, and knowing it does not widen what anyone can reach.
Until an admin saves one, the list comes from SLIPWAY_OUTBOUND_ALLOW (`source` says which).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from slipway.api.deps import Admin, SessionDep, SettingsDep, Viewer
from slipway.api.pagination import decode_cursor, next_cursor
from slipway.core import outbound_allow, runtime_settings
from slipway.core.config import Settings
from slipway.core.models import RuntimeSettingRevision

router = APIRouter(prefix="/settings", tags=["settings"])

ALLOW_PATH = "/outbound-allow"
ENTRIES_DESCRIPTION = (
    "CIDRs (10.0.0.0/8, fd00::/8), single addresses and host names that outbound requests may "
    "reach although private, loopback or link-local"
)


class OutboundAllowUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entries: list[Annotated[str, Field(max_length=255)]] = Field(
        max_length=outbound_allow.MAX_ALLOW_ENTRIES, description=ENTRIES_DESCRIPTION
    )


class OutboundAllowRead(BaseModel):
    entries: list[str] = Field(description=ENTRIES_DESCRIPTION)
    source: str = Field(
        description='"api" once an admin saved it, "environment" (SLIPWAY_OUTBOUND_ALLOW) or '
        '"default" (nothing allowed)'
    )
    revision: int | None
    updated_by: str | None
    updated_at: datetime | None


class OutboundAllowRevisionRead(BaseModel):
    revision: int
    entries: list[str]
    changes: list[str] = Field(description='entries added or removed, or ["created"]')
    actor: str | None
    created_at: datetime

    @classmethod
    def of(cls, revision: RuntimeSettingRevision) -> OutboundAllowRevisionRead:
        return cls(
            revision=revision.revision,
            entries=revision.value or [],
            changes=revision.changes or [],
            actor=revision.actor,
            created_at=revision.created_at,
        )


class OutboundAllowRevisionList(BaseModel):
    items: list[OutboundAllowRevisionRead]
    next_cursor: str | None = None


def _view(session: Session, settings: Settings) -> OutboundAllowRead:
    allow = outbound_allow.allow_list(session, settings)
    row = runtime_settings.current(session, outbound_allow.ALLOW_SETTING)
    return OutboundAllowRead(
        entries=list(allow.entries),
        source=allow.source,
        revision=row.revision if row else None,
        updated_by=row.updated_by if row else None,
        updated_at=row.updated_at if row else None,
    )


@router.get(ALLOW_PATH, response_model=OutboundAllowRead)
def get_outbound_allow(_: Viewer, session: SessionDep, settings: SettingsDep) -> OutboundAllowRead:
    """The allow-list in force and where it comes from."""
    return _view(session, settings)


@router.put(ALLOW_PATH, response_model=OutboundAllowRead)
def put_outbound_allow(
    principal: Admin, session: SessionDep, settings: SettingsDep, body: OutboundAllowUpdate
) -> OutboundAllowRead:
    """Replace the allow-list (a new revision); it wins over SLIPWAY_OUTBOUND_ALLOW from now on.
    An empty list allows nothing beyond the public internet."""
    outbound_allow.save_allow_list(session, settings, body.entries, actor=principal.name)
    session.commit()
    return _view(session, settings)


@router.get(f"{ALLOW_PATH}/revisions", response_model=OutboundAllowRevisionList)
def list_outbound_allow_revisions(
    _: Viewer,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: str | None = None,
) -> OutboundAllowRevisionList:
    """Every saved allow-list, newest first, with what it changed and who saved it."""
    before = decode_cursor(cursor, int)
    items = runtime_settings.revisions(
        session, outbound_allow.ALLOW_SETTING, limit=limit + 1, before=before
    )
    return OutboundAllowRevisionList(
        items=[OutboundAllowRevisionRead.of(item) for item in items[:limit]],
        next_cursor=next_cursor(items, limit, "revision"),
    )

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from slipway.api.deps import Admin, SessionDep
from slipway.api.pagination import decode_cursor, encode_cursor
from slipway.audit import service
from slipway.audit.schemas import AuditList, AuditRead

router = APIRouter(tags=["audit"])


@router.get("/audit", response_model=AuditList)
def list_audit(
    _: Admin,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
) -> AuditList:
    items, next_id = service.list_(
        session,
        limit=limit,
        cursor=decode_cursor(cursor),
        actor=actor,
        action=action,
        since=since,
    )
    return AuditList(
        items=[AuditRead.model_validate(item) for item in items], next_cursor=encode_cursor(next_id)
    )

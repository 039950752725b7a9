from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from slipway.api.deps import Admin, SessionDep
from slipway.api.pagination import decode_cursor, encode_cursor, invalid_cursor
from slipway.audit import service
from slipway.audit.schemas import AuditList, AuditRead

router = APIRouter(tags=["audit"])

# Audit ids are BIGINT; a larger cursor would overflow the query parameter.
MAX_ID = 2**63 - 1


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
    after_id = decode_cursor(cursor, int)
    if after_id is not None and not 0 < after_id <= MAX_ID:
        raise invalid_cursor()
    items, next_id = service.list_(
        session,
        limit=limit,
        cursor=after_id,
        actor=actor,
        action=action,
        since=since,
    )
    return AuditList(
        items=[AuditRead.model_validate(item) for item in items], next_cursor=encode_cursor(next_id)
    )

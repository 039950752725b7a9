"""Writing and reading the audit log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict, Unpack

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from slipway.audit.models import AuditEntry
from slipway.core.config import Settings
from slipway.core.db import execute_autocommit, utcnow

_INSERT = insert(AuditEntry.__table__)


class AuditFields(TypedDict):
    """What one audit row says; the result (ok, denied, error) follows from the status."""

    actor: str | None
    action: str
    target: str | None
    source_ip: str | None
    status_code: int
    request_id: str | None
    details: NotRequired[dict[str, Any] | None]


def record_now(settings: Settings, **fields: Unpack[AuditFields]) -> None:
    """Store one row at once, in a transaction of its own: one statement on a connection of the
    autocommit pool (no BEGIN and COMMIT round trips)."""
    execute_autocommit(settings, _INSERT, _values(fields))


def row(**fields: Unpack[AuditFields]) -> tuple[Table, dict[str, Any]]:
    """(table, values) of one row, every column given (the time too), for a caller that stores
    it in a statement of its own making."""
    values = _values(fields)
    values["time"] = utcnow()
    return AuditEntry.__table__, values


def _values(fields: AuditFields) -> dict[str, Any]:
    status_code = fields["status_code"]
    return {
        "actor": _fit(fields["actor"], AuditEntry.actor),
        "action": _fit(fields["action"], AuditEntry.action) or "",
        "target": _fit(fields["target"], AuditEntry.target),
        "source_ip": _fit(fields["source_ip"], AuditEntry.source_ip),
        "status_code": status_code,
        "result": "ok"
        if status_code < 400
        else ("denied" if status_code in (401, 403, 429) else "error"),
        "request_id": _fit(fields["request_id"], AuditEntry.request_id),
        "details": fields.get("details"),
    }


def _fit(value: str | None, column: Any) -> str | None:
    length = column.type.length
    return value[:length] if value is not None and length else value


def list_(
    session: Session,
    *,
    limit: int,
    cursor: int | None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
) -> tuple[list[AuditEntry], int | None]:
    """Newest first; the cursor is the id of the last entry of the previous page. A `since`
    without a time zone is taken as UTC."""
    query = select(AuditEntry)
    if cursor is not None:
        query = query.where(AuditEntry.id < cursor)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if action:
        query = query.where(AuditEntry.action.startswith(action, autoescape=True))
    if since:
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        query = query.where(AuditEntry.time >= since)
    rows = list(session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit + 1)))
    items = rows[:limit]
    return items, (items[-1].id if len(rows) > limit else None)

"""Writing and reading the audit log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from slipway.audit.models import AuditEntry

_INSERT = insert(AuditEntry.__table__)


def record(
    session: Session,
    *,
    actor: str | None,
    action: str,
    target: str | None,
    source_ip: str | None,
    status_code: int,
    request_id: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    """Add one row in the session's transaction; text longer than its column is cut, so that no
    request goes unrecorded.

    A plain INSERT rather than an ORM object: every mutating request writes one, and the unit of
    work costs more than the statement."""
    values: dict[str, Any] = {
        "actor": _fit(actor, AuditEntry.actor),
        "action": _fit(action, AuditEntry.action) or "",
        "target": _fit(target, AuditEntry.target),
        "source_ip": _fit(source_ip, AuditEntry.source_ip),
        "status_code": status_code,
        "result": "ok"
        if status_code < 400
        else ("denied" if status_code in (401, 403, 429) else "error"),
        "request_id": _fit(request_id, AuditEntry.request_id),
        "details": details,
    }
    session.execute(_INSERT, values)


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

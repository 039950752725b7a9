from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class AuditRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    time: datetime
    actor: str | None
    action: str
    target: str | None
    source_ip: str | None
    status_code: int
    result: str
    request_id: str | None
    details: dict[str, Any] | None


class AuditList(BaseModel):
    items: list[AuditRead]
    next_cursor: str | None

"""The append-only audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from slipway.core.db import Base, utcnow
from slipway.core.types import BigIntPK


class AuditEntry(Base):
    """Who did what to which thing, from where, with what result. Never updated or deleted."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str | None] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(128))
    target: Mapped[str | None] = mapped_column(String(255))
    source_ip: Mapped[str | None] = mapped_column(String(64))
    status_code: Mapped[int]
    result: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(64))
    # None is SQL NULL however the row is written (plain JSON would store the JSON text null).
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), default=None)

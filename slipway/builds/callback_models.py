"""Callback attempts: every POST slipway made (or refused to make) to a requester's callback URL."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from slipway.core.db import Base, utcnow
from slipway.core.types import BigIntPK

__all__ = ["CallbackAttempt", "CallbackStatus"]


class CallbackStatus(StrEnum):
    delivered = "delivered"  # the receiver answered 2xx
    failed = "failed"  # no answer, or not 2xx
    refused = "refused"  # the outbound policy refused the URL: no request was made


class CallbackAttempt(Base):
    """One attempt of a `build.callback` operation; headers are stored with secrets masked."""

    __tablename__ = "callback_attempts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    # No foreign keys: the builds table comes later and operations are purged on their own clock;
    # the history of what was sent outlives both.
    build_id: Mapped[str | None] = mapped_column(String(36), index=True, default=None)
    operation_id: Mapped[str] = mapped_column(String(36), index=True)
    url: Mapped[str] = mapped_column(Text)
    headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    body: Mapped[Any] = mapped_column(JSON)
    attempt: Mapped[int]
    is_test: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int | None] = mapped_column(default=None)
    response_excerpt: Mapped[str | None] = mapped_column(Text, default=None)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    duration_ms: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

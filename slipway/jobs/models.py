"""Operations: the one record of every piece of asynchronous work, and their logs and locks."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from slipway.core.db import Base, new_id, utcnow
from slipway.core.types import BigIntPK


class OperationStatus(StrEnum):
    scheduled = "scheduled"
    waiting = "waiting"
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {OperationStatus.succeeded, OperationStatus.failed, OperationStatus.canceled}
)


class Trigger(StrEnum):
    api = "api"
    ui = "ui"
    cli = "cli"
    webhook = "webhook"
    schedule = "schedule"
    retry = "retry"
    rollback = "rollback"
    system = "system"


class Operation(Base):
    __tablename__ = "operations"
    __table_args__ = (
        Index("ix_operations_created_at_id", "created_at", "id"),
        Index("ix_operations_status_kind", "status", "kind"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(255), index=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16))
    progress_done: Mapped[int] = mapped_column(default=0)
    progress_total: Mapped[int] = mapped_column(default=0)
    actor: Mapped[str | None] = mapped_column(String(64))
    trigger: Mapped[str] = mapped_column(String(16))
    queue: Mapped[str] = mapped_column(String(64))
    lock_keys: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Order among waiting operations; smaller runs first. Reordering rewrites it.
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    attempt: Mapped[int] = mapped_column(default=1)
    max_attempts: Mapped[int] = mapped_column(default=1)
    timeout: Mapped[int] = mapped_column(default=3600)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    worker: Mapped[str | None] = mapped_column(String(128))
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    queued_at: Mapped[datetime | None] = mapped_column(default=None)
    scheduled_for: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # What a resumable job has finished, so that a re-run skips it.
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    retry_of: Mapped[str | None] = mapped_column(String(36), default=None)

    @property
    def percent(self) -> int:
        if self.progress_total <= 0:
            return 100 if self.status == OperationStatus.succeeded else 0
        return min(100, int(self.progress_done * 100 / self.progress_total))


class OperationLog(Base):
    __tablename__ = "operation_logs"
    __table_args__ = (UniqueConstraint("operation_id", "seq"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    operation_id: Mapped[str] = mapped_column(
        ForeignKey("operations.id", ondelete="CASCADE"), index=True
    )
    seq: Mapped[int]
    time: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    stream: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)


class OperationLock(Base):
    """One lock key an operation needs; `is_held` once it was granted."""

    __tablename__ = "operation_locks"

    operation_id: Mapped[str] = mapped_column(
        ForeignKey("operations.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)
    capacity: Mapped[int] = mapped_column(default=1)
    is_held: Mapped[bool] = mapped_column(default=False)

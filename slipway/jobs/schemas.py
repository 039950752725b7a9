from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from slipway.jobs.models import Operation, OperationStatus


class Progress(BaseModel):
    done: int
    total: int
    percent: int


class OperationError(BaseModel):
    code: str
    message: str
    details: Any = None


class OperationRead(BaseModel):
    id: str
    kind: str
    subject: str | None
    params: dict[str, Any]
    status: OperationStatus
    progress: Progress
    actor: str | None
    trigger: str
    lock_keys: list[dict[str, Any]]
    position: int | None = Field(description="order among waiting operations")
    attempt: int
    max_attempts: int
    cancel_requested: bool
    worker: str | None
    created_at: datetime
    scheduled_for: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    duration: float | None = Field(description="seconds from start to finish (or now)")
    error: OperationError | None
    result: dict[str, Any] | None

    @classmethod
    def of(cls, operation: Operation) -> OperationRead:
        duration = None
        if operation.started_at:
            end = operation.finished_at or datetime.now(operation.started_at.tzinfo)
            duration = round((end - operation.started_at).total_seconds(), 3)
        return cls(
            id=operation.id,
            kind=operation.kind,
            subject=operation.subject,
            params=operation.params or {},
            status=OperationStatus(operation.status),
            progress=Progress(
                done=operation.progress_done,
                total=operation.progress_total,
                percent=operation.percent,
            ),
            actor=operation.actor,
            trigger=operation.trigger,
            lock_keys=operation.lock_keys or [],
            position=operation.position if operation.status == OperationStatus.waiting else None,
            attempt=operation.attempt,
            max_attempts=operation.max_attempts,
            cancel_requested=operation.cancel_requested,
            worker=operation.worker,
            created_at=operation.created_at,
            scheduled_for=operation.scheduled_for,
            started_at=operation.started_at,
            finished_at=operation.finished_at,
            duration=duration,
            error=OperationError(**operation.error) if operation.error else None,
            result=operation.result,
        )


class OperationEnvelope(BaseModel):
    operation: OperationRead


class OperationList(BaseModel):
    items: list[OperationRead]
    next_cursor: str | None


class OperationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=64)
    subject: str | None = Field(None, max_length=255)
    params: dict[str, Any] = Field(default_factory=dict)
    scheduled_for: AwareDatetime | None = Field(
        None, description="start no earlier than this time (ISO 8601 with a time zone)"
    )


class OperationMove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    before: str | None = Field(None, description="place it just before this waiting operation")
    after: str | None = Field(None, description="place it just after this waiting operation")
    to: Literal["front", "back"] | None = None

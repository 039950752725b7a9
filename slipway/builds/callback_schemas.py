"""API shapes of callback attempts and the callback-headers setting."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from slipway.builds.callback_models import CallbackAttempt, CallbackStatus
from slipway.core.models import RuntimeSettingRevision


class CallbackError(BaseModel):
    code: str
    message: str


class CallbackAttemptRead(BaseModel):
    id: int
    build_id: str | None
    operation_id: str
    url: str
    headers: dict[str, str] = Field(description="as sent, with secret-looking values masked")
    body: Any
    attempt: int = Field(description="1 for the first try of the operation, then 2, 3, …")
    is_test: bool = Field(description="sent again by POST /api/v1/callbacks/test")
    status: CallbackStatus
    status_code: int | None = Field(description="the receiver's HTTP status; null without one")
    response_excerpt: str | None = Field(description="the first 2 KB of the receiver's answer")
    error: CallbackError | None
    duration_ms: int
    created_at: datetime

    @classmethod
    def of(cls, attempt: CallbackAttempt) -> CallbackAttemptRead:
        return cls(
            id=attempt.id,
            build_id=attempt.build_id,
            operation_id=attempt.operation_id,
            url=attempt.url,
            headers=attempt.headers or {},
            body=attempt.body,
            attempt=attempt.attempt,
            is_test=attempt.is_test,
            status=CallbackStatus(attempt.status),
            status_code=attempt.status_code,
            response_excerpt=attempt.response_excerpt,
            error=CallbackError(**attempt.error) if attempt.error else None,
            duration_ms=attempt.duration_ms,
            created_at=attempt.created_at,
        )


class CallbackAttemptList(BaseModel):
    items: list[CallbackAttemptRead]
    next_cursor: str | None = None


class CallbackHeadersRead(BaseModel):
    headers: dict[str, str] = Field(
        description="sent with every callback; values of Authorization, Cookie and names with "
        "token/secret/key/password/auth/session are shown as ********"
    )
    source: str = Field(description='"api" once saved, "default" before')
    revision: int | None
    updated_by: str | None
    updated_at: datetime | None


class CallbackHeadersRevisionRead(BaseModel):
    revision: int
    headers: dict[str, str] = Field(description="as saved, secret-looking values masked")
    changes: list[str] = Field(description='header names added, removed or changed, or ["created"]')
    actor: str | None
    created_at: datetime

    @classmethod
    def of(cls, revision: RuntimeSettingRevision) -> CallbackHeadersRevisionRead:
        return cls(
            revision=revision.revision,
            headers=revision.value or {},
            changes=revision.changes or [],
            actor=revision.actor,
            created_at=revision.created_at,
        )


class CallbackHeadersRevisionList(BaseModel):
    items: list[CallbackHeadersRevisionRead]
    next_cursor: str | None = None

"""What the builds API answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from slipway.builds.models import Build, BuildStatus
from slipway.jobs.models import FINAL_STATUSES, Operation
from slipway.jobs.schemas import OperationRead


class BuildError(BaseModel):
    code: str
    message: str


class BuildRead(BaseModel):
    id: int
    task_id: int = Field(description="the same as id: the task id FastBuild's clients know")
    task_name: str
    status: BuildStatus
    source_format: str = Field(description="`fastbuild` (its request JSON as sent) or `native`")
    base_image: str
    target_image: str
    endpoint: str
    registry: str | None
    push: bool
    callback_url: str | None
    spec_hash: str
    spec: dict[str, Any] = Field(description="the accepted spec, without its secrets")
    image_id: str | None
    digest: str | None
    size: int | None
    error: BuildError | None
    timings: dict[str, float] = Field(description="seconds per phase: build, push, verify, total")
    operation_id: str | None
    callback_operation_id: str | None
    actor: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, build: Build, operation: Operation | None = None) -> BuildRead:
        status = BuildStatus(build.status)
        error = build.error
        # A build whose operation ended without running it (canceled while queued, worker
        # lost) shows how its operation ended.
        if not status.is_final and operation is not None and operation.status in FINAL_STATUSES:
            status = BuildStatus(str(operation.status))
            error = error or operation.error
        return cls(
            id=build.id,
            task_id=build.id,
            task_name=build.task_name,
            status=status,
            source_format=build.source_format,
            base_image=build.base_image,
            target_image=build.target_image,
            endpoint=build.endpoint,
            registry=build.registry_name,
            push=build.push,
            callback_url=build.callback_url,
            spec_hash=build.spec_hash,
            spec=build.spec,
            image_id=build.image_id,
            digest=build.digest,
            size=build.size,
            error=BuildError(code=error["code"], message=error["message"]) if error else None,
            timings=build.timings or {},
            operation_id=build.operation_id,
            callback_operation_id=build.callback_operation_id,
            actor=build.actor,
            created_at=build.created_at,
            started_at=build.started_at,
            finished_at=build.finished_at,
        )

    @classmethod
    def list_of(cls, builds: list[Build], operations: dict[str, Operation]) -> list[BuildRead]:
        """Each build with its operation (`operations` by id, as `service.operations_of` reads)."""
        return [cls.of(build, operations.get(build.operation_id or "")) for build in builds]


class BuildAccepted(BaseModel):
    operation: OperationRead
    build: BuildRead


class BuildList(BaseModel):
    items: list[BuildRead]
    next_cursor: str | None

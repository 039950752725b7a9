"""Builds and everything they keep: the build rows, mirror profiles, callback attempts."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from slipway.builds.callback_models import *  # noqa: F403
from slipway.builds.mirror_models import *  # noqa: F403
from slipway.core.db import Base, utcnow
from slipway.core.types import BigIntPK


class BuildStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"

    @property
    def is_final(self) -> bool:
        return self in (BuildStatus.succeeded, BuildStatus.failed, BuildStatus.canceled)


class Build(Base):
    """One image build: the spec as accepted, the Dockerfile rendered from it, and what came out.

    The Dockerfile and its context files are rendered when the build is accepted, so what
    `GET /builds/{id}/dockerfile` shows is exactly what the worker builds, and a worker never
    needs the spec's secrets (only their hashes are in the Dockerfile).
    """

    __tablename__ = "builds"
    __table_args__ = (
        Index("ix_builds_task_name", "task_name"),
        Index("ix_builds_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    task_name: Mapped[str] = mapped_column(String(255))
    # "fastbuild" (its request JSON as sent) or "native".
    source_format: Mapped[str] = mapped_column(String(16))
    base_image: Mapped[str] = mapped_column(String(512))
    target_image: Mapped[str] = mapped_column(String(512))
    endpoint: Mapped[str] = mapped_column(String(63))
    registry_name: Mapped[str | None] = mapped_column(String(63), default=None)
    push: Mapped[bool] = mapped_column(default=True)
    callback_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    spec_hash: Mapped[str] = mapped_column(String(64))
    dockerfile: Mapped[str] = mapped_column(Text)
    context_files: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=BuildStatus.queued)
    operation_id: Mapped[str | None] = mapped_column(String(36), default=None, index=True)
    callback_operation_id: Mapped[str | None] = mapped_column(String(36), default=None)
    actor: Mapped[str | None] = mapped_column(String(64), default=None)
    image_id: Mapped[str | None] = mapped_column(String(128), default=None)
    digest: Mapped[str | None] = mapped_column(String(128), default=None)
    size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # Seconds per phase (build, push, verify) and in all, for the callback and the bench.
    timings: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

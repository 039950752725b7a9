"""Projects, their environments and packages, deployments, and what each host runs."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from slipway.core.db import Base, utcnow


class Layout(enum.StrEnum):
    versioned = "versioned"  # <root>/<name>_<version> plus a `current` link (the default)
    flat = "flat"  # the package overwrites <root> in place; what it overwrites is backed up


class DeploymentStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    awaiting_continue = "awaiting_continue"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"

    @property
    def is_final(self) -> bool:
        return self in (self.succeeded, self.failed, self.canceled)


class HostStatus(enum.StrEnum):
    pending = "pending"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"  # failed and restored to its previous release
    canceled = "canceled"  # stopped by a cancel; `version` says which whole release it runs
    skipped = "skipped"  # a later batch that never started


# The steps a host goes through, in order: a deployment's progress counts them, and hoststeps'
# STEPS table (name -> action) lists the same names.
VERSIONED_STEPS = (
    "connect", "prepare", "upload", "extract", "render", "deploy_scripts",
    "stop_old", "switch", "start", "health", "cleanup",
)  # fmt: skip
FLAT_STEPS = (
    "connect", "prepare", "upload", "extract", "render", "stop_old",
    "backup", "install", "deploy_scripts", "start", "health", "cleanup",
)  # fmt: skip
ROLLBACK_STEPS = ("connect", "prepare", "stop_old", "switch", "start", "health")


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    # "wecube" (the package brings its scripts) or a profile name: jar, war, static, node, …
    kind: Mapped[str] = mapped_column(String(63))
    description: Mapped[str] = mapped_column(Text, default="")
    config_globs: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["conf/**"])
    # Bracketed names that are not variables, like logback's [%thread]: left as they are.
    literal_placeholders: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Environment(Base):
    __tablename__ = "environments"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(63))
    host_group_id: Mapped[int] = mapped_column(ForeignKey("host_groups.id"))
    deploy_root: Mapped[str] = mapped_column(String(1024))
    layout: Mapped[str] = mapped_column(String(16), default=Layout.versioned)
    variables: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # Secret variables ([!name]/[%name]): name -> id in the secrets table.
    secret_variables: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # Per-host overrides of plain variables: host name -> {name: value}.
    host_variables: Mapped[dict[str, dict[str, str]]] = mapped_column(JSON, default=dict)
    strategy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    keep_releases: Mapped[int] = mapped_column(default=5)
    # {"url": "mysql+pymysql://user@host/db"}; the password lives in the secrets table.
    database: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    database_secret_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("secrets.id"), default=None
    )
    health_check: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    requires_approval: Mapped[bool] = mapped_column(default=False)
    # The application's RSA public key: [!name]/[%name] values are written encrypted with it.
    public_key_pem: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Package(Base):
    __tablename__ = "packages"
    __table_args__ = (UniqueConstraint("project_id", "is_db", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(32))
    # Zero-padded "000001.000000.000010", so versions sort right as text in every database.
    version_sort: Mapped[str] = mapped_column(String(32), index=True)
    build: Mapped[str] = mapped_column(String(128))
    is_db: Mapped[bool] = mapped_column(default=False)
    filename: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    # Relative to the artifact directory.
    path: Mapped[str] = mapped_column(String(1024))
    source_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    inspection: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    uploaded_by: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Deployment(Base):
    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    environment_id: Mapped[int] = mapped_column(
        ForeignKey("environments.id", ondelete="CASCADE"), index=True
    )
    # "deploy" or "rollback"
    kind: Mapped[str] = mapped_column(String(16), default="deploy")
    package_id: Mapped[int | None] = mapped_column(ForeignKey("packages.id"), default=None)
    db_package_id: Mapped[int | None] = mapped_column(ForeignKey("packages.id"), default=None)
    version: Mapped[str | None] = mapped_column(String(32), default=None)
    db_version: Mapped[str | None] = mapped_column(String(32), default=None)
    status: Mapped[str] = mapped_column(String(24), default=DeploymentStatus.queued)
    # The operation running it now (a resume starts a new one).
    operation_id: Mapped[str | None] = mapped_column(String(36), default=None)
    # {"batches": [[host_id, …], …], "parallel": n, "pause": seconds | "manual", …}
    plan: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    next_batch: Mapped[int] = mapped_column(default=0)
    # Set by POST …/continue; the paused job waits for it to pass `next_batch`.
    continued_batches: Mapped[int] = mapped_column(default=0)
    db_result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    actor: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class DeploymentHost(Base):
    __tablename__ = "deployment_hosts"
    __table_args__ = (UniqueConstraint("deployment_id", "host_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"))
    host_name: Mapped[str] = mapped_column(String(63))
    batch: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(16), default=HostStatus.pending)
    previous_version: Mapped[str | None] = mapped_column(String(32), default=None)
    # The whole release the host runs now, as far as this deployment knows.
    version: Mapped[str | None] = mapped_column(String(32), default=None)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class HostRelease(Base):
    """What one host of an environment runs, and which of its kept releases ever worked."""

    __tablename__ = "host_releases"
    __table_args__ = (UniqueConstraint("environment_id", "host_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"))
    host_name: Mapped[str] = mapped_column(String(63))
    current_version: Mapped[str | None] = mapped_column(String(32), default=None)
    # Versions that passed their health check here, oldest first; rollback picks only these.
    good_versions: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Release directories present on the host (versioned layout), oldest first.
    kept_versions: Mapped[list[str]] = mapped_column(JSON, default=list)
    deployment_id: Mapped[int | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

"""Docker endpoints and their append-only revision history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from slipway.core.db import Base, utcnow
from slipway.core.types import BigIntPK


class DockerEndpoint(Base):
    """A Docker engine slipway may act on: its current (newest) revision, plus the last check.

    The client key lives in the secrets table (`key_secret_id`); the CA and client certificate
    are public and kept here as PEM text.
    """

    __tablename__ = "docker_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    url: Mapped[str] = mapped_column(String(255))
    is_builtin: Mapped[bool] = mapped_column(default=False)
    description: Mapped[str] = mapped_column(Text, default="")
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    ca_pem: Mapped[str | None] = mapped_column(Text, default=None)
    cert_pem: Mapped[str | None] = mapped_column(Text, default=None)
    key_secret_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("secrets.id"), default=None
    )
    ca_fingerprint: Mapped[str | None] = mapped_column(String(64), default=None)
    cert_fingerprint: Mapped[str | None] = mapped_column(String(64), default=None)
    tls_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revision: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The last save, test or check that reached the engine, and what it said.
    last_checked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    engine: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)

    @property
    def has_tls(self) -> bool:
        return self.key_secret_id is not None


class DockerEndpointRevision(Base):
    """One saved state of an endpoint. Never updated; never holds the key, only fingerprints."""

    __tablename__ = "docker_endpoint_revisions"
    __table_args__ = (UniqueConstraint("endpoint_id", "revision"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    # Indexed by the unique constraint, whose first column it is.
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("docker_endpoints.id", ondelete="CASCADE"))
    revision: Mapped[int]
    url: Mapped[str] = mapped_column(String(255))
    has_tls: Mapped[bool]
    ca_fingerprint: Mapped[str | None] = mapped_column(String(64), default=None)
    cert_fingerprint: Mapped[str | None] = mapped_column(String(64), default=None)
    tls_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    description: Mapped[str] = mapped_column(Text, default="")
    changes: Mapped[list[str]] = mapped_column(JSON, default=list)
    actor: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

"""Tables of the apps domain."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from slipway.core.db import Base, new_id, utcnow

# --- catalog -------------------------------------------------------------------------------------


class CatalogSourceKind(StrEnum):
    builtin = "builtin"  # the templates shipped inside slipway (slipway/apps/library)
    dir = "dir"  # a directory of app folders, copied into the data dir on each refresh
    archive = "archive"  # a .tar.gz / .zip at a path or http(s) URL, unpacked on each refresh


class CatalogSourceOrigin(StrEnum):
    builtin = "builtin"
    env = "env"  # seeded once from SLIPWAY_CATALOG_DIRS
    api = "api"


class CatalogSource(Base):
    """Where app templates come from, and the snapshot of it in use.

    A `dir` or `archive` source is read from `<data dir>/catalogs/<name>/<snapshot>/`, written by
    its last successful refresh; the built-in one straight from the package.
    """

    __tablename__ = "catalog_sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    origin: Mapped[str] = mapped_column(String(16))
    location: Mapped[str] = mapped_column(Text)
    allow_privileged: Mapped[bool] = mapped_column(default=False)
    # The catalog version of the snapshot in use: declared by the source, else its content hash.
    version: Mapped[str | None] = mapped_column(String(128), default=None)
    content_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    snapshot: Mapped[str | None] = mapped_column(String(255), default=None)
    # key -> {"hash", "versions", "default_version"} of every app in the snapshot.
    apps: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # app folder -> why it was skipped.
    skipped: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    last_refresh_at: Mapped[datetime | None] = mapped_column(default=None)
    # None after a successful refresh, else {"code", "message"} of the failure.
    last_refresh_error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # {"added", "removed", "updated"} of the last refresh that changed something.
    last_changes: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- installed apps ------------------------------------------------------------------------------


class InstallState(StrEnum):
    """How slipway came to manage the app; the live status comes from the engine."""

    installing = "installing"
    installed = "installed"
    failed = "failed"  # the install failed; only uninstall (or redeploy) makes sense
    adopted = "adopted"  # found running under compose, not installed by slipway


class App(Base):
    """An app installed (or adopted) on a Docker endpoint; its compose project is its name."""

    __tablename__ = "apps"
    __table_args__ = (UniqueConstraint("endpoint", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(63))
    endpoint: Mapped[str] = mapped_column(String(63))
    catalog_key: Mapped[str | None] = mapped_column(String(128))
    source: Mapped[str | None] = mapped_column(String(63))
    edition: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[str | None] = mapped_column(String(64))
    # Settings as given (non-secret); secret ones are in the vault, by setting name.
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    secret_settings: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    app_dir: Mapped[str] = mapped_column(String(1024))
    install_state: Mapped[str] = mapped_column(String(16))
    is_redeploy_pending: Mapped[bool] = mapped_column(default=False)
    last_operation_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

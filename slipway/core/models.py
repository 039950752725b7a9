"""Tables owned by core: process-wide metadata, cross-process mutexes, the secrets vault and
runtime settings with their revisions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from slipway.core.db import Base, new_id, utcnow
from slipway.core.types import BigIntPK


class Meta(Base):
    """Small process-wide facts, e.g. the fingerprint of the master key."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Mutex(Base):
    """Rows locked by `hold_mutex` to serialize decisions across processes."""

    __tablename__ = "mutexes"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    counter: Mapped[int] = mapped_column(BigInteger, default=0)


class Secret(Base):
    """One encrypted value. Other tables keep only the id; the vault decrypts on use."""

    __tablename__ = "secrets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    ciphertext: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RuntimeSetting(Base):
    """A setting changed at run time through the API (outbound allow-list, callback headers…).

    `value` is what may be shown; for a secret setting it is the masked view and the full value
    lives in the vault (`secret_id`). The newest revision is the row itself.
    """

    __tablename__ = "runtime_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    value: Mapped[Any] = mapped_column(JSON)
    secret_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("secrets.id"), default=None
    )
    revision: Mapped[int] = mapped_column(default=1)
    updated_by: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class RuntimeSettingRevision(Base):
    """One saved state of a runtime setting. Never updated; never holds a secret value."""

    __tablename__ = "runtime_setting_revisions"
    __table_args__ = (UniqueConstraint("setting_id", "revision"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    # Indexed by the unique constraint, whose first column it is.
    setting_id: Mapped[int] = mapped_column(ForeignKey("runtime_settings.id", ondelete="CASCADE"))
    revision: Mapped[int]
    value: Mapped[Any] = mapped_column(JSON)
    is_secret: Mapped[bool] = mapped_column(default=False)
    changes: Mapped[list[str]] = mapped_column(JSON, default=list)
    actor: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

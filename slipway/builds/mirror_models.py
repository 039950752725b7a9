"""Mirror profiles saved through the API (they add to, or override, the built-in library)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from slipway.core.db import Base, utcnow
from slipway.core.types import BigIntPK

__all__ = ["MirrorProfile", "MirrorProfileRevision"]


class MirrorProfile(Base):
    """The current (newest) revision of a profile: an apt sources list or a yum .repo file.

    Named like FastBuild's source directory: `type` (the mirror: ali, 163, …) and `file_name`
    (`ubuntu-18.04.list`); the extension says the manager (`.list` apt, `.repo` yum).
    """

    __tablename__ = "mirror_profiles"
    __table_args__ = (UniqueConstraint("type", "file_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    file_name: Mapped[str] = mapped_column(String(64))
    manager: Mapped[str] = mapped_column(String(8))
    content: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    revision: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class MirrorProfileRevision(Base):
    """One saved state of a profile. Never updated."""

    __tablename__ = "mirror_profile_revisions"
    __table_args__ = (UniqueConstraint("profile_id", "revision"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("mirror_profiles.id", ondelete="CASCADE"))
    revision: Mapped[int]
    content: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    changes: Mapped[list[str]] = mapped_column(JSON, default=list)
    actor: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

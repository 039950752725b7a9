"""Tables owned by core: process-wide metadata, cross-process mutexes and the secrets vault."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from slipway.core.db import Base, new_id, utcnow


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

"""Database engine, sessions and the declarative base shared by every domain's models."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event, text
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from slipway.core.config import Settings, get_settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the backend stores."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # WAL lets readers (the API) work while a worker writes; busy_timeout makes writers queue
        # instead of failing; foreign keys are off by default in SQLite.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def make_engine(database_url: str, **options: Any) -> Engine:
    """An engine for `database_url`, tuned for the backend; `options` go to create_engine."""
    if database_url.startswith("sqlite"):
        engine = create_engine(
            database_url, connect_args={"check_same_thread": False, "timeout": 30}, **options
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(database_url, pool_pre_ping=True, pool_size=10, max_overflow=20, **options)


@lru_cache
def _engine_for(database_url: str) -> Engine:
    return make_engine(database_url)


def get_engine(settings: Settings | None = None) -> Engine:
    """The process-wide engine for the configured database."""
    return _engine_for((settings or get_settings()).database_url)


@lru_cache
def _autocommit_engine_for(database_url: str) -> Engine:
    return make_engine(database_url, isolation_level="AUTOCOMMIT")


def get_autocommit_engine(settings: Settings | None = None) -> Engine:
    """A second process-wide engine whose connections commit each statement on its own: a
    single-statement write costs one round trip instead of BEGIN, statement and COMMIT.

    A pool of its own: switching a shared connection in and out of autocommit at every checkout
    costs about what the two round trips do."""
    return _autocommit_engine_for((settings or get_settings()).database_url)


@lru_cache
def _session_factory(database_url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=_engine_for(database_url), expire_on_commit=False)


def session_factory(settings: Settings | None = None) -> sessionmaker[Session]:
    return _session_factory((settings or get_settings()).database_url)


@contextmanager
def session_scope(settings: Settings | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = session_factory(settings)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def hold_mutex(session: Session, name: str) -> None:
    """Serialize a read-then-write section across processes until the transaction ends.

    An UPDATE takes the row lock on PostgreSQL and the write lock on SQLite, so whoever holds it
    reads the latest committed state; the same statement works on both backends.
    """
    result = session.execute(
        text("UPDATE mutexes SET counter = counter + 1 WHERE name = :name"), {"name": name}
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        session.execute(
            text("INSERT INTO mutexes (name, counter) VALUES (:name, 1)"), {"name": name}
        )

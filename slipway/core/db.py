"""Database engine, sessions and the declarative base shared by every domain's models."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

from sqlalchemy import JSON, DateTime, Engine, MetaData, create_engine, event, make_url, text
from sqlalchemy.exc import DBAPIError
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


# libpq waits for a connection as long as TCP lets it: a database host that accepts but never
# answers (overloaded, half-dead) would hold a request or a job, and the API's one intake thread
# with it, for minutes. A `connect_timeout` in the URL wins.
PG_CONNECT_TIMEOUT = 10


def _pg_connect_args(database_url: str) -> dict[str, Any]:
    if "connect_timeout" in make_url(database_url).query:
        return {}
    return {"connect_timeout": PG_CONNECT_TIMEOUT}


def make_engine(database_url: str, **options: Any) -> Engine:
    """An engine for `database_url`, tuned for the backend; `options` go to create_engine."""
    if database_url.startswith("sqlite"):
        engine = create_engine(
            database_url, connect_args={"check_same_thread": False, "timeout": 30}, **options
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(
        database_url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        connect_args=_pg_connect_args(database_url),
        **options,
    )


@lru_cache
def _engine_for(database_url: str) -> Engine:
    return make_engine(database_url)


def get_engine(settings: Settings | None = None) -> Engine:
    """The process-wide engine for the configured database."""
    return _engine_for((settings or get_settings()).database_url)


@lru_cache
def _autocommit_engine_for(database_url: str) -> Engine:
    if database_url.startswith("sqlite"):
        return make_engine(database_url, isolation_level="AUTOCOMMIT")
    # No ping at checkout: `execute_autocommit` retries a statement whose connection turns out
    # to be dead instead (a ping is a round trip per statement, as dear as the statement).
    return create_engine(
        database_url,
        isolation_level="AUTOCOMMIT",
        pool_pre_ping=False,
        pool_size=10,
        max_overflow=20,
        connect_args=_pg_connect_args(database_url),
    )


def get_autocommit_engine(settings: Settings | None = None) -> Engine:
    """A second process-wide engine whose connections commit each statement on its own: a
    single-statement write costs one round trip instead of BEGIN, statement and COMMIT.

    A pool of its own: switching a shared connection in and out of autocommit at every checkout
    costs about what the two round trips do. Run statements on it with `execute_autocommit`."""
    return _autocommit_engine_for((settings or get_settings()).database_url)


def execute_autocommit(settings: Settings, statement: Any, params: dict[str, Any]) -> Any:
    """Run one statement as its own transaction and return its first row (or None).

    Its pooled connections are not pinged before use; when one turns out to be dead (the
    database restarted since), the statement runs once more on a fresh connection. Usually the
    first run never reached the database; should it have committed just before the connection
    died, the second run must be harmless: the runner's conditional UPDATEs then match nothing,
    an operation's INSERT fails on its key (the row exists; maintenance enqueues it), an audit
    INSERT adds the row twice rather than losing it."""
    engine = get_autocommit_engine(settings)
    for attempt in (1, 2):
        try:
            with engine.connect() as conn:
                result = conn.execute(statement, params)
                return result.first() if result.returns_rows else None
        except DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
    return None


def execute_on_driver(settings: Settings, statement: Any, params: dict[str, Any]) -> Any:
    """`execute_autocommit` for the few statements every job runs (the runner's claim and
    outcome), on PostgreSQL handed to the driver directly: compiled once, then each run skips
    SQLAlchemy's execution context and result objects (0.2 ms of CPU per statement, as much as the
    driver's own work). `statement` must be a module constant (its compiled form is kept by
    identity) whose parameters are all given, with no Python-side column defaults to apply. The
    row comes back as an object with an attribute per column, JSON already decoded.

    Elsewhere (SQLite) it is `execute_autocommit`."""
    engine = get_autocommit_engine(settings)
    if engine.dialect.name != "postgresql":
        return execute_autocommit(settings, statement, params)
    compiled = _driver_statements.get(id(statement))
    if compiled is None:
        compiled = _driver_statements[id(statement)] = _DriverStatement(statement, engine)
    values = compiled.values(params)
    dbapi = engine.dialect.loaded_dbapi
    for attempt in (1, 2):
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(compiled.sql, values)
            row = cursor.fetchone() if cursor.description else None
            names = [column.name for column in cursor.description or ()]
            cursor.close()
            return SimpleNamespace(**dict(zip(names, row, strict=True))) if row else None
        except (dbapi.OperationalError, dbapi.InterfaceError) as exc:
            # A dead pooled connection (the database restarted): drop it, try a fresh one, as
            # `execute_autocommit` does.
            connection.invalidate()
            if attempt == 2:
                raise _as_sqlalchemy_error(exc, compiled.sql, engine) from exc
        except dbapi.Error as exc:
            raise _as_sqlalchemy_error(exc, compiled.sql, engine) from exc
        finally:
            connection.close()
    return None


def _as_sqlalchemy_error(exc: Exception, sql: str, engine: Engine) -> DBAPIError:
    """The error SQLAlchemy would have raised (`ProgrammingError` for a missing table, ...), so that
    callers tell a database error apart the same way whichever path ran the statement; without
    the parameters, which may hold what a user sent."""
    return DBAPIError.instance(
        sql,
        None,
        exc,
        engine.dialect.loaded_dbapi.Error,
        hide_parameters=True,
        dialect=engine.dialect,
    )


class _DriverStatement:
    def __init__(self, statement: Any, engine: Engine) -> None:
        self.statement = statement  # keeps the id in use
        self.compiled = statement.compile(dialect=engine.dialect)
        self.sql = str(self.compiled)
        from psycopg.types.json import Json

        self._json = Json
        self._json_names = [
            name for name, bind in self.compiled.binds.items() if isinstance(bind.type, JSON)
        ]

    def values(self, params: dict[str, Any]) -> dict[str, Any]:
        # Literal values the statement carries (status names, 0) join the given ones.
        values = dict(self.compiled.construct_params(params))
        for name in self._json_names:
            if values.get(name) is not None:
                values[name] = self._json(values[name])
        return values


_driver_statements: dict[int, _DriverStatement] = {}


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

"""Every table of every domain, and the Alembic migrations that create them."""

from __future__ import annotations

import fcntl
import functools
import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import make_url, text
from sqlalchemy.engine import Connection

from slipway.core.config import Settings
from slipway.core.db import Base, make_engine

MODEL_MODULES = (
    "slipway.core.models",
    "slipway.auth.models",
    "slipway.audit.models",
    "slipway.jobs.models",
    "slipway.targets.models",
    "slipway.apps.models",
    "slipway.releases.models",
    "slipway.builds.models",
)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# Any constant works; it only has to be the same in every slipway process.
_PG_MIGRATION_LOCK = 7_316_221_904


def load_models() -> type[Base]:
    for module in MODEL_MODULES:
        importlib.import_module(module)
    return Base


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    return config


@functools.cache
def head_revision() -> str | None:
    """Read once per process (about 20 ms: alembic loads every script); the migrations ship with
    the code, and every health check asks."""
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


@contextmanager
def _migration_lock(settings: Settings, connection: Connection) -> Iterator[None]:
    """Only one process migrates at a time; the others wait, then find nothing left to do."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
            connection.commit()
        return
    database = connection.engine.url.database or ""
    lock_path = (
        Path(f"{database}.migrate.lock") if database else settings.data_dir / ".migrate.lock"
    )
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def upgrade(settings: Settings, revision: str = "head") -> str | None:
    """Migrate the database to `revision`; safe to run from several processes at once."""
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        database = make_url(settings.database_url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as connection, _migration_lock(settings, connection):
            config = alembic_config(settings)
            config.attributes["connection"] = connection
            from alembic import command  # here: the API never migrates, and it is heavy

            command.upgrade(config, revision)
            connection.commit()
            return current_revision(connection)
    finally:
        engine.dispose()

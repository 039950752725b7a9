"""Every table of every domain, and the Alembic migrations that create them.

Alembic itself (about 10 MB once imported, more with the scripts loaded) is imported only to
migrate: a running API or worker asks for the head and current revisions on every health check,
and reads both without it.
"""

from __future__ import annotations

import ast
import fcntl
import functools
import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect, make_url, text
from sqlalchemy.engine import Connection

from slipway.core.config import Settings
from slipway.core.db import Base, make_engine

if TYPE_CHECKING:
    from alembic.config import Config

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
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    return config


def _revision_ids(script: Path) -> tuple[str, tuple[str, ...]] | None:
    """A migration script's `revision` and the revisions it follows, read without running it
    (None for a file in the folder that is no migration)."""
    values: dict[str, Any] = {}
    for node in ast.parse(script.read_text()).body:
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
            values[target.id] = ast.literal_eval(value)
    if "revision" not in values:
        return None
    down = values.get("down_revision")
    downs = () if down is None else (down,) if isinstance(down, str) else tuple(down)
    return str(values["revision"]), downs


@functools.cache
def head_revision() -> str | None:
    """The revision no other migration follows, as alembic's `ScriptDirectory.get_current_head`
    would say; read once per process (the migrations ship with the code)."""
    revisions: set[str] = set()
    followed: set[str] = set()
    for script in (MIGRATIONS_DIR / "versions").glob("*.py"):
        ids = _revision_ids(script)
        if ids is None:
            continue
        revision, downs = ids
        revisions.add(revision)
        followed.update(downs)
    heads = sorted(revisions - followed)
    if len(heads) > 1:
        raise RuntimeError(f"the migrations have several heads: {', '.join(heads)}")
    return heads[0] if heads else None


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (None before the first migration)."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


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

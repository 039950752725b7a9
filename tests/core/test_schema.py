"""Migrations: `slipway db upgrade` builds the whole schema, once, however many run it at once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, make_url, text

from slipway.core import schema
from slipway.core.config import Settings
from slipway.core.db import make_engine
from tests.cli.helpers import fresh_database, ok, run_together
from tests.conftest import ROOT


@pytest.fixture
def empty_database(backend: str, tmp_path: Path) -> Iterator[str]:
    with fresh_database(backend, tmp_path) as url:
        yield url


def tables_and_versions(database_url: str) -> tuple[set[str], list[str]]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            versions = [
                row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))
            ]
    finally:
        engine.dispose()
    return tables, versions


def test_db_upgrade_builds_every_table_once_even_when_two_run_at_the_same_moment(
    empty_database: str, tmp_path: Path
) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "SLIPWAY_DATA_DIR": str(tmp_path / "data"),
        "SLIPWAY_DATABASE_URL": empty_database,
    }
    settings = Settings(data_dir=tmp_path / "data", database_url=empty_database)
    head = schema.head_revision()
    assert head is not None
    assert len(ScriptDirectory.from_config(schema.alembic_config(settings)).get_heads()) == 1
    expected = set(schema.load_models().metadata.tables) | {"alembic_version"}

    first, second = run_together([["db", "upgrade"], ["db", "upgrade"]], env=env)

    assert ok(first) == ok(second) == f"database at revision {head}\n"
    assert tables_and_versions(empty_database) == (expected, [head])

    again, current = run_together([["db", "upgrade"], ["db", "current"]], env=env)

    assert ok(again) == f"database at revision {head}\n"
    assert ok(current).split() == ["current", head, "head", head]
    assert tables_and_versions(empty_database) == (expected, [head])


def test_the_models_and_the_migrations_agree(database_url: str) -> None:
    """What autogenerate would write for a new revision: nothing."""
    metadata = schema.load_models().metadata
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()

    assert differences == []


def test_the_revisions_a_health_check_reads_are_alembics(empty_database: str, tmp_path: Path):
    """Read without importing alembic (an API or worker never migrates), and the same answers."""
    assert schema.head_revision() == ScriptDirectory(str(schema.MIGRATIONS_DIR)).get_current_head()
    if empty_database.startswith("sqlite"):
        Path(make_url(empty_database).database or "").parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(empty_database)
    try:
        for migrate in (False, True):
            if migrate:
                schema.upgrade(Settings(data_dir=tmp_path / "data", database_url=empty_database))
            with engine.connect() as conn:
                alembic_says = MigrationContext.configure(conn).get_current_revision()
                assert schema.current_revision(conn) == alembic_says
        assert alembic_says == schema.head_revision()
    finally:
        engine.dispose()

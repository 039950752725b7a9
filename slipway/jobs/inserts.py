"""How a new operation's row is written: by itself, with its companion rows (the audit row of the
request that started it) in one statement, or many operations in one transaction."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, Table, bindparam, insert
from sqlalchemy.orm import Session, make_transient_to_detached

from slipway.core.config import Settings
from slipway.core.db import execute_on_driver, get_engine
from slipway.jobs.models import Operation

Companions = Sequence[tuple[Table, dict[str, Any]]]


def insert_rows(session: Session, rows: Companions) -> None:
    for table, values in rows:
        session.execute(insert(table), values)


def is_clean(session: Session) -> bool:
    """Whether the session has nothing of its own to commit."""
    return not (session.in_transaction() or session.new or session.dirty or session.deleted)


def _column_default(column: Any) -> Any:
    default = column.default
    if default is None:
        return lambda: None
    if default.is_callable:
        return lambda: default.arg(None)
    return lambda: default.arg


_INSERT_OPERATION = insert(Operation.__table__)
_DEFAULTS = {column.key: _column_default(column) for column in Operation.__table__.columns}


def insert_new(session: Session, operation: Operation) -> None:
    """INSERT a new operation, then attach it to the session as if loaded from it.

    Cheaper than the unit of work for one row. Every column gets its value first (the model's
    default where none was given), so reading the object never goes back to the database; a None
    is left out of the INSERT, so the column is SQL NULL as when the ORM leaves it unset."""
    session.execute(_INSERT_OPERATION, _row_of(operation))
    make_transient_to_detached(operation)
    session.add(operation)


def _row_of(operation: Operation) -> dict[str, Any]:
    loaded = operation.__dict__
    for name, default in _DEFAULTS.items():
        if name not in loaded:
            setattr(operation, name, default())
    return {name: loaded[name] for name in _DEFAULTS if loaded[name] is not None}


def insert_at_once(
    settings: Settings,
    session: Session,
    operation: Operation,
    also_insert: Companions,
) -> None:
    """`insert_new` and `insert_rows` as one statement, its own transaction (PostgreSQL: the other
    rows are INSERTs in a WITH clause, which commit or fail with the operation's), handed to the
    driver directly (`execute_on_driver`: every column has its parameter)."""
    statement = _at_once_statement(tuple(table for table, _ in also_insert))
    params = _every_column(Operation.__table__, _row_of(operation), "op_")
    for index, (table, values) in enumerate(also_insert):
        params.update(_every_column(table, values, f"r{index}_"))
    execute_on_driver(settings, statement, params)
    make_transient_to_detached(operation)
    session.add(operation)


@functools.cache
def _insertable(table: Table) -> tuple[Any, ...]:
    """Every column but a key the database numbers."""
    return tuple(c for c in table.columns if not (c.primary_key and c.autoincrement is True))


def _param(name: str, column: Any) -> Any:
    # A None is SQL NULL, for JSON columns too (as when the column is left out of an INSERT).
    if isinstance(column.type, JSON):
        return bindparam(name, type_=JSON(none_as_null=True))
    return bindparam(name, type_=column.type)


# The statements are built once (cached) with a parameter per column: SQLAlchemy and the driver
# then reuse their compiled forms (building `.values({...})` per call costs more than the round
# trip saved), and every row of an executemany gives the same parameters.
@functools.cache
def _every_column_insert(table: Table, prefix: str = "") -> Any:
    """An INSERT into `table` with a parameter for each column (named `prefix` + its key)."""
    return insert(table).values({c.key: _param(f"{prefix}{c.key}", c) for c in _insertable(table)})


def _every_column(table: Table, values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The parameters of `_every_column_insert(table, prefix)` for one row (None where missing)."""
    return {f"{prefix}{c.key}": values.get(c.key) for c in _insertable(table)}


@functools.cache
def _at_once_statement(tables: tuple[Table, ...]) -> Any:
    statement = _every_column_insert(Operation.__table__, "op_")
    for index, table in enumerate(tables):
        companion = _every_column_insert(table, f"r{index}_")
        statement = statement.add_cte(companion.cte(f"also_{index}"))
    return statement


def insert_many(settings: Settings, new: Sequence[tuple[Operation, Companions]]) -> None:
    """Store several new operations, each with its companion rows, in one transaction: one
    commit for all of them (and a statement per table, executemany), then each operation reads
    as if loaded. All or none are stored."""
    rows: dict[Table, list[dict[str, Any]]] = {Operation.__table__: []}
    for operation, companions in new:
        rows[Operation.__table__].append(_every_column(Operation.__table__, _row_of(operation)))
        for table, values in companions:
            rows.setdefault(table, []).append(_every_column(table, values))
    with get_engine(settings).begin() as connection:
        for table, values in rows.items():
            connection.execute(_every_column_insert(table), values)
    for operation, _ in new:
        make_transient_to_detached(operation)

"""How a new operation's row is written: by itself, with its companion rows (the audit row of the
request that started it) in one statement, or many operations in one transaction."""

from __future__ import annotations

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
    tables = tuple(table for table, _ in also_insert)
    statement = _at_once_statements.get(tables)
    if statement is None:
        statement = _at_once_statements[tables] = _at_once_statement(tables)
    row = _row_of(operation)
    params = {f"op_{name}": row.get(name) for name in _DEFAULTS}
    for index, (table, values) in enumerate(also_insert):
        params.update({f"r{index}_{c.key}": values.get(c.key) for c in _insertable(table)})
    execute_on_driver(settings, statement, params)
    make_transient_to_detached(operation)
    session.add(operation)


# Built once per set of companion tables, with a parameter per column: SQLAlchemy then reuses
# the compiled statement (building `.values({...})` per call costs more than the round trip saved).
_at_once_statements: dict[tuple[Table, ...], Any] = {}


def _insertable(table: Table) -> list[Any]:
    """Every column but a key the database numbers."""
    return [c for c in table.columns if not (c.primary_key and c.autoincrement is True)]


def _param(name: str, column: Any) -> Any:
    # A None is SQL NULL, for JSON columns too (as when the column is left out of an INSERT).
    if isinstance(column.type, JSON):
        return bindparam(name, type_=JSON(none_as_null=True))
    return bindparam(name, type_=column.type)


def _at_once_statement(tables: tuple[Table, ...]) -> Any:
    operations = Operation.__table__
    statement = insert(operations).values(
        {c.key: _param(f"op_{c.key}", c) for c in operations.columns}
    )
    for index, table in enumerate(tables):
        companion = insert(table).values(
            {c.key: _param(f"r{index}_{c.key}", c) for c in _insertable(table)}
        )
        statement = statement.add_cte(companion.cte(f"also_{index}"))
    return statement


# One per table, a parameter per column (JSON ones typed so that None is SQL NULL): every row of
# an executemany must give the same parameters.
_many_statements: dict[Table, Any] = {}


def insert_many(settings: Settings, new: Sequence[tuple[Operation, Companions]]) -> None:
    """Store several new operations, each with its companion rows, in one transaction: one
    commit for all of them (and a statement per table, executemany), then each operation reads
    as if loaded. All or none are stored."""
    rows: dict[Table, list[dict[str, Any]]] = {Operation.__table__: []}
    for operation, companions in new:
        row = _row_of(operation)
        rows[Operation.__table__].append({name: row.get(name) for name in _DEFAULTS})
        for table, values in companions:
            columns = _insertable(table)
            rows.setdefault(table, []).append({c.key: values.get(c.key) for c in columns})
    with get_engine(settings).begin() as connection:
        for table, values in rows.items():
            statement = _many_statements.get(table)
            if statement is None:
                statement = _many_statements[table] = insert(table).values(
                    {c.key: _param(c.key, c) for c in _insertable(table)}
                )
            connection.execute(statement, values)
    for operation, _ in new:
        make_transient_to_detached(operation)

"""Finding a row by the reference a user typed: its name, or its id when the reference is digits."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

T = TypeVar("T")


def by_name_or_id(session: Session, model: type[T], ref: str, **scope: Any) -> T | None:
    """The `model` row named `ref`, else, when `ref` is all digits, the one with that id.

    The name wins: a release project may be named "2024". `scope` narrows both lookups
    (`project_id=...`). `model` needs `name` and `id` columns.
    """
    columns: Any = model
    query = select(model).filter_by(**scope)
    row = session.scalar(query.where(columns.name == ref))
    if row is None and ref.isdigit():
        row = session.scalar(query.where(columns.id == int(ref)))
    return row

"""What every CLI command shares: exit codes, one-line errors on stderr, the local context."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, NoReturn, TypeVar

import typer

from slipway.core.config import Settings, get_settings
from slipway.core.errors import (
    AuthError,
    ConflictError,
    InputError,
    NotFoundError,
    SlipwayError,
    UnavailableError,
)

# Exit codes scripts can rely on.
EXIT_OK = 0
EXIT_FAILED = 1  # the operation or check ran and failed
EXIT_USAGE = 2  # bad arguments (also Typer's own code)
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_AUTH = 5
EXIT_UNAVAILABLE = 6
EXIT_INTERNAL = 70

F = TypeVar("F", bound=Callable[..., Any])


def exit_code_for(error: SlipwayError) -> int:
    if isinstance(error, InputError):
        return EXIT_USAGE
    if isinstance(error, NotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(error, ConflictError):
        return EXIT_CONFLICT
    if isinstance(error, AuthError):
        return EXIT_AUTH
    if isinstance(error, UnavailableError):
        return EXIT_UNAVAILABLE
    return EXIT_FAILED


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """One line on stderr, then exit."""
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    raise typer.Exit(code)


def handle_errors(func: F) -> F:
    """Turn slipway errors into one stderr line and a meaningful exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SlipwayError as error:
            fail(f"{error.code}: {error.message}", exit_code_for(error))
        except KeyboardInterrupt:
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def settings() -> Settings:
    return get_settings()


def _is_missing_sqlite_file(database_url: str) -> bool:
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    return (
        url.get_backend_name() == "sqlite"
        and bool(url.database)
        and not os.path.exists(url.database)
    )


@contextmanager
def local_session() -> Iterator[Any]:
    """A database session for the local commands; refuses a database that is not migrated."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from slipway.core.db import session_scope

    config = settings()
    try:
        with session_scope(config) as session:
            yield session
    except (OperationalError, ProgrammingError) as error:
        text = str(error.orig) if hasattr(error, "orig") else str(error)
        # SQLite says "no such table"; PostgreSQL 'relation "users" does not exist' (and
        # 'database "x" does not exist' when the database itself is missing: not a migration).
        is_unmigrated = (
            "no such table" in text
            or ("relation" in text and "does not exist" in text)
            or _is_missing_sqlite_file(config.database_url)
        )
        if is_unmigrated:
            raise UnavailableError(
                "the database is not migrated: run `slipway db upgrade` first",
                code="database_not_migrated",
            ) from None
        raise UnavailableError(f"the database does not answer: {text.splitlines()[0]}") from None


def describe_unexpected(error: Exception) -> tuple[str, int]:
    """One line and an exit code for an error no command turned into a SlipwayError."""
    from pydantic import ValidationError

    if isinstance(error, ValidationError) and error.title == "Settings":
        problems = []
        for item in error.errors():
            parts = [str(part) for part in item["loc"]]
            name = "SLIPWAY_" + "_".join(parts).upper() if parts else "settings"
            problems.append(f"{name}: {item['msg'].removeprefix('Value error, ')}")
        return f"invalid setting {'; '.join(problems)}", EXIT_USAGE
    # Only modules already imported can have raised; do not import them just to check.
    redis_errors = sys.modules.get("redis.exceptions")
    if redis_errors is not None and isinstance(error, redis_errors.ConnectionError):
        return f"unavailable: Redis does not answer: {error}", EXIT_UNAVAILABLE
    sqlalchemy_errors = sys.modules.get("sqlalchemy.exc")
    if sqlalchemy_errors is not None and isinstance(error, sqlalchemy_errors.OperationalError):
        text = str(getattr(error, "orig", None) or error)
        return f"unavailable: the database does not answer: {text}", EXIT_UNAVAILABLE
    return f"internal: {type(error).__name__}: {error}", EXIT_INTERNAL


def report_unexpected(error: Exception) -> NoReturn:
    """Print one line for `error` (the traceback too when SLIPWAY_LOG_LEVEL=DEBUG), then exit."""
    if os.environ.get("SLIPWAY_LOG_LEVEL", "").upper() == "DEBUG":
        traceback.print_exception(error, file=sys.stderr)
    message, code = describe_unexpected(error)
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(code)

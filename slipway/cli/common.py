"""What every CLI command shares: exit codes, one-line errors on stderr, the local context."""

from __future__ import annotations

import sys
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


@contextmanager
def local_session() -> Iterator[Any]:
    """A database session for the local commands; refuses a database that is not migrated."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from slipway.core.db import session_scope

    try:
        with session_scope(settings()) as session:
            yield session
    except (OperationalError, ProgrammingError) as error:
        text = str(error.orig) if hasattr(error, "orig") else str(error)
        if "no such table" in text or "does not exist" in text:
            raise UnavailableError(
                "the database is not migrated: run `slipway db upgrade` first",
                code="database_not_migrated",
            ) from None
        raise UnavailableError(f"the database does not answer: {text.splitlines()[0]}") from None

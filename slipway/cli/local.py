"""Commands that act on the local database and Redis: db, users, tokens, secrets.

Heavy modules are imported inside the commands, so `--help` and the other commands start fast.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from slipway.auth.models import Role
from slipway.cli.common import EXIT_USAGE, fail, handle_errors, local_session, settings

db_app = typer.Typer(help="The database schema (local).")
users_app = typer.Typer(help="Users (local: works without the API, e.g. for the first admin).")
tokens_app = typer.Typer(help="API tokens for CI (local).")
secrets_app = typer.Typer(help="The master key of the secrets vault (local).")


@db_app.command("upgrade")
@handle_errors
def db_upgrade(revision: Annotated[str, typer.Argument(help="target revision")] = "head") -> None:
    """Apply migrations; safe to run from several processes at once."""
    from slipway.core import schema

    current = schema.upgrade(settings(), revision)
    print(f"database at revision {current}")


@db_app.command("current")
@handle_errors
def db_current() -> None:
    """Print the schema revision of the database and the one this slipway needs."""
    from slipway.core import schema

    with local_session() as session:
        print(f"current {schema.current_revision(session.connection())}")
    print(f"head    {schema.head_revision()}")


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    if not password:
        fail("no password given", EXIT_USAGE)
    return password


@users_app.command("create")
@handle_errors
def users_create(
    name: str,
    role: Annotated[Role, typer.Option(help="admin, operator or viewer")] = Role.viewer,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read it from stdin")
    ] = False,
    if_missing: Annotated[
        bool, typer.Option("--if-missing", help="succeed quietly if it exists")
    ] = False,
) -> None:
    """Create a user; the password comes from a prompt or stdin."""
    from slipway.auth import service as auth_service

    with local_session() as session:
        if if_missing and auth_service.get_user(session, name) is not None:
            return
        password = _read_password(password_stdin)
        auth_service.create_user(session, name=name, password=password, role=role)
    print(f"user {name} created with role {role}")


@users_app.command("list")
@handle_errors
def users_list() -> None:
    """List users."""
    from slipway.auth import service as auth_service

    with local_session() as session:
        for user in auth_service.list_users(session):
            state = "active" if user.is_active else "disabled"
            print(f"{user.name:<24} {user.role:<9} {state}")


@users_app.command("set-password")
@handle_errors
def users_set_password(
    name: str,
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
) -> None:
    """Set a user's password (their logged-in sessions end)."""
    from slipway.auth import service as auth_service

    with local_session() as session:
        auth_service.get_user_or_raise(session, name)
        auth_service.update_user(session, name=name, password=_read_password(password_stdin))
    print(f"password of {name} changed")


@users_app.command("set-role")
@handle_errors
def users_set_role(name: str, role: Role) -> None:
    """Change a user's role."""
    from slipway.auth import service as auth_service

    with local_session() as session:
        auth_service.update_user(session, name=name, role=role)
    print(f"{name} is now {role}")


@users_app.command("disable")
@handle_errors
def users_disable(name: str) -> None:
    """Disable a user: their tokens stop working."""
    from slipway.auth import service as auth_service

    with local_session() as session:
        auth_service.update_user(session, name=name, is_active=False)
    print(f"{name} disabled")


@tokens_app.command("create")
@handle_errors
def tokens_create(
    user: Annotated[str, typer.Option(help="the token's owner")],
    name: Annotated[str, typer.Option(help="what the token is for, e.g. ci")],
    expires_in_days: Annotated[int | None, typer.Option(min=1)] = None,
) -> None:
    """Create an API token; it is printed once, on stdout, alone."""
    from slipway.auth import service as auth_service

    with local_session() as session:
        token, _ = auth_service.create_api_token(
            session, user_name=user, name=name, expires_in_days=expires_in_days
        )
    print(token)


@tokens_app.command("list")
@handle_errors
def tokens_list(user: Annotated[str | None, typer.Option()] = None) -> None:
    """List API tokens (never the tokens themselves)."""
    from slipway.auth import service as auth_service

    with local_session() as session:
        for row, owner in auth_service.list_api_tokens(session, user_name=user):
            state = "revoked" if row.revoked_at else "active"
            used = row.last_used_at.isoformat() if row.last_used_at else "never"
            print(f"{row.id:<5} {owner:<16} {row.name:<16} {state:<8} last used {used}")


@tokens_app.command("revoke")
@handle_errors
def tokens_revoke(token_id: int) -> None:
    """Revoke an API token by its id."""
    from slipway.auth import service as auth_service

    with local_session() as session:
        auth_service.revoke_api_token(session, token_id)
    print(f"token {token_id} revoked")


@secrets_app.command("rotate-key")
@handle_errors
def secrets_rotate_key() -> None:
    """Re-encrypt every secret under a new master key. Stop all slipway processes first."""
    from slipway.core.secrets import rotate_key

    with local_session() as session:
        old, new, count = rotate_key(session, settings())
    print(f"re-encrypted {count} secret(s); key {old[:12]}… replaced by {new[:12]}…")
    print(f"new key in {settings().key_file}; restart every slipway process with it")


@secrets_app.command("generate-key")
def secrets_generate_key() -> None:
    """Print a new random master key (for SLIPWAY_SECRET_KEY)."""
    from slipway.core.secrets import encode_key, generate_key

    print(encode_key(generate_key()))

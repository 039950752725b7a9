"""Users, passwords, API tokens and login throttling (who is calling, from a token: principals)."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import redis
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from slipway.auth.models import ApiToken, Role, TokenKind, User
from slipway.auth.principals import auth_changed
from slipway.core.config import Settings
from slipway.core.db import utcnow
from slipway.core.errors import (
    AuthError,
    ConflictError,
    InputError,
    NotFoundError,
    RateLimitedError,
)
from slipway.core.redis import get_redis, key
from slipway.core.security import hash_password, hash_token, new_token, verify_password

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$")
MIN_PASSWORD_LENGTH = 8
MAX_TOKEN_ID = 2**31 - 1


def check_name(name: str, *, field: str = "name") -> str:
    if not NAME_PATTERN.match(name):
        raise InputError(
            f"{field} {name[:80]!r} is not valid: use 1-64 lowercase letters, digits, '.', '_' or "
            "'-', starting and ending with a letter or digit",
            field=field,
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InputError(
            f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters",
            field="password",
        )
    return password


# --- users ------------------------------------------------------------------------------------


def get_user(session: Session, name: str) -> User | None:
    return session.scalar(select(User).where(User.name == name))


def get_user_or_raise(session: Session, name: str) -> User:
    user = get_user(session, name)
    if user is None:
        raise NotFoundError(f"user {name!r} does not exist", code="user_not_found")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))


def create_user(session: Session, *, name: str, password: str, role: Role) -> User:
    check_name(name)
    check_password(password)
    if get_user(session, name) is not None:
        raise ConflictError(f"user {name!r} already exists; pick another name", code="user_exists")
    user = User(name=name, password_hash=hash_password(password), role=role)
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise ConflictError(
            f"user {name!r} already exists; pick another name", code="user_exists"
        ) from None
    return user


def update_user(
    session: Session,
    *,
    name: str,
    role: Role | None = None,
    password: str | None = None,
    is_active: bool | None = None,
) -> User:
    user = get_user_or_raise(session, name)
    is_role_changed = role is not None and role != user.role
    loses_admin = user.role == Role.admin and (
        (role is not None and role != Role.admin) or is_active is False
    )
    if loses_admin and user.is_active:
        _keep_an_admin(session, user)
    if role is not None:
        user.role = role
    if password is not None:
        user.password_hash = hash_password(check_password(password))
    if is_active is not None:
        user.is_active = is_active
    if password is not None or is_active is False or is_role_changed:
        # Logged-in sessions carry the old rights; make them log in again.
        revoke_sessions(session, user.id)
    auth_changed(session)
    session.flush()
    return user


def delete_user(session: Session, name: str, *, acting_user: str | None = None) -> None:
    """Delete a user and their tokens; `acting_user` (the caller) may not delete themselves."""
    if name == acting_user:
        raise ConflictError("you cannot delete yourself; ask another admin", code="self_delete")
    user = get_user_or_raise(session, name)
    if user.role == Role.admin and user.is_active:
        _keep_an_admin(session, user)
    session.delete(user)
    auth_changed(session)
    session.flush()


def _keep_an_admin(session: Session, user: User) -> None:
    """Refuse a change that would leave no active admin (nobody could manage users again)."""
    others = session.scalar(
        select(func.count()).where(
            User.role == Role.admin, User.is_active.is_(True), User.id != user.id
        )
    )
    if not others:
        raise ConflictError(
            f"{user.name!r} is the last active admin; make another user admin first",
            code="last_admin",
        )


# --- login ------------------------------------------------------------------------------------


# One address may fail this many times more than one user name may, across all names: guessing
# across many accounts is slowed too, while one bad client behind a shared proxy cannot lock
# everybody out after a handful of typos.
PER_ADDRESS_FACTOR = 4


def _throttle_key(name: str, source_ip: str) -> str:
    return key("login-failures", name.lower()[:64], source_ip)


def _address_key(source_ip: str) -> str:
    return key("login-failures-from", source_ip)


def _check_throttle(settings: Settings, name: str, source_ip: str) -> None:
    try:
        client = get_redis(settings)
        per_name, per_address = client.mget(_throttle_key(name, source_ip), _address_key(source_ip))
        if int(per_name or 0) >= settings.login_max_failures:
            wait = max(1, int(client.ttl(_throttle_key(name, source_ip))))
            raise RateLimitedError(
                f"too many failed logins for {name!r} from {source_ip}; try again in {wait} s",
                retry_after=wait,
            )
        if int(per_address or 0) >= settings.login_max_failures * PER_ADDRESS_FACTOR:
            wait = max(1, int(client.ttl(_address_key(source_ip))))
            raise RateLimitedError(
                f"too many failed logins from {source_ip}; try again in {wait} s",
                retry_after=wait,
            )
    except redis.RedisError:
        return


def _record_failure(settings: Settings, name: str, source_ip: str) -> None:
    try:
        client = get_redis(settings)
        pipe = client.pipeline()
        for counter in (_throttle_key(name, source_ip), _address_key(source_ip)):
            pipe.incr(counter)
            pipe.expire(counter, settings.login_lockout_seconds)
        pipe.execute()
    except redis.RedisError:
        return


def login(
    session: Session, settings: Settings, *, name: str, password: str, source_ip: str
) -> tuple[str, ApiToken]:
    """Check the password and issue a session token that expires after `token_ttl_minutes`."""
    _check_throttle(settings, name, source_ip)
    user = get_user(session, name)
    ok = verify_password(password, user.password_hash if user else None)
    if not ok or user is None or not user.is_active:
        _record_failure(settings, name, source_ip)
        raise AuthError("wrong user name or password", code="invalid_credentials")
    try:
        get_redis(settings).delete(_throttle_key(name, source_ip))
    except redis.RedisError:
        pass
    user.last_login_at = utcnow()
    token, row = _issue(
        session,
        user=user,
        name="login",
        kind=TokenKind.session,
        ttl=timedelta(minutes=settings.token_ttl_minutes),
    )
    return token, row


# --- tokens -----------------------------------------------------------------------------------


def _issue(
    session: Session, *, user: User, name: str, kind: TokenKind, ttl: timedelta | None
) -> tuple[str, ApiToken]:
    token = new_token("sls" if kind == TokenKind.session else "slw")
    row = ApiToken(
        user_id=user.id,
        name=name,
        kind=kind,
        token_hash=hash_token(token),
        expires_at=utcnow() + ttl if ttl else None,
    )
    session.add(row)
    session.flush()
    return token, row


def create_api_token(
    session: Session, *, user_name: str, name: str, expires_in_days: int | None = None
) -> tuple[str, ApiToken]:
    """A long-lived token for CI; the token text is returned once and never stored."""
    check_name(name)
    user = get_user_or_raise(session, user_name)
    existing = session.scalar(
        select(ApiToken).where(
            ApiToken.user_id == user.id,
            ApiToken.name == name,
            ApiToken.kind == TokenKind.api,
            ApiToken.revoked_at.is_(None),
        )
    )
    if existing is not None:
        raise ConflictError(
            f"user {user_name!r} already has a token named {name!r}; revoke it or pick another "
            "name",
            code="token_exists",
        )
    ttl = timedelta(days=expires_in_days) if expires_in_days else None
    return _issue(session, user=user, name=name, kind=TokenKind.api, ttl=ttl)


def list_api_tokens(
    session: Session, *, user_name: str | None = None
) -> list[tuple[ApiToken, str]]:
    query = (
        select(ApiToken, User.name)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.kind == TokenKind.api)
        .order_by(ApiToken.id)
    )
    if user_name:
        query = query.where(User.name == user_name)
    return [(token, owner) for token, owner in session.execute(query).all()]


def revoke_api_token(session: Session, token_id: int) -> tuple[ApiToken, str]:
    """Revoke an API token; returns it and its owner's name."""
    # Ids are 32-bit integers; a larger one would overflow the query instead of finding nothing.
    row = session.get(ApiToken, token_id) if 0 < token_id <= MAX_TOKEN_ID else None
    if row is None or row.kind != TokenKind.api:
        raise NotFoundError(f"token {token_id} does not exist", code="token_not_found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        auth_changed(session)
    session.flush()
    owner = session.get(User, row.user_id)
    return row, owner.name if owner else "?"


def revoke_sessions(session: Session, user_id: int) -> None:
    auth_changed(session)
    session.execute(
        update(ApiToken)
        .where(
            ApiToken.user_id == user_id,
            ApiToken.kind == TokenKind.session,
            ApiToken.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )

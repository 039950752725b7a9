"""Users, passwords, tokens and login throttling."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
from sqlalchemy import event, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from slipway.auth.models import ApiToken, Role, TokenKind, User
from slipway.core.config import Settings, get_settings
from slipway.core.db import utcnow
from slipway.core.errors import (
    AuthError,
    ConflictError,
    InputError,
    NotFoundError,
    RateLimitedError,
)
from slipway.core.redis import get_async_redis, get_redis, key
from slipway.core.security import hash_password, hash_token, new_token, verify_password

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$")
MIN_PASSWORD_LENGTH = 8
LAST_USED_EVERY = timedelta(minutes=1)
MAX_TOKEN_ID = 2**31 - 1


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user, their role, and the token they used."""

    user_id: int
    name: str
    role: Role
    token_id: int
    token_kind: TokenKind


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


def authenticate(session: Session, token: str) -> Principal:
    """The principal behind a bearer token, or AuthError saying what is wrong with it.

    Reads the database and remembers a valid token's principal for `PRINCIPAL_TTL` seconds (see
    `remembered_principal`); a refused token is never remembered."""
    token_hash = hash_token(token)
    generation = _principals.generation
    row = session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == token_hash)
    ).first()
    if row is None:
        raise AuthError(
            "the bearer token is not valid; log in again or create a new API token",
            code="invalid_token",
        )
    api_token, user = row
    now = utcnow()
    if api_token.revoked_at is not None:
        raise AuthError(
            "the bearer token was revoked; log in again or create a new API token",
            code="token_revoked",
        )
    _check_expiry(api_token.expires_at, now)
    if not user.is_active:
        raise AuthError(f"user {user.name!r} is disabled", code="user_disabled")
    last_used = api_token.last_used_at
    if last_used is None or now - last_used >= LAST_USED_EVERY:
        last_used = _touch(session, api_token.id, now)
    principal = Principal(
        user_id=user.id,
        name=user.name,
        role=Role(user.role),
        token_id=api_token.id,
        token_kind=TokenKind(api_token.kind),
    )
    _principals.put(
        token_hash,
        _Remembered(principal, api_token.expires_at, last_used, time.monotonic() + PRINCIPAL_TTL),
        generation,
    )
    return principal


def _check_expiry(expires_at: datetime | None, now: datetime) -> None:
    if expires_at is not None and expires_at <= now:
        raise AuthError("the bearer token has expired; log in again", code="token_expired")


def _touch(session: Session, token_id: int, now: datetime) -> datetime | None:
    """Record the token's use unless someone (another replica) did within the last minute;
    returns the last-used time now stored, as far as this process knows."""
    session.execute(
        update(ApiToken)
        .where(
            ApiToken.id == token_id,
            or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= now - LAST_USED_EVERY),
        )
        .values(last_used_at=now)
    )
    session.commit()
    return now


# --- the principal cache ----------------------------------------------------------------------
#
# Every API call authenticates; reading the token and its user from the database costs a round
# trip and two ORM objects, more than the rest of a cheap call. A valid token's principal is kept
# here for PRINCIPAL_TTL seconds, so that a burst of calls reads the database once.
#
# What may not be served stale: a revoked token, a disabled or deleted user, a changed role.
# - In the process that made the change: every such change marks its session (`auth_changed`);
#   when that session commits, the cache is emptied before the call that made the change answers.
# - In every other process (API replicas, a CLI command against the same database): the commit
#   is announced on Redis (AUTH_CHANGED_CHANNEL) and each API process empties its cache when it
#   hears it (`listen_for_changes`), within milliseconds. If Redis is unreachable, or the
#   listener is reconnecting, an entry is still trusted for at most PRINCIPAL_TTL seconds after
#   it was read from the database: that is the bound on staleness.
# Expiry is checked on every call against the expiry time read with the entry; the last-used
# time is still written at most once a minute (the UPDATE is conditional, so several replicas
# together do not write it more often).

PRINCIPAL_TTL = 5.0
PRINCIPAL_CACHE_SIZE = 10_000
AUTH_CHANGED_CHANNEL = key("auth-changed")
_CHANGED = "slipway_auth_changed"


@dataclass(frozen=True)
class _Remembered:
    principal: Principal
    expires_at: datetime | None
    last_used_at: datetime | None
    valid_until: float  # time.monotonic()


class _PrincipalCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, _Remembered] = {}
        # Bumped by every invalidation: a lookup that read the database before an invalidation
        # must not put what it read back after it.
        self.generation = 0

    def get(self, token_hash: str) -> _Remembered | None:
        entry = self._entries.get(token_hash)
        if entry is not None and entry.valid_until <= time.monotonic():
            with self._lock:
                self._entries.pop(token_hash, None)
            return None
        return entry

    def put(self, token_hash: str, entry: _Remembered, generation: int) -> None:
        with self._lock:
            if generation != self.generation:
                return
            if len(self._entries) >= PRINCIPAL_CACHE_SIZE:
                now = time.monotonic()
                self._entries = {k: v for k, v in self._entries.items() if v.valid_until > now}
                if len(self._entries) >= PRINCIPAL_CACHE_SIZE:
                    self._entries.clear()
            self._entries[token_hash] = entry

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries = {}


_principals = _PrincipalCache()


def remembered_principal(token: str) -> Principal | None:
    """The principal of a token authenticated less than PRINCIPAL_TTL seconds ago, without a
    database read; None when the database must be asked (unknown, stale, or its last-used time is
    due). Raises AuthError for a remembered token that has expired since."""
    entry = _principals.get(hash_token(token))
    if entry is None:
        return None
    now = utcnow()
    _check_expiry(entry.expires_at, now)
    if entry.last_used_at is None or now - entry.last_used_at >= LAST_USED_EVERY:
        return None
    return entry.principal


def auth_changed(session: Session) -> None:
    """Mark a change to users or tokens: when `session` commits, every process forgets the
    principals it remembers (`forget_principals`)."""
    session.info[_CHANGED] = True


def forget_principals(*, announce: bool = True) -> None:
    """Forget every remembered principal here and (with `announce`) in every API process."""
    _principals.clear()
    if not announce:
        return
    try:
        get_redis(get_settings()).publish(AUTH_CHANGED_CHANNEL, "1")
    except redis.RedisError as exc:
        log.warning(
            "could not announce an auth change on Redis (%s); other API processes trust what they "
            "remember for up to %g s",
            exc,
            PRINCIPAL_TTL,
        )


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        forget_principals()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_CHANGED, None)


async def listen_for_changes(settings: Settings) -> None:
    """Run in each API process: forget remembered principals whenever another process announces
    an auth change, and whenever the subscription (re)starts (announcements may have been
    missed meanwhile). Runs until cancelled."""
    while True:
        client = get_async_redis(settings)
        try:
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            await pubsub.subscribe(AUTH_CHANGED_CHANNEL)
            _principals.clear()
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    _principals.clear()
        except redis.RedisError:
            _principals.clear()
        finally:
            await client.aclose()
        await asyncio.sleep(1.0)

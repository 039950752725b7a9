"""Who is calling: the principal behind a bearer token, read from the database and remembered for
a few seconds, and forgotten in every API process when users or tokens change."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
from sqlalchemy import event, or_, select, update
from sqlalchemy.orm import Session

from slipway.auth.models import ApiToken, Role, TokenKind, User
from slipway.core.config import Settings, get_settings
from slipway.core.db import utcnow
from slipway.core.errors import AuthError
from slipway.core.redis import get_async_redis, get_redis, key
from slipway.core.security import hash_token

log = logging.getLogger(__name__)

LAST_USED_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user, their role, and the token they used."""

    user_id: int
    name: str
    role: Role
    token_id: int
    token_kind: TokenKind


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

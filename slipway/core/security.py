"""Password hashing (argon2) and bearer tokens (random, stored as SHA-256)."""

from __future__ import annotations

import hashlib
import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verifying against this keeps a login for an unknown user as slow as one for a known user.

    Made on first use: hashing at import would cost every CLI command and process start ~0.15 s.
    """
    return _hasher.hash("slipway-dummy-password")


def warm_up() -> None:
    """Make the dummy hash now, so the first login of a process is not slower than the rest."""
    _dummy_hash()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    try:
        is_match = _hasher.verify(password_hash or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return is_match and password_hash is not None


def new_token(prefix: str) -> str:
    """A bearer token; the prefix lets secret scanners recognise leaked slipway tokens."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def random_password(length: int = 20) -> str:
    return secrets.token_urlsafe(length)[:length]

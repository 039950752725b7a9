"""Fixtures shared by the API, auth and audit tests (each directory's conftest imports them)."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from slipway.auth import service as auth_service


@pytest.fixture
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Users created in this test get argon2 hashes of the lowest cost: still real argon2,
    verified the same way, in a millisecond instead of a tenth of a second. For tests that
    create many users or log in often; request it before `tokens`."""
    hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    monkeypatch.setattr(auth_service, "hash_password", hasher.hash)

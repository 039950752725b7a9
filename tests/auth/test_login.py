"""Logging in: the OAuth2 password form, one answer for every wrong credential, and the lockout
after repeated failures."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from slipway.auth.service import PER_ADDRESS_FACTOR
from slipway.core.config import get_settings
from slipway.core.db import utcnow
from tests.api.helpers import assert_error
from tests.conftest import bearer, make_user

PASSWORD = "correct-horse-1"


def login(client, username: str, password: str):
    return client.post("/api/v1/auth/token", data={"username": username, "password": password})


def test_login_returns_a_bearer_token_that_expires(settings, client):
    make_user(settings, "alice", "viewer", PASSWORD)
    response = login(client, "alice", PASSWORD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    ttl = settings.token_ttl_minutes * 60
    assert ttl - 5 <= body["expires_in"] <= ttl
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert abs((expires_at - utcnow()).total_seconds() - ttl) < 5
    me = client.get("/api/v1/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200 and me.json()["name"] == "alice"
    assert me.json()["last_login_at"] is not None


def test_wrong_password_unknown_user_and_disabled_user_get_the_same_401(settings, client):
    make_user(settings, "alice", "viewer", PASSWORD)
    make_user(settings, "bob", "viewer", PASSWORD)
    admin = make_user(settings, "root", "admin")
    disabled = client.patch("/api/v1/users/bob", json={"is_active": False}, headers=bearer(admin))
    assert disabled.status_code == 200
    errors = [
        assert_error(response, 401, "invalid_credentials")
        for response in (
            login(client, "alice", "wrong-password"),
            login(client, "nobody", PASSWORD),
            login(client, "bob", PASSWORD),
        )
    ]
    # Nothing tells an unknown or disabled user from a wrong password.
    assert len({(error["message"], repr(error["details"])) for error in errors}) == 1


def test_a_missing_form_field_names_it(client):
    response = client.post("/api/v1/auth/token", data={"username": "alice"})
    error = assert_error(response, 422, "invalid_input")
    assert error["details"]["field"] == "password"


def test_repeated_failures_lock_the_login_even_with_the_right_password(
    cheap_hashes, settings, client
):
    make_user(settings, "alice", "viewer", PASSWORD)
    make_user(settings, "carol", "viewer", PASSWORD)
    assert settings.login_max_failures == 5
    for _ in range(5):
        assert_error(login(client, "alice", "wrong-password"), 401, "invalid_credentials")
    response = login(client, "alice", PASSWORD)
    error = assert_error(response, 429, "rate_limited")
    retry_after = int(response.headers["retry-after"])
    assert 0 < retry_after <= settings.login_lockout_seconds
    assert error["details"]["retry_after"] == retry_after
    assert "try again" in error["message"]
    # Counted per user name and address: another user at the same address still gets in.
    assert login(client, "carol", PASSWORD).status_code == 200


def test_a_successful_login_clears_the_failure_count(cheap_hashes, settings, client):
    make_user(settings, "alice", "viewer", PASSWORD)
    for _ in range(4):
        assert_error(login(client, "alice", "wrong-password"), 401, "invalid_credentials")
    assert login(client, "alice", PASSWORD).status_code == 200
    for _ in range(4):
        assert_error(login(client, "alice", "wrong-password"), 401, "invalid_credentials")
    assert login(client, "alice", PASSWORD).status_code == 200


def test_unknown_user_names_are_locked_out_too(cheap_hashes, settings, client):
    for _ in range(settings.login_max_failures):
        assert_error(login(client, "nobody", "guess"), 401, "invalid_credentials")
    assert_error(login(client, "nobody", "guess"), 429, "rate_limited")


@pytest.fixture
def strict_login(env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two failures lock the login for one second. Requested before `settings`, which reads it."""
    monkeypatch.setenv("SLIPWAY_LOGIN_MAX_FAILURES", "2")
    monkeypatch.setenv("SLIPWAY_LOGIN_LOCKOUT_SECONDS", "1")
    get_settings.cache_clear()


def test_the_lockout_ends_after_the_configured_time(cheap_hashes, strict_login, settings, client):
    assert (settings.login_max_failures, settings.login_lockout_seconds) == (2, 1)
    make_user(settings, "alice", "viewer", PASSWORD)
    for _ in range(2):
        assert_error(login(client, "alice", "wrong-password"), 401, "invalid_credentials")
    locked = login(client, "alice", PASSWORD)
    assert_error(locked, 429, "rate_limited")
    assert locked.headers["retry-after"] == "1"
    time.sleep(1.2)
    assert login(client, "alice", PASSWORD).status_code == 200


def test_guessing_across_many_user_names_from_one_address_is_throttled(
    cheap_hashes, settings, client
):
    make_user(settings, "alice", "viewer", PASSWORD)
    limit = settings.login_max_failures * PER_ADDRESS_FACTOR
    for index in range(limit):
        # Each name stays under its own limit; the address as a whole does not.
        name = f"guess{index // (settings.login_max_failures - 1)}"
        assert_error(login(client, name, "guess"), 401, "invalid_credentials")
    response = login(client, "alice", PASSWORD)
    error = assert_error(response, 429, "rate_limited")
    assert "from testclient" in error["message"]
    assert int(response.headers["retry-after"]) > 0

"""Bearer tokens: what is wrong with a refused one, and API tokens for CI (shown once, stored as
SHA-256, revocable, last use recorded at most once a minute)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import update

from slipway.auth import principals
from slipway.auth.models import ApiToken
from slipway.core.db import session_scope, utcnow
from tests.api.helpers import assert_error, assert_invalid, database_text, token_row
from tests.conftest import bearer, make_user

pytestmark = pytest.mark.usefixtures("cheap_hashes")


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def set_token(settings, token: str, **values) -> None:
    """Change a token's row behind the API's back, standing for time passing (an expiry or a
    last use moved into the past): time passing would also have aged the API's remembered
    principal out, so this commit makes it forget, as every change to tokens does."""
    with session_scope(settings) as session:
        session.execute(
            update(ApiToken).where(ApiToken.token_hash == sha256(token)).values(**values)
        )
        principals.auth_changed(session)


def assert_refused(response, code: str) -> None:
    assert_error(response, 401, code)
    assert response.headers["www-authenticate"] == "Bearer"


def test_an_expired_session_token_is_refused_as_expired(settings, client):
    token = make_user(settings, "alice", "viewer")
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200
    set_token(settings, token, expires_at=utcnow() - timedelta(seconds=1))
    assert_refused(client.get("/api/v1/me", headers=bearer(token)), "token_expired")


def test_garbage_and_missing_credentials_are_refused(client):
    assert_refused(client.get("/api/v1/me", headers=bearer("not-a-token")), "invalid_token")
    assert_refused(client.get("/api/v1/me"), "unauthenticated")
    basic = {"Authorization": "Basic YWRtaW46YWRtaW4="}
    assert_refused(client.get("/api/v1/me", headers=basic), "unauthenticated")


def test_a_disabled_users_api_token_is_refused(settings, client, tokens):
    created = client.post(
        "/api/v1/tokens", json={"name": "ci", "user": "viewer"}, headers=bearer(tokens["admin"])
    ).json()
    patched = client.patch(
        "/api/v1/users/viewer", json={"is_active": False}, headers=bearer(tokens["admin"])
    )
    assert patched.status_code == 200
    assert_refused(client.get("/api/v1/me", headers=bearer(created["token"])), "user_disabled")


def test_an_api_token_is_shown_once_stored_as_sha256_and_revocable(settings, client, tokens):
    admin = bearer(tokens["admin"])
    response = client.post("/api/v1/tokens", json={"name": "ci-deploy"}, headers=admin)
    assert response.status_code == 201, response.text
    created = response.json()
    token = created["token"]
    assert token.startswith("slw_") and len(token) > 40
    assert created["name"] == "ci-deploy" and created["user"] == "admin"
    assert created["revoked_at"] is None and created["expires_at"] is None

    # Only the hash is stored; the token itself is nowhere in the database.
    row = token_row(settings, sha256(token))
    assert row.id == created["id"] and row.kind == "api"
    assert token not in database_text(settings)

    listed = client.get("/api/v1/tokens", headers=admin).json()["items"]
    assert [item["id"] for item in listed] == [created["id"]]
    assert "token" not in listed[0]
    assert token not in client.get("/api/v1/tokens", headers=admin).text

    me = client.get("/api/v1/me", headers=bearer(token))
    assert me.status_code == 200 and me.json()["name"] == "admin"

    revoked = client.delete(f"/api/v1/tokens/{created['id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert "token" not in revoked.json()
    assert client.get("/api/v1/tokens", headers=admin).json()["items"][0]["revoked_at"]
    assert_refused(client.get("/api/v1/me", headers=bearer(token)), "token_revoked")


def test_an_api_token_acts_with_its_owners_role(client, tokens):
    admin = bearer(tokens["admin"])
    token = client.post(
        "/api/v1/tokens", json={"name": "ci", "user": "operator"}, headers=admin
    ).json()["token"]
    assert client.get("/api/v1/me", headers=bearer(token)).json()["name"] == "operator"
    assert_error(client.get("/api/v1/users", headers=bearer(token)), 403, "forbidden")
    listed = client.get("/api/v1/tokens", params={"user": "operator"}, headers=admin).json()
    assert [item["user"] for item in listed["items"]] == ["operator"]


def test_an_api_token_may_expire(settings, client, tokens):
    created = client.post(
        "/api/v1/tokens", json={"name": "ci", "expires_in_days": 7}, headers=bearer(tokens["admin"])
    ).json()
    assert created["expires_at"] is not None
    set_token(settings, created["token"], expires_at=utcnow() - timedelta(seconds=1))
    assert_refused(client.get("/api/v1/me", headers=bearer(created["token"])), "token_expired")


def test_token_requests_are_checked(settings, client, tokens):
    admin = bearer(tokens["admin"])
    assert client.post("/api/v1/tokens", json={"name": "ci"}, headers=admin).status_code == 201
    duplicate = client.post("/api/v1/tokens", json={"name": "ci"}, headers=admin)
    assert_error(duplicate, 409, "token_exists")
    assert_invalid(client.post("/api/v1/tokens", json={"name": "CI Token"}, headers=admin), "name")
    assert_invalid(
        client.post("/api/v1/tokens", json={"name": "ci2", "scope": "all"}, headers=admin), "scope"
    )
    nobody = client.post("/api/v1/tokens", json={"name": "ci", "user": "nobody"}, headers=admin)
    assert_error(nobody, 404, "user_not_found")
    for token_id in (999999, 0, -1, 2**31, 2**63, 2**70):
        response = client.delete(f"/api/v1/tokens/{token_id}", headers=admin)
        assert_error(response, 404, "token_not_found")
    # A login session is not an API token: /tokens neither lists nor revokes it.
    session_id = token_row(settings, sha256(tokens["viewer"])).id
    assert session_id not in [
        item["id"] for item in client.get("/api/v1/tokens", headers=admin).json()["items"]
    ]
    assert_error(
        client.delete(f"/api/v1/tokens/{session_id}", headers=admin), 404, "token_not_found"
    )
    assert client.get("/api/v1/me", headers=bearer(tokens["viewer"])).status_code == 200


@pytest.mark.parametrize("kind", ["session", "api"])
def test_last_used_is_recorded_at_most_once_a_minute(settings, client, tokens, kind):
    if kind == "api":
        token = client.post(
            "/api/v1/tokens", json={"name": "ci"}, headers=bearer(tokens["admin"])
        ).json()["token"]
    else:
        token = make_user(settings, "alice", "viewer")
    assert token_row(settings, sha256(token)).last_used_at is None

    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200
    first = token_row(settings, sha256(token)).last_used_at
    assert first is not None and utcnow() - first < timedelta(seconds=10)

    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200
    assert token_row(settings, sha256(token)).last_used_at == first

    backdated = utcnow() - timedelta(minutes=1, seconds=5)
    set_token(settings, token, last_used_at=backdated)
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200
    refreshed = token_row(settings, sha256(token)).last_used_at
    assert refreshed > backdated + timedelta(minutes=1)

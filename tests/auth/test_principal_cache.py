"""The principal cache: a burst of calls with one token reads the database once, and nothing it
remembers outlives a revoke, a disabled user or a changed role (at once in the process that made
the change, on hearing it over Redis elsewhere, and at the latest PRINCIPAL_TTL seconds after it
was read when nothing was heard)."""

from __future__ import annotations

import subprocess
import time
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from slipway.auth import principals
from slipway.auth.models import ApiToken
from slipway.core.db import session_scope, utcnow
from slipway.core.security import hash_token
from tests.api.helpers import assert_error, token_row
from tests.conftest import SLIPWAY, Processes, bearer, make_user, wait_for

pytestmark = pytest.mark.usefixtures("cheap_hashes")


def me(client, token: str):
    return client.get("/api/v1/me", headers=bearer(token))


def count_token_reads(monkeypatch) -> list[str]:
    reads: list[str] = []
    authenticate = principals.authenticate

    def counting(session, token):
        reads.append(token)
        return authenticate(session, token)

    monkeypatch.setattr(principals, "authenticate", counting)
    return reads


def test_a_burst_of_calls_reads_the_token_once(client, tokens, monkeypatch):
    reads = count_token_reads(monkeypatch)
    for _ in range(5):
        assert me(client, tokens["viewer"]).status_code == 200
    assert reads == [tokens["viewer"]]


def test_a_revoked_api_token_is_refused_at_once(client, tokens):
    admin = bearer(tokens["admin"])
    created = client.post("/api/v1/tokens", json={"name": "ci"}, headers=admin).json()
    assert me(client, created["token"]).status_code == 200  # remembered now
    assert client.delete(f"/api/v1/tokens/{created['id']}", headers=admin).status_code == 200
    assert_error(me(client, created["token"]), 401, "token_revoked")


@pytest.mark.parametrize("change", [{"is_active": False}, {"role": "operator"}])
def test_a_changed_user_is_not_served_from_memory(client, tokens, change):
    admin = bearer(tokens["admin"])
    api_token = client.post(
        "/api/v1/tokens", json={"name": "ci", "user": "viewer"}, headers=admin
    ).json()["token"]
    assert me(client, tokens["viewer"]).json()["role"] == "viewer"
    assert me(client, api_token).json()["role"] == "viewer"
    assert client.patch("/api/v1/users/viewer", json=change, headers=admin).status_code == 200
    # The login session was revoked with the change; the API token follows its user at once.
    assert_error(me(client, tokens["viewer"]), 401, "token_revoked")
    after = me(client, api_token)
    if change.get("is_active") is False:
        assert_error(after, 401, "user_disabled")
    else:
        assert after.json()["role"] == "operator"


def test_a_deleted_user_is_not_served_from_memory(client, tokens):
    admin = bearer(tokens["admin"])
    assert me(client, tokens["viewer"]).status_code == 200
    assert client.delete("/api/v1/users/viewer", headers=admin).status_code == 204
    assert_error(me(client, tokens["viewer"]), 401, "invalid_token")


def test_a_token_that_expires_while_remembered_is_refused(settings, client):
    token = make_user(settings, "alice", "viewer")
    with session_scope(settings) as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.token_hash == hash_token(token))
            .values(expires_at=utcnow() + timedelta(seconds=1))
        )
        principals.auth_changed(session)
    assert me(client, token).status_code == 200  # remembered, with its expiry
    time.sleep(1.1)
    assert_error(me(client, token), 401, "token_expired")


def test_a_change_nobody_announced_is_served_at_most_ttl_seconds(
    settings, client, tokens, monkeypatch
):
    """The bound on staleness when an announcement is lost (Redis down): an entry is trusted
    only PRINCIPAL_TTL seconds after it was read."""
    monkeypatch.setattr(principals, "PRINCIPAL_TTL", 0.5)
    assert me(client, tokens["viewer"]).status_code == 200
    with session_scope(settings) as session:  # behind everyone's back: no announcement
        session.execute(
            update(ApiToken)
            .where(ApiToken.token_hash == hash_token(tokens["viewer"]))
            .values(revoked_at=utcnow())
        )
    assert me(client, tokens["viewer"]).status_code == 200  # still remembered
    time.sleep(0.6)
    assert_error(me(client, tokens["viewer"]), 401, "token_revoked")


def test_a_revoke_by_another_process_reaches_a_running_api(settings, env, processes: Processes):
    """`slipway tokens revoke` runs in a process of its own; the API hears it over Redis."""
    make_user(settings, "owner", "operator")
    token = subprocess.run(
        [SLIPWAY, "tokens", "create", "--user", "owner", "--name", "ci"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    url = processes.api()
    assert httpx.get(f"{url}/api/v1/me", headers=bearer(token), timeout=10).status_code == 200
    token_id = token_row(settings, hash_token(token)).id
    # Remembered by the API for PRINCIPAL_TTL seconds from now, unless it hears otherwise.
    remembered_until = time.monotonic() + principals.PRINCIPAL_TTL
    subprocess.run(
        [SLIPWAY, "tokens", "revoke", str(token_id)], env=env, capture_output=True, check=True
    )
    wait_for(
        lambda: httpx.get(f"{url}/api/v1/me", headers=bearer(token), timeout=10).status_code == 401,
        timeout=10,
        what="the API to refuse the revoked token",
    )
    assert time.monotonic() < remembered_until, "refused only once the cache entry aged out"


def test_last_used_is_written_at_most_once_a_minute_across_processes(settings, client, tokens):
    """Two replicas that both remember an old last-used time write it once between them."""
    token = tokens["viewer"]
    assert me(client, token).status_code == 200
    first = token_row(settings, hash_token(token)).last_used_at
    # Another process writing now sees it was written less than a minute ago and writes nothing.
    with session_scope(settings) as session:
        principals._touch(session, token_row(settings, hash_token(token)).id, utcnow())
    assert token_row(settings, hash_token(token)).last_used_at == first

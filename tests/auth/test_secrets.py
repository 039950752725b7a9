"""No answer of the API holds a password hash, a token hash or an API token after its creation."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from slipway.auth.models import ApiToken, User
from slipway.core.db import session_factory
from tests.api.helpers import keys_anywhere
from tests.conftest import bearer

pytestmark = pytest.mark.usefixtures("cheap_hashes")

SECRET_KEYS = {"password", "password_hash", "token_hash", "hash"}


def test_no_answer_holds_a_password_or_token_hash(settings, client, tokens):
    admin = bearer(tokens["admin"])
    created_user = client.post(
        "/api/v1/users",
        json={"name": "dave", "password": "long-enough-1", "role": "viewer"},
        headers=admin,
    )
    created_token = client.post("/api/v1/tokens", json={"name": "ci"}, headers=admin)
    token = created_token.json()["token"]
    answers = [
        created_user,
        client.patch("/api/v1/users/dave", json={"password": "another-one-2"}, headers=admin),
        client.get("/api/v1/users", headers=admin),
        client.get("/api/v1/users/dave", headers=admin),
        client.get("/api/v1/me", headers=admin),
        client.get("/api/v1/me", headers=bearer(token)),
        client.get("/api/v1/tokens", headers=admin),
        client.delete(f"/api/v1/tokens/{created_token.json()['id']}", headers=admin),
        client.get("/api/v1/audit", headers=admin),
    ]
    with session_factory(settings)() as session:
        hashes = [*session.scalars(select(User.password_hash))]
        hashes += [*session.scalars(select(ApiToken.token_hash))]
    assert len(hashes) == 4 + 3 + 1  # users; three sessions and an API token
    for response in answers:
        assert response.status_code < 300, response.text
        assert not keys_anywhere(response.json()) & SECRET_KEYS, response.json()
        for secret in [*hashes, token, "long-enough-1", "another-one-2", *tokens.values()]:
            assert secret not in response.text
    # The token is in its creation answer, and only there.
    assert created_token.json()["token"] == token
    assert "token_hash" not in created_token.json()

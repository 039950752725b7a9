"""Managing users through the API: names and passwords checked, duplicates refused, an admin
cannot delete itself, and changed rights end the user's sessions."""

from __future__ import annotations

import pytest

from tests.api.helpers import assert_error, assert_invalid
from tests.conftest import bearer

pytestmark = pytest.mark.usefixtures("cheap_hashes")

NEW = {"name": "dave", "password": "long-enough-1", "role": "operator"}


def login(client, name: str, password: str):
    return client.post("/api/v1/auth/token", data={"username": name, "password": password})


def test_an_admin_creates_reads_updates_and_deletes_a_user(client, tokens):
    admin = bearer(tokens["admin"])
    created = client.post("/api/v1/users", json=NEW, headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "dave" and created.json()["role"] == "operator"
    assert created.json()["is_active"] is True and created.json()["last_login_at"] is None
    assert "dave" in [
        user["name"] for user in client.get("/api/v1/users", headers=admin).json()["items"]
    ]

    token = login(client, "dave", NEW["password"]).json()["access_token"]
    assert client.get("/api/v1/me", headers=bearer(token)).json()["role"] == "operator"
    assert client.get("/api/v1/users/dave", headers=admin).json()["last_login_at"] is not None

    patched = client.patch("/api/v1/users/dave", json={"role": "viewer"}, headers=admin)
    assert patched.status_code == 200 and patched.json()["role"] == "viewer"
    token = login(client, "dave", NEW["password"]).json()["access_token"]
    assert_error(client.post("/api/v1/system/check", headers=bearer(token)), 403, "forbidden")

    deleted = client.delete("/api/v1/users/dave", headers=admin)
    assert deleted.status_code == 204 and deleted.content == b""
    assert_error(client.get("/api/v1/users/dave", headers=admin), 404, "user_not_found")
    # Its tokens went with it.
    assert_error(client.get("/api/v1/me", headers=bearer(token)), 401, "invalid_token")
    assert_error(login(client, "dave", NEW["password"]), 401, "invalid_credentials")


def test_a_taken_name_is_refused(client, tokens):
    admin = bearer(tokens["admin"])
    assert client.post("/api/v1/users", json=NEW, headers=admin).status_code == 201
    again = client.post("/api/v1/users", json={**NEW, "role": "admin"}, headers=admin)
    assert "dave" in assert_error(again, 409, "user_exists")["message"]
    taken = client.post("/api/v1/users", json={**NEW, "name": "viewer"}, headers=admin)
    assert_error(taken, 409, "user_exists")
    assert client.get("/api/v1/users/dave", headers=admin).json()["role"] == "operator"


def test_a_bad_user_name_is_refused_naming_the_field(client, tokens):
    admin = bearer(tokens["admin"])
    for name in ["Dave", "d" * 65, "two words", "-dave", "dave-", "", "dave/x", "é"]:
        response = client.post("/api/v1/users", json={**NEW, "name": name}, headers=admin)
        assert response.status_code == 422, (name, response.text)
        assert_invalid(response, "name")
    names = [u["name"] for u in client.get("/api/v1/users", headers=admin).json()["items"]]
    assert names == ["admin", "operator", "viewer"]


def test_a_name_of_64_characters_is_accepted(client, tokens):
    name = "d" * 64
    response = client.post(
        "/api/v1/users", json={**NEW, "name": name}, headers=bearer(tokens["admin"])
    )
    assert response.status_code == 201 and response.json()["name"] == name


def test_bad_passwords_roles_and_fields_are_refused_naming_the_field(client, tokens):
    admin = bearer(tokens["admin"])
    for body, field in [
        ({**NEW, "password": "short"}, "password"),
        ({**NEW, "password": ""}, "password"),
        ({**NEW, "role": "superuser"}, "role"),
        ({**NEW, "is_admin": True}, "is_admin"),
        ({"name": "dave", "role": "viewer"}, "password"),
    ]:
        assert_invalid(client.post("/api/v1/users", json=body, headers=admin), field)
    for body, field in [
        ({"password": "short"}, "password"),
        ({"role": "root"}, "role"),
        ({"name": "renamed"}, "name"),
        ({"is_active": "perhaps"}, "is_active"),
    ]:
        assert_invalid(client.patch("/api/v1/users/viewer", json=body, headers=admin), field)
    assert_error(
        client.patch("/api/v1/users/nobody", json={}, headers=admin), 404, "user_not_found"
    )
    assert_error(client.delete("/api/v1/users/nobody", headers=admin), 404, "user_not_found")
    # Nothing was changed by the refused requests: the viewer still logs in as before.
    assert client.get("/api/v1/me", headers=bearer(tokens["viewer"])).json()["role"] == "viewer"


def test_an_admin_cannot_delete_itself(client, tokens):
    admin = bearer(tokens["admin"])
    error = assert_error(client.delete("/api/v1/users/admin", headers=admin), 409, "self_delete")
    assert "yourself" in error["message"]
    assert client.get("/api/v1/me", headers=admin).json()["name"] == "admin"


@pytest.mark.parametrize(
    "change", [{"password": "a-new-password"}, {"role": "operator"}, {"is_active": False}]
)
def test_changing_a_users_rights_ends_their_sessions(client, tokens, change):
    old = bearer(tokens["viewer"])
    assert client.get("/api/v1/me", headers=old).status_code == 200
    patched = client.patch("/api/v1/users/viewer", json=change, headers=bearer(tokens["admin"]))
    assert patched.status_code == 200, patched.text
    assert_error(client.get("/api/v1/me", headers=old), 401, "token_revoked")
    # Other users' sessions are untouched.
    assert client.get("/api/v1/me", headers=bearer(tokens["operator"])).status_code == 200
    password = change.get("password", "correct-horse-1")
    relogin = login(client, "viewer", password)
    if change.get("is_active") is False:
        assert_error(relogin, 401, "invalid_credentials")
    else:
        fresh = relogin.json()["access_token"]
        me = client.get("/api/v1/me", headers=bearer(fresh)).json()
        assert me["role"] == change.get("role", "viewer")
    if "password" in change:
        assert_error(login(client, "viewer", "correct-horse-1"), 401, "invalid_credentials")


def test_a_patch_that_changes_nothing_keeps_the_session(client, tokens):
    same = client.patch(
        "/api/v1/users/viewer", json={"role": "viewer"}, headers=bearer(tokens["admin"])
    )
    assert same.status_code == 200
    assert client.get("/api/v1/me", headers=bearer(tokens["viewer"])).status_code == 200


def test_the_last_active_admin_cannot_be_demoted_disabled_or_deleted(client, tokens, settings):
    from slipway.auth import service as auth_service
    from slipway.core.db import session_scope

    admin = bearer(tokens["admin"])
    for change in ({"role": "operator"}, {"is_active": False}):
        error = assert_error(
            client.patch("/api/v1/users/admin", json=change, headers=admin), 409, "last_admin"
        )
        assert "make another user admin first" in error["message"]
    with session_scope(settings) as session:
        auth_service.create_user(session, name="second", password="long-enough-2", role="admin")
        auth_service.update_user(session, name="second", is_active=False)
        # A disabled admin does not count: deleting the only active one is refused too.
        with pytest.raises(Exception) as caught:
            auth_service.delete_user(session, "admin", acting_user="second")
        assert getattr(caught.value, "code", None) == "last_admin"
    assert client.get("/api/v1/me", headers=admin).json()["role"] == "admin"
    assert (
        client.patch("/api/v1/users/second", json={"is_active": True}, headers=admin).status_code
        == 200
    )
    demoted = client.patch("/api/v1/users/admin", json={"role": "operator"}, headers=admin)
    assert demoted.status_code == 200 and demoted.json()["role"] == "operator"

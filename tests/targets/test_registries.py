"""Registries through the API against real registries: a login on save, revisions, the test
endpoint, and no password anywhere it could leak."""

from __future__ import annotations

import logging

from slipway.core.db import session_scope
from slipway.targets import registries
from tests.api.helpers import assert_error, audit_rows
from tests.conftest import free_port
from tests.targets.registries_support import (
    REGISTRIES,
    SQLITE_ONLY,
    add_registry,
    history,
    ok_json,
    registry_body,
    registry_state,
)

# --- saving logs in -------------------------------------------------------------------------------


def test_a_registry_is_logged_in_to_and_saved_without_showing_its_password(
    registry, client, auth, settings, caplog
):
    caplog.set_level(logging.DEBUG)

    saved = add_registry(client, auth["admin"], registry, description="the test registry")

    assert saved["name"] == "local" and saved["url"] == registry.address
    assert saved["server"] == registry.address
    assert saved["username"] == "robot$slipway"
    assert saved["has_password"] is True and "password" not in saved
    assert (saved["base_url"], saved["auth_scheme"]) == (registry.url, "basic")
    assert saved["insecure"] is False and saved["dns_alias"] is None
    assert saved["revision"] == 1
    assert saved["last_checked_at"] is not None and saved["last_error"] is None
    shown = client.get(f"{REGISTRIES}/local", headers=auth["viewer"])
    listed = client.get(REGISTRIES, headers=auth["viewer"])
    revisions = client.get(f"{REGISTRIES}/local/revisions", headers=auth["viewer"])
    assert ok_json(shown) == saved and ok_json(listed)["items"] == [saved]
    for response in (shown, listed, revisions):
        assert registry.password not in response.text
    assert history(client, auth["viewer"], "local") == [(1, ["created"])]
    state = registry_state(settings)
    assert [row.username for row in state["registries"]] == ["robot$slipway"]
    # Encrypted at rest: the vault holds it, under the registry's secret id.
    assert registry.password not in repr(state)
    with session_scope(settings) as session:
        row = registries.get_registry_or_raise(session, "local")
        assert registries.reveal_password(session, settings, row) == registry.password
    assert registry.password not in caplog.text
    assert [entry.action for entry in audit_rows(settings)][-1].startswith("POST")


@SQLITE_ONLY
def test_a_wrong_password_is_refused_naming_the_password_and_nothing_is_saved(
    registry, client, auth, settings, caplog
):
    caplog.set_level(logging.DEBUG)
    before = registry_state(settings)

    response = client.post(
        REGISTRIES,
        json=registry_body(registry, password="wrong-password-123"),
        headers=auth["admin"],
    )

    error = assert_error(response, 422, "registry_auth_failed")
    assert error["details"]["field"] == "password"
    assert error["details"]["errors"][0]["field"] == "password"
    assert "robot$slipway" in error["message"]
    assert "wrong-password-123" not in response.text
    assert "wrong-password-123" not in caplog.text
    assert registry_state(settings) == before


@SQLITE_ONLY
def test_a_registry_that_does_not_answer_is_refused_with_502_and_nothing_is_saved(
    client, auth, settings
):
    before = registry_state(settings)
    body = {"name": "away", "url": f"127.0.0.1:{free_port()}", "username": "u", "password": "p"}

    response = client.post(REGISTRIES, json=body, headers=auth["admin"])

    error = assert_error(response, 502, "registry_unreachable")
    assert "https://" in error["message"] and "http://" in error["message"]  # both were tried
    assert registry_state(settings) == before


@SQLITE_ONLY
def test_a_bearer_registry_is_saved_after_a_token_login(token_registry, client, auth):
    token_registry.tokens.requests.clear()

    saved = add_registry(client, auth["admin"], token_registry, "harbor")

    assert (saved["base_url"], saved["auth_scheme"]) == (token_registry.url, "bearer")
    assert token_registry.tokens.requests[0]["user"] == "robot$slipway"


@SQLITE_ONLY
def test_a_bearer_registry_refuses_a_wrong_password_naming_it(token_registry, client, auth):
    response = client.post(
        REGISTRIES,
        json=registry_body(token_registry, "harbor", password="nope-nope-1"),
        headers=auth["admin"],
    )

    assert assert_error(response, 422, "registry_auth_failed")["details"]["field"] == "password"


# --- changing -------------------------------------------------------------------------------------


def test_changes_are_revisions_and_the_newest_wins(registry, client, auth, settings):
    add_registry(client, auth["admin"], registry)
    registry.add_user("robot$second", "second-password-1")

    renamed = ok_json(
        client.patch(
            f"{REGISTRIES}/local",
            json={"username": "robot$second", "password": "second-password-1"},
            headers=auth["admin"],
        )
    )
    aliased = ok_json(
        client.patch(
            f"{REGISTRIES}/local",
            json={"dns_alias": "Registry.Example.com", "description": "aliased"},
            headers=auth["admin"],
        )
    )
    unchanged = ok_json(
        client.patch(f"{REGISTRIES}/local", json={"description": "aliased"}, headers=auth["admin"])
    )
    cleared = ok_json(
        client.patch(f"{REGISTRIES}/local", json={"dns_alias": None}, headers=auth["admin"])
    )

    assert renamed["revision"] == 2 and renamed["username"] == "robot$second"
    assert aliased["revision"] == 3 and aliased["dns_alias"] == "registry.example.com"
    assert unchanged["revision"] == 3
    assert cleared["revision"] == 4 and cleared["dns_alias"] is None
    assert history(client, auth["viewer"], "local") == [
        (4, ["dns_alias"]),
        (3, ["dns_alias", "description"]),
        (2, ["username", "password"]),
        (1, ["created"]),
    ]
    revisions = ok_json(client.get(f"{REGISTRIES}/local/revisions", headers=auth["viewer"]))
    assert [item["username"] for item in revisions["items"]] == [
        "robot$second",
        "robot$second",
        "robot$second",
        "robot$slipway",
    ]
    assert all(item["actor"] == "admin" for item in revisions["items"])
    with session_scope(settings) as session:
        row = registries.get_registry_or_raise(session, "local")
        login = registries.registry_login(session, settings, row)
    assert (login.username, login.password) == ("robot$second", "second-password-1")


@SQLITE_ONLY
def test_a_refused_new_password_keeps_the_old_one(registry, client, auth, settings):
    add_registry(client, auth["admin"], registry)
    before = registry_state(settings)

    response = client.patch(
        f"{REGISTRIES}/local", json={"password": "not-it-at-all"}, headers=auth["admin"]
    )

    assert assert_error(response, 422, "registry_auth_failed")["details"]["field"] == "password"
    assert registry_state(settings) == before
    tested = ok_json(client.post(f"{REGISTRIES}/local/test", headers=auth["operator"]))
    assert tested["ok"] is True


@SQLITE_ONLY
def test_the_alias_and_description_change_without_asking_the_registry(registry, client, auth):
    add_registry(client, auth["admin"], registry)
    registry.stop()
    try:
        described = client.patch(
            f"{REGISTRIES}/local",
            json={"description": "down for maintenance", "dns_alias": "reg.example.com"},
            headers=auth["admin"],
        )
        moved = client.patch(f"{REGISTRIES}/local", json={"insecure": True}, headers=auth["admin"])
    finally:
        registry.start()

    assert ok_json(described)["revision"] == 2
    assert_error(moved, 502, "registry_unreachable")
    assert ok_json(client.get(f"{REGISTRIES}/local", headers=auth["viewer"]))["revision"] == 2


@SQLITE_ONLY
def test_delete_removes_the_registry_its_revisions_and_its_password(
    registry, client, auth, settings
):
    add_registry(client, auth["admin"], registry)
    baseline = len(registry_state(settings)["secrets"])

    response = client.delete(f"{REGISTRIES}/local", headers=auth["admin"])

    assert response.status_code == 204 and response.content == b""
    state = registry_state(settings)
    assert state["registries"] == state["revisions"] == []
    assert len(state["secrets"]) == baseline - 1
    assert_error(
        client.get(f"{REGISTRIES}/local", headers=auth["viewer"]), 404, "registry_not_found"
    )


@SQLITE_ONLY
def test_a_registry_in_use_is_not_deleted(registry, client, auth, settings):
    add_registry(client, auth["admin"], registry)

    def in_use(session, row):
        return [f"build of {row.name}"]

    registries.register_registry_usage_check(in_use)
    try:
        before = registry_state(settings)
        response = client.delete(f"{REGISTRIES}/local", headers=auth["admin"])
    finally:
        registries._usage_checks.remove(in_use)

    error = assert_error(response, 409, "registry_in_use")
    assert error["details"]["used_by"] == ["build of local"]
    assert registry_state(settings) == before


# --- testing --------------------------------------------------------------------------------------


@SQLITE_ONLY
def test_the_test_endpoint_logs_in_again_and_records_the_outcome(registry, client, auth):
    add_registry(client, auth["admin"], registry)
    registry.add_user("robot$rotating", "first-password-1")
    ok_json(
        client.patch(
            f"{REGISTRIES}/local",
            json={"username": "robot$rotating", "password": "first-password-1"},
            headers=auth["admin"],
        )
    )

    passed = ok_json(client.post(f"{REGISTRIES}/local/test", headers=auth["operator"]))
    registry.add_user("robot$rotating", "rotated-elsewhere-2")  # changed in the registry only
    try:
        failed = client.post(f"{REGISTRIES}/local/test", headers=auth["operator"])
        recorded = ok_json(client.get(f"{REGISTRIES}/local", headers=auth["viewer"]))
    finally:
        registry.add_user("robot$rotating", "first-password-1")
    again = ok_json(client.post(f"{REGISTRIES}/local/test", headers=auth["operator"]))
    healed = ok_json(client.get(f"{REGISTRIES}/local", headers=auth["viewer"]))

    assert passed["ok"] is True and passed["base_url"] == registry.url
    assert (passed["auth_scheme"], passed["api_version"]) == ("basic", "registry/2.0")
    assert_error(failed, 422, "registry_auth_failed")
    assert recorded["last_error"]["code"] == "registry_auth_failed"
    assert recorded["last_checked_at"] > passed["checked_at"]
    assert recorded["revision"] == 2  # a test is not a change
    assert again["ok"] is True and healed["last_error"] is None


@SQLITE_ONLY
def test_the_test_endpoint_reports_a_registry_that_went_down(registry, client, auth):
    add_registry(client, auth["admin"], registry)
    registry.stop()
    try:
        response = client.post(f"{REGISTRIES}/local/test", headers=auth["operator"])
    finally:
        registry.start()

    assert_error(response, 502, "registry_unreachable")
    shown = ok_json(client.get(f"{REGISTRIES}/local", headers=auth["viewer"]))
    assert shown["last_error"]["code"] == "registry_unreachable"
    assert shown["base_url"] == registry.url  # the last address that worked stays


@SQLITE_ONLY
def test_lists_and_revisions_page_with_cursors(registry, token_registry, client, auth):
    add_registry(client, auth["admin"], registry, "a-local")
    add_registry(client, auth["admin"], token_registry, "b-token")
    for text in ("one", "two"):
        ok_json(
            client.patch(f"{REGISTRIES}/a-local", json={"description": text}, headers=auth["admin"])
        )

    first = ok_json(client.get(REGISTRIES, params={"limit": 1}, headers=auth["viewer"]))
    second = ok_json(
        client.get(
            REGISTRIES,
            params={"limit": 1, "cursor": first["next_cursor"]},
            headers=auth["viewer"],
        )
    )
    newest = ok_json(
        client.get(f"{REGISTRIES}/a-local/revisions", params={"limit": 2}, headers=auth["viewer"])
    )
    oldest = ok_json(
        client.get(
            f"{REGISTRIES}/a-local/revisions",
            params={"limit": 2, "cursor": newest["next_cursor"]},
            headers=auth["viewer"],
        )
    )

    assert [item["name"] for item in first["items"] + second["items"]] == ["a-local", "b-token"]
    assert second["next_cursor"] is None
    assert [item["revision"] for item in newest["items"] + oldest["items"]] == [3, 2, 1]
    bad = client.get(REGISTRIES, params={"cursor": "garbage"}, headers=auth["viewer"])
    assert assert_error(bad, 422, "invalid_input")["details"]["field"] == "cursor"

"""Credentials: keys checked on save, secrets encrypted and never returned, revisions, refusals."""

from __future__ import annotations

import json
import subprocess

import pytest

from slipway.targets import credentials
from slipway.targets.models import CredentialRevision
from tests.api.helpers import assert_error, assert_invalid, database_text, keys_anywhere
from tests.targets.hosts_support import (
    CREDENTIALS,
    add_password_credential,
    add_unverified_host,
    key_body,
    key_line,
    new_private_key,
    ok_json,
    revision_rows,
    targets_state,
)

# The credentials SQL is plain ORM, the same on both backends; tests/targets/test_hosts.py runs
# on PostgreSQL too.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

PASSWORD = "s3cret-Login-pass"
PASSPHRASE = "open sesame 42"


def test_key_and_password_credentials_are_kept_encrypted_and_never_shown(client, auth, settings):
    private_key = new_private_key()

    key = ok_json(
        client.post(
            CREDENTIALS,
            json={"name": "ops-key", "kind": "ssh_key", "private_key": private_key},
            headers=auth["admin"],
        ),
        201,
    )
    password = add_password_credential(client, auth["admin"], "pw", PASSWORD)

    assert key["kind"] == "ssh_key" and key["has_private_key"] is True
    assert key["has_passphrase"] is False and key["has_password"] is False
    assert key["public_key"].startswith("ssh-ed25519 AAAA")
    assert key["fingerprint"].startswith("SHA256:")
    assert password["kind"] == "password" and password["has_password"] is True
    assert password["has_private_key"] is False and password["public_key"] is None
    assert (key["revision"], password["revision"]) == (1, 1)
    shown = [
        client.get(CREDENTIALS, headers=auth["viewer"]).text,
        client.get(f"{CREDENTIALS}/ops-key", headers=auth["viewer"]).text,
        client.get(f"{CREDENTIALS}/{password['id']}", headers=auth["viewer"]).text,
        client.get(f"{CREDENTIALS}/ops-key/revisions", headers=auth["viewer"]).text,
        json.dumps([key, password]),
    ]
    stored = database_text(settings)
    for text in [*shown, stored]:
        assert key_body(private_key)[:40] not in text
        assert PASSWORD not in text
    listed = json.loads(shown[0])["items"]
    assert [item["name"] for item in listed] == ["ops-key", "pw"]
    secret_fields = {"private_key", "passphrase", "password"}
    assert not secret_fields & keys_anywhere([json.loads(text) for text in shown[:4]])


def test_an_encrypted_key_is_checked_against_its_passphrase(client, auth, settings):
    encrypted = new_private_key(PASSPHRASE)
    before = targets_state(settings)

    missing = client.post(
        CREDENTIALS,
        json={"name": "locked", "kind": "ssh_key", "private_key": encrypted},
        headers=auth["admin"],
    )
    wrong = client.post(
        CREDENTIALS,
        json={"name": "locked", "kind": "ssh_key", "private_key": encrypted, "passphrase": "no"},
        headers=auth["admin"],
    )

    assert (
        "send its passphrase"
        in assert_invalid(missing, "passphrase", "invalid_private_key")["message"]
    )
    assert "does not open" in assert_invalid(wrong, "passphrase", "invalid_private_key")["message"]
    assert targets_state(settings) == before

    right = client.post(
        CREDENTIALS,
        json={
            "name": "locked",
            "kind": "ssh_key",
            "private_key": encrypted,
            "passphrase": PASSPHRASE,
        },
        headers=auth["admin"],
    )

    assert ok_json(right, 201)["has_passphrase"] is True
    assert PASSPHRASE not in database_text(settings)


def test_a_passphrase_protected_openssh_key_opens_or_is_refused_saying_why(
    client, auth, settings, tmp_path
):
    path = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", PASSPHRASE, "-f", str(path)], check=True
    )
    before = targets_state(settings)

    response = client.post(
        CREDENTIALS,
        json={
            "name": "keygen-made",
            "kind": "ssh_key",
            "private_key": path.read_text(),
            "passphrase": PASSPHRASE,
        },
        headers=auth["admin"],
    )

    if credentials.HAS_BCRYPT:
        assert key_line(ok_json(response, 201)["public_key"]) == key_line(
            path.with_suffix(".pub").read_text()
        )
    else:
        error = assert_invalid(response, "private_key", "invalid_private_key")
        assert "bcrypt" in error["message"]
        assert targets_state(settings) == before


BAD_CREATES = {
    "garbage-key": ({"kind": "ssh_key", "private_key": "not a key"}, "private_key"),
    "public-key-pasted": (
        {"kind": "ssh_key", "private_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ me@x"},
        "private_key",
    ),
    "no-key": ({"kind": "ssh_key"}, "private_key"),
    "passphrase-on-plain-key": (
        {"kind": "ssh_key", "private_key": "PLAIN", "passphrase": "x"},
        "passphrase",
    ),
    "password-on-key": (
        {"kind": "ssh_key", "private_key": "PLAIN", "password": "x"},
        "password",
    ),
    "no-password": ({"kind": "password"}, "password"),
    "empty-password": ({"kind": "password", "password": ""}, "password"),
    "key-on-password": (
        {"kind": "password", "password": "x", "private_key": "PLAIN"},
        "private_key",
    ),
    "unknown-kind": ({"kind": "token", "password": "x"}, "kind"),
    "name-uppercase": ({"name": "Ops", "kind": "password", "password": "x"}, "name"),
    "name-digits": ({"name": "42", "kind": "password", "password": "x"}, "name"),
    "unknown-field": ({"kind": "password", "password": "x", "user": "root"}, "user"),
}


@pytest.mark.parametrize(("body", "field"), BAD_CREATES.values(), ids=BAD_CREATES.keys())
def test_bad_credentials_are_refused_naming_the_field_and_nothing_changes(
    client, auth, settings, body, field
):
    plain = new_private_key()
    body = {"name": "cred", **{k: plain if v == "PLAIN" else v for k, v in body.items()}}
    before = targets_state(settings)

    response = client.post(CREDENTIALS, json=body, headers=auth["admin"])

    error = assert_invalid(response, field, response.json()["error"]["code"])
    assert error["code"] in ("invalid_input", "invalid_private_key")
    assert targets_state(settings) == before


def test_a_taken_name_is_refused(client, auth, settings):
    add_password_credential(client, auth["admin"], "taken", PASSWORD)
    before = targets_state(settings)

    response = client.post(
        CREDENTIALS,
        json={"name": "taken", "kind": "ssh_key", "private_key": new_private_key()},
        headers=auth["admin"],
    )

    error = assert_error(response, 409, "credential_exists")
    assert error["details"] == {"field": "name"}
    assert "PATCH /api/v1/credentials/taken" in error["message"]
    assert targets_state(settings) == before


def test_changes_make_append_only_revisions_without_secrets(client, auth, settings):
    first = new_private_key()
    second = new_private_key()
    created = ok_json(
        client.post(
            CREDENTIALS,
            json={"name": "rotating", "kind": "ssh_key", "private_key": first},
            headers=auth["admin"],
        ),
        201,
    )
    history = revision_rows(settings, CredentialRevision)

    rotated = ok_json(
        client.patch(f"{CREDENTIALS}/rotating", json={"private_key": second}, headers=auth["admin"])
    )
    same_again = ok_json(
        client.patch(
            f"{CREDENTIALS}/{created['id']}", json={"private_key": second}, headers=auth["admin"]
        )
    )
    described = ok_json(
        client.patch(
            f"{CREDENTIALS}/rotating", json={"description": "ops team"}, headers=auth["admin"]
        )
    )

    assert rotated["revision"] == 2 and rotated["fingerprint"] != created["fingerprint"]
    assert same_again["revision"] == 2  # nothing changed, no revision
    assert described["revision"] == 3 and described["fingerprint"] == rotated["fingerprint"]
    revisions = ok_json(client.get(f"{CREDENTIALS}/rotating/revisions", headers=auth["viewer"]))
    assert [(r["revision"], r["changes"], r["actor"]) for r in revisions["items"]] == [
        (3, ["description"], "admin"),
        (2, ["secret"], "admin"),
        (1, ["created"], "admin"),
    ]
    assert revisions["items"][2]["fingerprint"] == created["fingerprint"]
    assert revision_rows(settings, CredentialRevision)[: len(history)] == history
    assert key_body(first)[:40] not in database_text(settings)


def test_bad_changes_are_refused_and_nothing_changes(client, auth, settings):
    add_password_credential(client, auth["admin"], "pw", PASSWORD)
    client.post(
        CREDENTIALS,
        json={"name": "key", "kind": "ssh_key", "private_key": new_private_key()},
        headers=auth["admin"],
    )
    before = targets_state(settings)
    cases = [
        ("pw", {"private_key": new_private_key()}, "private_key"),
        ("pw", {"password": ""}, "password"),
        ("pw", {"kind": "ssh_key"}, "kind"),
        ("key", {"password": "x"}, "password"),
        ("key", {"passphrase": "x"}, "passphrase"),
        ("key", {"private_key": "nope"}, "private_key"),
        ("key", {"name": "renamed"}, "name"),
    ]

    for name, body, field in cases:
        response = client.patch(f"{CREDENTIALS}/{name}", json=body, headers=auth["admin"])
        assert_invalid(response, field, response.json()["error"]["code"])

    assert targets_state(settings) == before


def test_a_credential_in_use_is_not_deleted_and_names_its_hosts(client, auth, settings):
    add_password_credential(client, auth["admin"], "farm-key", PASSWORD)
    add_unverified_host(client, auth["admin"], "web1")
    add_unverified_host(client, auth["admin"], "web2")
    before = targets_state(settings)

    refused = client.delete(f"{CREDENTIALS}/farm-key", headers=auth["admin"])

    error = assert_error(refused, 409, "credential_in_use")
    assert error["details"] == {"used_by": ["host web1", "host web2"]}
    assert "web1, web2" in error["message"]
    assert targets_state(settings) == before

    for name in ("web1", "web2"):
        assert client.delete(f"/api/v1/hosts/{name}", headers=auth["admin"]).status_code == 204
    deleted = client.delete(f"{CREDENTIALS}/farm-key", headers=auth["admin"])

    assert deleted.status_code == 204, deleted.text
    state = targets_state(settings)
    assert state["credentials"] == state["credential_revisions"] == state["secrets"] == []
    assert_error(
        client.get(f"{CREDENTIALS}/farm-key", headers=auth["viewer"]), 404, "credential_not_found"
    )

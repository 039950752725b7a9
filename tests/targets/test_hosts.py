"""Hosts against real sshd hosts: login on save, key pinning, tests, forgetting a key, refusals."""

from __future__ import annotations

import os
import time

import pytest

from slipway.core.db import session_scope
from slipway.core.errors import NotFoundError
from slipway.remote import ssh as remote_ssh
from slipway.targets import host_probe, hosts
from slipway.targets.models import HostRevision
from tests.api.helpers import assert_error, assert_invalid, audit_rows
from tests.support.sshd import PASSWORD_USER, PASSWORD_USER_PASSWORD
from tests.targets.hosts_support import (
    CREDENTIALS,
    GROUPS,
    HOSTS,
    add_farm_key,
    add_host,
    add_password_credential,
    add_unverified_host,
    host_body,
    key_line,
    new_private_key,
    ok_json,
    revision_rows,
    targets_state,
    with_passphrase,
)

CLOSED_PORT = 2223  # nothing listens there on the farm's addresses


def history(client, auth, name: str) -> list[tuple[int, list[str], str]]:
    revisions = ok_json(client.get(f"{HOSTS}/{name}/revisions", headers=auth["viewer"]))
    return [(r["revision"], r["changes"], r["actor"]) for r in revisions["items"]]


async def _login(target: remote_ssh.SSHTarget) -> tuple[str, str]:
    async with await remote_ssh.connect(target) as session:
        return session.host_key, (await session.run("id -un")).stdout.strip()


# --- saving logs in and pins ----------------------------------------------------------------------


def test_a_host_is_logged_in_to_pinned_and_described_when_saved(ssh_farm, client, auth, settings):
    farm_host = ssh_farm.hosts[0]
    add_farm_key(client, auth["admin"], ssh_farm)

    host = add_host(
        client,
        auth["admin"],
        farm_host,
        "web1",
        labels={"role": "web"},
        deploy_root="/srv/app/",
    )

    assert host["host_key"] == key_line(farm_host.host_public_key)
    assert host["host_key_fingerprint"] == remote_ssh.key_fingerprint(farm_host.host_public_key)
    assert host["host_key_pinned_at"] is not None
    assert host["deploy_root"] == "/srv/app"  # the trailing slash is dropped
    assert host["credential"] == "farm-key" and host["labels"] == {"role": "web"}
    facts = host["facts"]
    assert (facts["user"], facts["uid"], facts["is_root"]) == ("root", 0, True)
    assert facts["os"] and facts["kernel"] == os.uname().release
    assert facts["path"] == "/srv/app"
    # /srv/app does not exist yet: the free space is that of /srv, the host's own directory.
    disk = os.statvfs(farm_host.root)
    assert abs(facts["free_bytes"] - disk.f_bavail * disk.f_frsize) < 512 << 20
    assert host["last_checked_at"] is not None and host["last_error"] is None
    assert host["revision"] == 1
    assert ok_json(client.get(f"{HOSTS}/{host['id']}", headers=auth["viewer"])) == host
    revisions = ok_json(client.get(f"{HOSTS}/web1/revisions", headers=auth["viewer"]))["items"]
    assert [(r["revision"], r["changes"], r["credential"]) for r in revisions] == [
        (1, ["created"], "farm-key")
    ]
    assert revisions[0]["host_key_fingerprint"] == host["host_key_fingerprint"]


def test_a_password_credential_logs_in_as_its_user_and_reports_its_rights(ssh_farm, client, auth):
    add_password_credential(client, auth["admin"], "pw", PASSWORD_USER_PASSWORD)
    body = host_body(ssh_farm.hosts[1], "pw-host", user=PASSWORD_USER, credential="pw")

    host = ok_json(client.post(HOSTS, json=body, headers=auth["admin"]), 201)

    facts = host["facts"]
    assert facts["user"] == PASSWORD_USER
    assert facts["uid"] != 0 and facts["is_root"] is False and facts["sudo"] is False
    assert PASSWORD_USER in facts["groups"]


def test_an_encrypted_key_logs_in_with_its_passphrase(ssh_farm, client, auth):
    locked = with_passphrase(ssh_farm.client_private_key, "farm passphrase")
    ok_json(
        client.post(
            CREDENTIALS,
            json={
                "name": "farm-key",
                "kind": "ssh_key",
                "private_key": locked,
                "passphrase": "farm passphrase",
            },
            headers=auth["admin"],
        ),
        201,
    )

    host = add_host(client, auth["admin"], ssh_farm.hosts[2], "locked-key")

    assert host["facts"]["is_root"] is True


def test_a_refused_login_saves_nothing_and_names_the_credential(ssh_farm, client, auth, settings):
    farm_host = ssh_farm.hosts[1]
    add_farm_key(client, auth["admin"], ssh_farm)
    add_password_credential(client, auth["admin"], "wrong-pw", "not-the-password-1")
    client.post(
        CREDENTIALS,
        json={"name": "stranger", "kind": "ssh_key", "private_key": new_private_key()},
        headers=auth["admin"],
    )
    before = targets_state(settings)
    attempts = [
        host_body(farm_host, "nope", user=PASSWORD_USER, credential="wrong-pw"),
        host_body(farm_host, "nope", credential="stranger"),
        host_body(farm_host, "nope", user="nobody-here"),
    ]

    for body in attempts:
        response = client.post(HOSTS, json=body, headers=auth["admin"])
        error = assert_error(response, 502, "ssh_auth_failed")
        assert error["details"]["field"] == "credential"
        assert farm_host.address in error["message"]

    assert targets_state(settings) == before


def test_an_unreachable_host_is_refused_quickly_and_saved_only_without_verify(
    ssh_farm, client, auth, settings
):
    add_farm_key(client, auth["admin"], ssh_farm)
    before = targets_state(settings)
    body = host_body(ssh_farm.hosts[0], "away", port=CLOSED_PORT)

    started = time.monotonic()
    refused = client.post(HOSTS, json=body, headers=auth["admin"])
    elapsed = time.monotonic() - started

    error = assert_error(refused, 502, "host_unreachable")
    assert error["details"]["field"] == "address"
    assert f"{ssh_farm.hosts[0].address}:{CLOSED_PORT}" in error["message"]
    assert elapsed < 5
    assert targets_state(settings) == before

    saved = ok_json(client.post(HOSTS, json={**body, "verify": False}, headers=auth["admin"]), 201)

    assert (saved["host_key"], saved["facts"], saved["last_checked_at"]) == (None, None, None)
    tested = client.post(f"{HOSTS}/away/test", headers=auth["operator"])
    assert_error(tested, 502, "host_unreachable")
    shown = ok_json(client.get(f"{HOSTS}/away", headers=auth["viewer"]))
    assert shown["last_error"]["code"] == "host_unreachable"
    assert shown["last_checked_at"] is not None
    assert (shown["revision"], shown["host_key"]) == (1, None)


def test_an_unverified_host_is_pinned_by_its_first_successful_test(ssh_farm, client, auth):
    farm_host = ssh_farm.hosts[1]
    add_farm_key(client, auth["admin"], ssh_farm)
    ok_json(
        client.post(HOSTS, json=host_body(farm_host, "later", verify=False), headers=auth["admin"]),
        201,
    )

    first = ok_json(client.post(f"{HOSTS}/later/test", headers=auth["operator"]))
    second = ok_json(client.post(f"{HOSTS}/later/test", headers=auth["operator"]))

    fingerprint = remote_ssh.key_fingerprint(farm_host.host_public_key)
    assert (first["ok"], first["pinned_now"], first["host_key_fingerprint"]) == (
        True,
        True,
        fingerprint,
    )
    assert first["facts"]["is_root"] is True and first["facts"]["free_bytes"] > 0
    assert second["pinned_now"] is False
    shown = ok_json(client.get(f"{HOSTS}/later", headers=auth["viewer"]))
    assert shown["host_key"] == key_line(farm_host.host_public_key)
    assert shown["facts"] == second["facts"]
    assert shown["last_checked_at"] == second["checked_at"]
    assert history(client, auth, "later") == [
        (2, ["host_key"], "operator"),
        (1, ["created"], "admin"),
    ]


# --- a changed host key ---------------------------------------------------------------------------


def test_a_changed_host_key_is_refused_with_both_fingerprints_until_forgotten(
    ssh_farm, client, auth, settings
):
    farm_host = ssh_farm.hosts[8]
    add_farm_key(client, auth["admin"], ssh_farm)
    add_farm_key(client, auth["admin"], ssh_farm, name="farm-key-2")
    old = add_host(client, auth["admin"], farm_host, "reinstalled")["host_key_fingerprint"]
    ssh_farm.restart_with_new_host_key(farm_host)
    new = remote_ssh.key_fingerprint(farm_host.host_public_key)
    assert new != old
    before = targets_state(settings)

    tested = client.post(f"{HOSTS}/reinstalled/test", headers=auth["operator"])
    changed = client.patch(
        f"{HOSTS}/reinstalled", json={"credential": "farm-key-2"}, headers=auth["admin"]
    )

    error = assert_error(tested, 502, "host_key_changed")
    assert (error["details"]["pinned"], error["details"]["offered"]) == (old, new)
    assert old in error["message"] and new in error["message"]
    error = assert_error(changed, 502, "host_key_changed")
    assert error["details"]["field"] == "host_key"
    assert (error["details"]["pinned"], error["details"]["offered"]) == (old, new)
    assert targets_state(settings) == before
    shown = ok_json(client.get(f"{HOSTS}/reinstalled", headers=auth["viewer"]))
    assert shown["host_key_fingerprint"] == old and shown["credential"] == "farm-key"
    assert shown["last_error"]["code"] == "host_key_changed"

    refused = client.post(f"{HOSTS}/reinstalled/forget-host-key", headers=auth["operator"])
    forgotten = client.post(f"{HOSTS}/reinstalled/forget-host-key", headers=auth["admin"])

    assert_error(refused, 403, "forbidden")
    forgotten_host = ok_json(forgotten)
    assert (forgotten_host["host_key"], forgotten_host["host_key_fingerprint"]) == (None, None)
    audited = [(r.actor, r.action, r.target, r.status_code) for r in audit_rows(settings)]
    assert (
        "admin",
        "POST /api/v1/hosts/{name}/forget-host-key",
        f"{HOSTS}/reinstalled/forget-host-key",
        200,
    ) in audited

    retested = ok_json(client.post(f"{HOSTS}/reinstalled/test", headers=auth["operator"]))

    assert (retested["pinned_now"], retested["host_key_fingerprint"]) == (True, new)
    assert history(client, auth, "reinstalled") == [
        (3, ["host_key"], "operator"),
        (2, ["host_key"], "admin"),
        (1, ["created"], "admin"),
    ]
    revisions = ok_json(client.get(f"{HOSTS}/reinstalled/revisions", headers=auth["viewer"]))
    assert [r["host_key_fingerprint"] for r in revisions["items"]] == [new, None, old]


def test_moving_a_host_pins_what_the_new_address_offers(ssh_farm, client, auth, settings):
    first, second = ssh_farm.hosts[0], ssh_farm.hosts[1]
    add_farm_key(client, auth["admin"], ssh_farm)
    add_host(client, auth["admin"], first, "mover")
    history_before = revision_rows(settings, HostRevision)

    moved = ok_json(
        client.patch(f"{HOSTS}/mover", json={"address": second.address}, headers=auth["admin"])
    )
    parked = ok_json(
        client.patch(
            f"{HOSTS}/mover", json={"port": CLOSED_PORT, "verify": False}, headers=auth["admin"]
        )
    )

    assert moved["host_key"] == key_line(second.host_public_key)
    assert moved["revision"] == 2
    assert (parked["host_key"], parked["port"], parked["revision"]) == (None, CLOSED_PORT, 3)
    assert history(client, auth, "mover") == [
        (3, ["port", "host_key"], "admin"),
        (2, ["address", "host_key"], "admin"),
        (1, ["created"], "admin"),
    ]
    assert revision_rows(settings, HostRevision)[: len(history_before)] == history_before


def test_changes_that_leave_the_login_alone_do_not_connect(client, auth):
    add_password_credential(client, auth["admin"], "farm-key", "a-password-1")
    add_unverified_host(client, auth["admin"], "quiet")  # an address that never answers

    labeled = client.patch(
        f"{HOSTS}/quiet",
        json={"labels": {"role": "db"}, "deploy_root": "/data", "description": "the db"},
        headers=auth["admin"],
    )
    cleared = client.patch(f"{HOSTS}/quiet", json={"deploy_root": None}, headers=auth["admin"])
    unchanged = client.patch(
        f"{HOSTS}/quiet", json={"labels": {"role": "db"}}, headers=auth["admin"]
    )

    assert ok_json(labeled)["deploy_root"] == "/data"
    assert ok_json(cleared)["deploy_root"] is None
    assert ok_json(unchanged)["revision"] == 3
    assert history(client, auth, "quiet") == [
        (3, ["deploy_root"], "admin"),
        (2, ["labels", "deploy_root", "description"], "admin"),
        (1, ["created"], "admin"),
    ]


# --- the service other domains use ----------------------------------------------------------------


def test_ssh_target_and_pin_host_key_are_what_a_deploy_needs(ssh_farm, client, auth, settings):
    farm_host = ssh_farm.hosts[2]
    add_farm_key(client, auth["admin"], ssh_farm)
    created = ok_json(
        client.post(
            HOSTS, json=host_body(farm_host, "deployed", verify=False), headers=auth["admin"]
        ),
        201,
    )

    with session_scope(settings) as session:
        host = hosts.get_host_or_raise(session, str(created["id"]))
        target = hosts.ssh_target(session, settings, host, connect_timeout=3)
        seen, user = host_probe.run_sync(_login(target))
        hosts.pin_host_key(session, host.id, seen)
    with session_scope(settings) as session:
        host = hosts.get_host_or_raise(session, "deployed")
        pinned = hosts.ssh_target(session, settings, host)
        again, _ = host_probe.run_sync(_login(pinned))
        hosts.pin_host_key(session, host.id, again)  # the same key: nothing to do
        with pytest.raises(remote_ssh.HostKeyChangedError) as caught:
            hosts.pin_host_key(session, host.id, ssh_farm.hosts[3].host_public_key)
        with pytest.raises(NotFoundError) as missing:
            hosts.get_host_or_raise(session, "nowhere")

    assert (target.host_key, target.connect_timeout, target.user, user) == (None, 3, "root", "root")
    assert target.private_key is not None and target.private_key.strip() == (
        ssh_farm.client_private_key.strip()
    )
    assert pinned.host_key == key_line(farm_host.host_public_key) == again
    assert caught.value.details["pinned"] == remote_ssh.key_fingerprint(farm_host.host_public_key)
    assert missing.value.code == "host_not_found"
    assert history(client, auth, "deployed") == [
        (2, ["host_key"], "system"),
        (1, ["created"], "admin"),
    ]


def test_check_hosts_tests_every_host_at_once(ssh_farm, client, auth, settings):
    add_farm_key(client, auth["admin"], ssh_farm)
    add_host(client, auth["admin"], ssh_farm.hosts[0], "up")
    body = host_body(ssh_farm.hosts[1], "down", port=CLOSED_PORT, verify=False)
    ok_json(client.post(HOSTS, json=body, headers=auth["admin"]), 201)

    with session_scope(settings) as session:
        results = {result["name"]: result for result in host_probe.check_hosts(session, settings)}

    assert set(results) == {"host:up", "host:down"}
    assert results["host:up"]["ok"] is True and "root" in results["host:up"]["message"]
    assert results["host:up"]["details"]["is_root"] is True
    assert results["host:down"]["ok"] is False
    assert results["host:down"]["details"]["code"] == "host_unreachable"
    shown = ok_json(client.get(f"{HOSTS}/down", headers=auth["viewer"]))
    assert shown["last_error"]["code"] == "host_unreachable"


# --- reading --------------------------------------------------------------------------------------


def test_lists_filter_by_label_and_are_paged(client, auth):
    add_password_credential(client, auth["admin"], "farm-key", "a-password-1")
    for name, role in (("a-web", "web"), ("b-db", "db"), ("c-web", "web")):
        add_unverified_host(client, auth["admin"], name, labels={"role": role, "dc": "x"})

    webs = ok_json(client.get(HOSTS, params={"label": "role=web"}, headers=auth["viewer"]))
    both = ok_json(
        client.get(HOSTS, params={"label": ["role=web", "dc=y"]}, headers=auth["viewer"])
    )
    first = ok_json(client.get(HOSTS, params={"limit": 2}, headers=auth["viewer"]))
    second = ok_json(
        client.get(
            HOSTS, params={"limit": 2, "cursor": first["next_cursor"]}, headers=auth["viewer"]
        )
    )

    assert [h["name"] for h in webs["items"]] == ["a-web", "c-web"]
    assert both["items"] == []
    assert [h["name"] for h in first["items"]] == ["a-web", "b-db"]
    assert [h["name"] for h in second["items"]] == ["c-web"] and second["next_cursor"] is None
    assert_invalid(client.get(HOSTS, params={"label": "role"}, headers=auth["viewer"]), "label")
    assert_invalid(client.get(HOSTS, params={"cursor": "%%"}, headers=auth["viewer"]), "cursor")


# --- refusals -------------------------------------------------------------------------------------

BAD_CREATES = {
    "name-uppercase": ({"name": "Web"}, "name"),
    "name-digits": ({"name": "123"}, "name"),
    "name-dot": ({"name": "a.b"}, "name"),
    "address-with-port": ({"address": "10.0.0.5:22"}, "address"),
    "address-space": ({"address": "web 1"}, "address"),
    "address-empty": ({"address": ""}, "address"),
    "address-missing": ({"address": None}, "address"),
    "port-zero": ({"port": 0}, "port"),
    "port-high": ({"port": 65536}, "port"),
    "user-shell": ({"user": "root;rm"}, "user"),
    "user-empty": ({"user": ""}, "user"),
    "deploy-root-relative": ({"deploy_root": "data"}, "deploy_root"),
    "deploy-root-slash": ({"deploy_root": "/"}, "deploy_root"),
    "deploy-root-dotdot": ({"deploy_root": "/srv/../etc"}, "deploy_root"),
    "deploy-root-space": ({"deploy_root": "/srv/my app"}, "deploy_root"),
    "labels-bad-key": ({"labels": {"a b": "c"}}, "labels"),
    "labels-not-strings": ({"labels": {"n": 5}}, "labels.n"),
    "credential-missing": ({"credential": None}, "credential"),
    "unknown-field": ({"password": "x"}, "password"),
}


@pytest.mark.parametrize(("change", "field"), BAD_CREATES.values(), ids=BAD_CREATES.keys())
def test_bad_hosts_are_refused_naming_the_field_and_nothing_changes(
    client, auth, settings, change, field
):
    add_password_credential(client, auth["admin"], "farm-key", "a-password-1")
    before = targets_state(settings)
    body = {"name": "web1", "address": "192.0.2.10", "credential": "farm-key", "verify": False}
    body.update(change)
    body = {key: value for key, value in body.items() if value is not None}

    response = client.post(HOSTS, json=body, headers=auth["admin"])

    assert_invalid(response, field)
    assert targets_state(settings) == before


def test_unknown_credentials_and_taken_names_are_refused(client, auth, settings):
    add_password_credential(client, auth["admin"], "farm-key", "a-password-1")
    add_unverified_host(client, auth["admin"], "taken")
    before = targets_state(settings)
    body = {"name": "other", "address": "192.0.2.11", "credential": "nope", "verify": False}

    unknown = client.post(HOSTS, json=body, headers=auth["admin"])
    taken = client.post(HOSTS, json={**body, "name": "taken", "credential": "farm-key"},
                        headers=auth["admin"])  # fmt: skip
    bad_patch = client.patch(f"{HOSTS}/taken", json={"credential": "nope"}, headers=auth["admin"])

    assert assert_error(unknown, 404, "credential_not_found")["details"] == {"field": "credential"}
    assert assert_error(taken, 409, "host_exists")["details"] == {"field": "name"}
    assert assert_error(bad_patch, 404, "credential_not_found")["details"] == {
        "field": "credential"
    }
    assert targets_state(settings) == before


def test_bad_updates_are_refused_and_nothing_changes(client, auth, settings):
    add_password_credential(client, auth["admin"], "farm-key", "a-password-1")
    add_unverified_host(client, auth["admin"], "keep")
    before = targets_state(settings)
    cases = [
        ({"address": "not an address"}, "address"),
        ({"port": 0}, "port"),
        ({"user": "-x"}, "user"),
        ({"deploy_root": "relative"}, "deploy_root"),
        ({"labels": {"x": ["y"]}}, "labels.x"),
        ({"name": "renamed"}, "name"),
        ({"host_key": "ssh-ed25519 AAAA"}, "host_key"),
    ]

    for body, field in cases:
        assert_invalid(client.patch(f"{HOSTS}/keep", json=body, headers=auth["admin"]), field)

    assert targets_state(settings) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("PATCH", "/nope"),
        ("DELETE", "/nope"),
        ("POST", "/nope/test"),
        ("POST", "/nope/forget-host-key"),
        ("GET", "/nope/revisions"),
        ("GET", "/999"),
    ],
)
def test_an_unknown_host_is_404(client, auth, method, path):
    kwargs = {"json": {"description": "x"}} if method == "PATCH" else {}

    response = client.request(method, f"{HOSTS}{path}", headers=auth["admin"], **kwargs)

    assert "GET /api/v1/hosts" in assert_error(response, 404, "host_not_found")["message"]


# --- deleting -------------------------------------------------------------------------------------


def test_a_host_in_use_is_not_deleted_and_names_its_users(client, auth, settings, monkeypatch):
    add_password_credential(client, auth["admin"], "farm-key", "a-password-1")
    add_unverified_host(client, auth["admin"], "listed", labels={"role": "web"})
    add_unverified_host(client, auth["admin"], "selected", labels={"role": "web"})
    ok_json(
        client.post(GROUPS, json={"name": "web", "hosts": ["listed"]}, headers=auth["admin"]), 201
    )
    ok_json(
        client.post(
            GROUPS, json={"name": "by-role", "selector": {"role": "web"}}, headers=auth["admin"]
        ),
        201,
    )

    def environments(session, host):
        return ["environment shop/prod"] if host.name == "listed" else []

    monkeypatch.setattr(hosts, "_host_checks", [])
    hosts.register_host_usage_check(environments)
    before = targets_state(settings)

    refused = client.delete(f"{HOSTS}/listed", headers=auth["admin"])

    error = assert_error(refused, 409, "host_in_use")
    assert error["details"] == {"used_by": ["group web", "environment shop/prod"]}
    assert "group web" in error["message"]
    assert targets_state(settings) == before

    # A selector only matches labels: the host it selects may go, and the group shrinks.
    assert client.delete(f"{HOSTS}/selected", headers=auth["admin"]).status_code == 204
    members = ok_json(client.get(f"{GROUPS}/by-role", headers=auth["viewer"]))["members"]
    assert members == ["listed"]
    after = targets_state(settings)
    assert [row[0] for row in after["hosts"]] == ["listed"]
    assert len(after["host_revisions"]) == len(before["host_revisions"]) - 1

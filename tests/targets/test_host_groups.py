"""Host groups: ordered lists, label selectors, switching between them, revisions and refusals."""

from __future__ import annotations

import pytest

from slipway.core.db import session_scope
from slipway.targets import hosts
from slipway.targets.models import HostGroupRevision
from tests.api.helpers import assert_error, assert_invalid
from tests.targets.hosts_support import (
    GROUPS,
    HOSTS,
    add_farm_key,
    add_host,
    add_password_credential,
    add_unverified_host,
    ok_json,
    revision_rows,
    targets_state,
)

# The host groups SQL is plain ORM, the same on both backends; tests/targets/test_hosts.py runs
# on PostgreSQL too.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
def three_hosts(client, auth) -> dict[str, int]:
    """h-a (web), h-b (web, canary), h-c (db): saved without a login. Name -> id."""
    add_password_credential(client, auth["admin"], "farm-key", "a-password-1")
    labels = {
        "h-a": {"role": "web"},
        "h-b": {"role": "web", "canary": "yes"},
        "h-c": {"role": "db"},
    }
    return {
        name: add_unverified_host(client, auth["admin"], name, labels=pairs)["id"]
        for name, pairs in labels.items()
    }


def test_a_list_group_keeps_the_order_given(three_hosts, client, auth, settings):
    created = ok_json(
        client.post(
            GROUPS,
            json={"name": "web", "hosts": ["h-c", str(three_hosts["h-a"]), "h-b"]},
            headers=auth["admin"],
        ),
        201,
    )

    assert created["hosts"] == created["members"] == ["h-c", "h-a", "h-b"]
    assert created["selector"] is None and created["revision"] == 1
    assert ok_json(client.get(f"{GROUPS}/{created['id']}", headers=auth["viewer"])) == created
    with session_scope(settings) as session:
        group = hosts.get_group_or_raise(session, "web")
        members = [host.name for host in hosts.group_members(session, group)]
    assert members == ["h-c", "h-a", "h-b"]


def test_a_selector_group_is_every_host_holding_its_labels_by_name(three_hosts, client, auth):
    created = ok_json(
        client.post(
            GROUPS, json={"name": "webs", "selector": {"role": "web"}}, headers=auth["admin"]
        ),
        201,
    )
    canaries = ok_json(
        client.post(
            GROUPS,
            json={"name": "canaries", "selector": {"role": "web", "canary": "yes"}},
            headers=auth["admin"],
        ),
        201,
    )

    assert (created["hosts"], created["members"]) == (None, ["h-a", "h-b"])
    assert canaries["members"] == ["h-b"]

    # Membership follows the labels, now.
    client.patch(f"{HOSTS}/h-c", json={"labels": {"role": "web"}}, headers=auth["admin"])
    client.patch(f"{HOSTS}/h-a", json={"labels": {"role": "old"}}, headers=auth["admin"])

    listed = ok_json(client.get(GROUPS, headers=auth["viewer"]))["items"]
    assert [(g["name"], g["members"]) for g in listed] == [
        ("canaries", ["h-b"]),
        ("webs", ["h-b", "h-c"]),
    ]


def test_groups_change_kind_and_keep_append_only_revisions(three_hosts, client, auth, settings):
    client.post(GROUPS, json={"name": "web", "hosts": ["h-a", "h-b"]}, headers=auth["admin"])
    first = revision_rows(settings, HostGroupRevision)

    reordered = ok_json(
        client.patch(f"{GROUPS}/web", json={"hosts": ["h-b", "h-a"]}, headers=auth["admin"])
    )
    selected = ok_json(
        client.patch(f"{GROUPS}/web", json={"selector": {"role": "db"}}, headers=auth["admin"])
    )
    same = ok_json(
        client.patch(f"{GROUPS}/web", json={"selector": {"role": "db"}}, headers=auth["admin"])
    )
    described = ok_json(
        client.patch(f"{GROUPS}/web", json={"description": "the db now"}, headers=auth["admin"])
    )

    assert reordered["members"] == ["h-b", "h-a"] and reordered["revision"] == 2
    assert (selected["hosts"], selected["members"]) == (None, ["h-c"])
    assert same["revision"] == 3
    assert described["revision"] == 4
    revisions = ok_json(client.get(f"{GROUPS}/web/revisions", headers=auth["viewer"]))["items"]
    assert [(r["revision"], r["changes"], r["hosts"], r["selector"]) for r in revisions] == [
        (4, ["description"], None, {"role": "db"}),
        (3, ["hosts", "selector"], None, {"role": "db"}),
        (2, ["hosts"], ["h-b", "h-a"], None),
        (1, ["created"], ["h-a", "h-b"], None),
    ]
    assert revision_rows(settings, HostGroupRevision)[: len(first)] == first


BAD_GROUPS = {
    "both": ({"hosts": ["h-a"], "selector": {"role": "web"}}, "selector", 422),
    "neither": ({}, "hosts", 422),
    "empty-hosts": ({"hosts": []}, "hosts", 422),
    "empty-selector": ({"selector": {}}, "selector", 422),
    "twice": ({"hosts": ["h-a", "h-b", "h-a"]}, "hosts", 422),
    "twice-by-id": ({"hosts": ["h-a", "ID:h-a"]}, "hosts", 422),
    "selector-bad-key": ({"selector": {"a b": "c"}}, "selector", 422),
    "hosts-not-list": ({"hosts": "h-a"}, "hosts", 422),
    "name-bad": ({"name": "Web", "hosts": ["h-a"]}, "name", 422),
    "unknown-field": ({"hosts": ["h-a"], "order": "random"}, "order", 422),
    "unknown-host": ({"hosts": ["h-a", "nope"]}, "hosts", 404),
}


@pytest.mark.parametrize(("body", "field", "status"), BAD_GROUPS.values(), ids=BAD_GROUPS.keys())
def test_bad_groups_are_refused_naming_the_field_and_nothing_changes(
    three_hosts, client, auth, settings, body, field, status
):
    if "hosts" in body and isinstance(body["hosts"], list):
        body = {
            **body,
            "hosts": [
                str(three_hosts[ref[3:]]) if ref.startswith("ID:") else ref for ref in body["hosts"]
            ],
        }
    before = targets_state(settings)

    response = client.post(GROUPS, json={"name": "web", **body}, headers=auth["admin"])

    if status == 404:
        error = assert_error(response, 404, "host_not_found")
        assert error["details"] == {"field": "hosts", "host": "nope"}
    else:
        assert_invalid(response, field)
    assert targets_state(settings) == before


def test_bad_changes_and_taken_names_are_refused(three_hosts, client, auth, settings):
    client.post(GROUPS, json={"name": "web", "hosts": ["h-a"]}, headers=auth["admin"])
    before = targets_state(settings)

    taken = client.post(GROUPS, json={"name": "web", "hosts": ["h-b"]}, headers=auth["admin"])
    both = client.patch(
        f"{GROUPS}/web", json={"hosts": ["h-b"], "selector": {"a": "b"}}, headers=auth["admin"]
    )
    unknown = client.patch(f"{GROUPS}/web", json={"hosts": ["ghost"]}, headers=auth["admin"])
    renamed = client.patch(f"{GROUPS}/web", json={"name": "other"}, headers=auth["admin"])
    missing = client.get(f"{GROUPS}/nope", headers=auth["viewer"])

    assert assert_error(taken, 409, "host_group_exists")["details"] == {"field": "name"}
    assert_invalid(both, "selector")
    assert_error(unknown, 404, "host_not_found")
    assert_invalid(renamed, "name")
    assert (
        "GET /api/v1/host-groups" in assert_error(missing, 404, "host_group_not_found")["message"]
    )
    assert targets_state(settings) == before


def test_a_group_in_use_is_not_deleted(three_hosts, client, auth, settings, monkeypatch):
    client.post(GROUPS, json={"name": "web", "selector": {"role": "web"}}, headers=auth["admin"])
    client.post(GROUPS, json={"name": "spare", "hosts": ["h-c"]}, headers=auth["admin"])
    monkeypatch.setattr(hosts, "_group_checks", [])
    hosts.register_group_usage_check(
        lambda session, group: ["environment shop/prod"] if group.name == "web" else []
    )
    before = targets_state(settings)

    refused = client.delete(f"{GROUPS}/web", headers=auth["admin"])

    error = assert_error(refused, 409, "host_group_in_use")
    assert error["details"] == {"used_by": ["environment shop/prod"]}
    assert targets_state(settings) == before

    deleted = client.delete(f"{GROUPS}/spare", headers=auth["admin"])

    assert deleted.status_code == 204, deleted.text
    after = targets_state(settings)
    assert [row[0] for row in after["groups"]] == ["web"]
    assert len(after["hosts"]) == 3  # its hosts stay
    assert len(after["group_revisions"]) == len(before["group_revisions"]) - 1
    # A host leaves the list group's users once the group is gone.
    assert client.delete(f"{HOSTS}/h-c", headers=auth["admin"]).status_code == 204


def test_a_group_of_real_hosts_reads_in_deploy_order(ssh_farm, client, auth, settings):
    add_farm_key(client, auth["admin"], ssh_farm)
    for index in (2, 0, 1):
        add_host(client, auth["admin"], ssh_farm.hosts[index], f"n{index}")
    client.post(
        GROUPS, json={"name": "rollout", "hosts": ["n2", "n0", "n1"]}, headers=auth["admin"]
    )

    with session_scope(settings) as session:
        group = hosts.get_group_or_raise(session, "rollout")
        targets = [
            hosts.ssh_target(session, settings, host)
            for host in hosts.group_members(session, group)
        ]

    assert [t.address for t in targets] == [ssh_farm.hosts[i].address for i in (2, 0, 1)]
    assert all(t.host_key is not None for t in targets)

"""Runtime settings: revisions, secret values in the vault, and the outbound allow-list through
the API (the saved one wins over SLIPWAY_OUTBOUND_ALLOW)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from slipway.apps import catalog_fetch
from slipway.core import runtime_settings
from slipway.core.config import get_settings
from slipway.core.db import session_factory
from slipway.core.errors import InputError
from slipway.core.models import Secret
from slipway.core.outbound_allow import AllowList, allow_list, current_allow_list, save_allow_list
from tests.api.helpers import assert_error, database_text
from tests.conftest import bearer
from tests.core.test_outbound import Receiver

ALLOW = "/api/v1/settings/outbound-allow"


def test_put_keeps_every_revision_and_the_newest_wins(settings, session) -> None:
    assert runtime_settings.get(session, "test.list", ["default"]) == ["default"]
    first = runtime_settings.put(session, settings, "test.list", ["a", "b"], "alice")
    second = runtime_settings.put(session, settings, "test.list", ["b", "c"], "bob")
    third = runtime_settings.put(session, settings, "test.list", ["b", "c"], "carol")
    session.commit()

    assert runtime_settings.get(session, "test.list", ["default"]) == ["b", "c"]
    assert [(r.revision, r.changes, r.actor) for r in (first, second, third)] == [
        (1, ["created"], "alice"),
        (2, ["added c", "removed a"], "bob"),
        (3, [], "carol"),
    ]
    listed = runtime_settings.revisions(session, "test.list")
    assert [r.revision for r in listed] == [3, 2, 1]
    assert [r.value for r in runtime_settings.revisions(session, "test.list", before=3)] == [
        ["b", "c"],
        ["a", "b"],
    ]
    row = runtime_settings.current(session, "test.list")
    assert row is not None and row.revision == 3 and row.updated_by == "carol"
    assert runtime_settings.revisions(session, "test.other") == []


def test_a_secret_setting_is_kept_in_the_vault_and_shown_masked(settings, session) -> None:
    value = {"Authorization": "Bearer tok-8c1e77", "X-Team": "builds"}
    shown = {"Authorization": "********", "X-Team": "builds"}
    runtime_settings.put(
        session, settings, "test.secret", value, "alice", is_secret=True, shown=shown
    )
    changed = {"Authorization": "Bearer tok-99aa01", "X-Team": "builds"}
    revision = runtime_settings.put(
        session, settings, "test.secret", changed, "alice", is_secret=True, shown=shown
    )
    session.commit()

    assert runtime_settings.get(session, "test.secret") == shown
    assert runtime_settings.reveal(session, settings, "test.secret") == changed
    # Changes name keys only, never a value.
    assert revision.changes == ["changed Authorization"] and revision.value == shown
    text = database_text(settings)
    assert "tok-8c1e77" not in text and "tok-99aa01" not in text
    # The secret is replaced in place, not piled up.
    assert session.scalar(select(func.count()).select_from(Secret)) == 1


def test_the_allow_list_comes_from_the_environment_until_one_is_saved(
    env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLIPWAY_OUTBOUND_ALLOW", "10.0.0.0/8, build-host")
    get_settings.cache_clear()
    settings = get_settings()
    with session_factory(settings)() as session:
        allow = allow_list(session, settings)
        assert (allow.entries, allow.source) == (("10.0.0.0/8", "build-host"), "environment")
        save_allow_list(session, settings, [], actor="admin")
        session.commit()
        assert allow_list(session, settings) == AllowList(source="api")
    assert current_allow_list(settings).source == "api"


def test_a_bad_environment_entry_is_named_when_used(env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIPWAY_OUTBOUND_ALLOW", "10.0.0.0/8,not a host")
    get_settings.cache_clear()
    with pytest.raises(InputError) as caught:
        current_allow_list(get_settings())
    assert caught.value.details == {"field": "SLIPWAY_OUTBOUND_ALLOW", "entry": "not a host"}


def test_outbound_allow_through_the_api(client, tokens) -> None:
    admin, viewer = bearer(tokens["admin"]), bearer(tokens["viewer"])
    assert client.get(ALLOW, headers=viewer).json() == {
        "entries": [],
        "source": "default",
        "revision": None,
        "updated_by": None,
        "updated_at": None,
    }
    body = {"entries": ["192.168.10.0/24", "Registry.Internal", "10.1.1.1"]}
    saved = client.put(ALLOW, json=body, headers=admin)
    assert saved.status_code == 200, saved.text
    view = saved.json()
    assert view["entries"] == ["192.168.10.0/24", "registry.internal", "10.1.1.1/32"]
    assert (view["source"], view["revision"], view["updated_by"]) == ("api", 1, "admin")
    assert client.get(ALLOW, headers=viewer).json() == view

    client.put(ALLOW, json={"entries": ["192.168.10.0/24"]}, headers=admin)
    revisions = client.get(f"{ALLOW}/revisions", headers=viewer).json()
    assert [(r["revision"], r["changes"], r["actor"]) for r in revisions["items"]] == [
        (2, ["removed registry.internal", "removed 10.1.1.1/32"], "admin"),
        (1, ["created"], "admin"),
    ]
    page = client.get(f"{ALLOW}/revisions?limit=1", headers=viewer).json()
    assert [r["revision"] for r in page["items"]] == [2]
    rest = client.get(f"{ALLOW}/revisions?cursor={page['next_cursor']}", headers=viewer).json()
    assert [r["revision"] for r in rest["items"]] == [1] and rest["next_cursor"] is None


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_bad_allow_lists_are_refused_and_change_nothing(client, tokens) -> None:
    admin = bearer(tokens["admin"])
    error = assert_error(
        client.put(ALLOW, json={"entries": ["10.0.0.0/8", "10.0.0.0/40"]}, headers=admin),
        422,
        "invalid_allow_entry",
    )
    assert (error["details"]["field"], error["details"]["entry"]) == ("entries", "10.0.0.0/40")
    assert "'10.0.0.0/40' is neither a CIDR" in error["message"]
    for body in ({"entries": "10.0.0.0/8"}, {"entries": [], "extra": 1}, {}):
        assert_error(client.put(ALLOW, json=body, headers=admin), 422, "invalid_input")
    assert_error(client.get(f"{ALLOW}/revisions?cursor=bad", headers=admin), 422, "invalid_input")
    assert client.get(ALLOW, headers=admin).json()["revision"] is None


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_catalog_downloads_follow_the_allow_list_in_force(
    client, tokens, settings, tmp_path: Path
) -> None:
    receiver = Receiver().start()
    try:
        with pytest.raises(InputError) as caught:
            catalog_fetch.download(f"{receiver.url}/a.tar.gz", tmp_path / "a")
        assert caught.value.code == "outbound_forbidden"
        allow = {"entries": ["127.0.0.1"]}
        client.put(ALLOW, json=allow, headers=bearer(tokens["admin"]))
        catalog_fetch.download(f"{receiver.url}/a.tar.gz", tmp_path / "a")
        assert (tmp_path / "a").read_bytes() == b"ok"
        assert len(receiver.requests) == 1
    finally:
        receiver.stop()

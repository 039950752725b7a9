"""Every list endpoint refuses a cursor it did not give, in the same words, naming the field."""

from __future__ import annotations

import pytest

from slipway.api.pagination import encode_cursor
from tests.api.helpers import assert_invalid
from tests.conftest import bearer

pytestmark = pytest.mark.usefixtures("cheap_hashes")

# Not base64; a bool where a number or name belongs; an object no list pages by; a list of
# nonsense (the operations list pages by [time, id]).
FOREIGN_CURSORS = ["%%", encode_cursor(True), encode_cursor({"page": 2}), encode_cursor(["x"])]


def paged_lists(app) -> list[str]:
    """The GET endpoints with a `cursor` parameter and no path parameter."""
    paths = app.openapi()["paths"]
    return sorted(
        path
        for path, methods in paths.items()
        if "{" not in path
        and any(p["name"] == "cursor" for p in methods.get("get", {}).get("parameters", []))
    )


def test_every_list_refuses_a_cursor_it_did_not_give(app, client, tokens):
    lists = paged_lists(app)
    assert {"/api/v1/operations", "/api/v1/audit", "/api/v1/hosts", "/api/v1/builds"} <= set(lists)
    for path in lists:
        for cursor in FOREIGN_CURSORS:
            response = client.get(path, params={"cursor": cursor}, headers=bearer(tokens["admin"]))
            error = assert_invalid(response, "cursor")
            assert "pass the next_cursor of the previous page unchanged" in error["message"], path


def test_a_cursor_a_list_gave_reads_its_next_page(client, tokens):
    admin = bearer(tokens["admin"])
    for name in ("a1", "a2", "a3"):
        created = client.post(
            "/api/v1/host-groups", json={"name": name, "selector": {"role": "web"}}, headers=admin
        )
        assert created.status_code == 201, created.text
    first = client.get("/api/v1/host-groups", params={"limit": 2}, headers=admin).json()
    assert [group["name"] for group in first["items"]] == ["a1", "a2"]
    rest = client.get(
        "/api/v1/host-groups", params={"limit": 2, "cursor": first["next_cursor"]}, headers=admin
    ).json()
    assert [group["name"] for group in rest["items"]] == ["a3"]
    assert rest["next_cursor"] is None


def test_the_operations_list_pages_by_its_own_cursor(client, tokens):
    operator = bearer(tokens["operator"])
    started = [
        client.post("/api/v1/operations", json={"kind": "system.noop"}, headers=operator).json()
        for _ in range(3)
    ]
    newest_first = [reply["operation"]["id"] for reply in reversed(started)]
    first = client.get("/api/v1/operations", params={"limit": 2}, headers=operator).json()
    rest = client.get(
        "/api/v1/operations", params={"limit": 2, "cursor": first["next_cursor"]}, headers=operator
    ).json()
    assert [item["id"] for item in first["items"] + rest["items"]] == newest_first
    assert rest["next_cursor"] is None

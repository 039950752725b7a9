"""The audit log: one append-only row per mutating request, refused ones included; read by admins
only, newest first, a page at a time."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from slipway.api.pagination import encode_cursor
from slipway.core.db import utcnow
from tests.api.helpers import assert_error, assert_invalid, audit_rows
from tests.conftest import bearer

pytestmark = pytest.mark.usefixtures("cheap_hashes")

DAVE = {"name": "dave", "password": "long-enough-1", "role": "viewer"}


def fields(row) -> tuple:
    return (row.actor, row.action, row.target, row.status_code, row.result)


def test_every_mutating_request_writes_one_row_refused_ones_too(settings, client, tokens):
    admin, viewer, operator = (bearer(tokens[r]) for r in ("admin", "viewer", "operator"))
    api_token = client.post("/api/v1/tokens", json={"name": "ci"}, headers=admin).json()["token"]
    missing = uuid.uuid4()
    calls = [
        (
            lambda: client.post("/api/v1/users", json=DAVE, headers=admin),
            ("admin", "POST /api/v1/users", "/api/v1/users", 201, "ok"),
        ),
        (
            lambda: client.patch("/api/v1/users/dave", json={"role": "operator"}, headers=admin),
            ("admin", "PATCH /api/v1/users/{name}", "/api/v1/users/dave", 200, "ok"),
        ),
        (
            lambda: client.post("/api/v1/system/check"),
            (None, "POST /api/v1/system/check", "/api/v1/system/check", 401, "denied"),
        ),
        (
            lambda: client.post("/api/v1/users", json=DAVE, headers=viewer),
            ("viewer", "POST /api/v1/users", "/api/v1/users", 403, "denied"),
        ),
        (
            lambda: client.post("/api/v1/users", json={**DAVE, "name": "Dave"}, headers=admin),
            ("admin", "POST /api/v1/users", "/api/v1/users", 422, "error"),
        ),
        (
            lambda: client.post("/api/v1/users", json=DAVE, headers=admin),
            ("admin", "POST /api/v1/users", "/api/v1/users", 409, "error"),
        ),
        (
            lambda: client.post(f"/api/v1/operations/{missing}/cancel", headers=operator),
            (
                "operator",
                "POST /api/v1/operations/{operation_id}/cancel",
                f"/api/v1/operations/{missing}/cancel",
                404,
                "error",
            ),
        ),
        (
            lambda: client.post(
                "/api/v1/auth/token", data={"username": "mallory", "password": "guess"}
            ),
            ("mallory", "POST /api/v1/auth/token", "/api/v1/auth/token", 401, "denied"),
        ),
        (
            lambda: client.post(
                "/api/v1/auth/token", data={"username": "dave", "password": DAVE["password"]}
            ),
            ("dave", "POST /api/v1/auth/token", "/api/v1/auth/token", 200, "ok"),
        ),
        (
            lambda: client.post("/api/v1/tokens", json={"name": "ci2"}, headers=bearer(api_token)),
            ("admin", "POST /api/v1/tokens", "/api/v1/tokens", 201, "ok"),
        ),
        (
            lambda: client.delete("/api/v1/users/dave", headers=admin),
            ("admin", "DELETE /api/v1/users/{name}", "/api/v1/users/dave", 204, "ok"),
        ),
        (
            lambda: client.put("/api/v1/me", headers=admin),
            (None, "PUT /api/v1/me", "/api/v1/me", 405, "error"),
        ),
        (
            lambda: client.post("/api/v1/nowhere", headers=admin),
            (None, "POST /api/v1/nowhere", "/api/v1/nowhere", 404, "error"),
        ),
    ]
    for call, expected in calls:
        before = audit_rows(settings)
        response = call()
        rows = audit_rows(settings)
        assert len(rows) == len(before) + 1, expected
        row = rows[-1]
        assert response.status_code == expected[3], (expected, response.text)
        assert fields(row) == expected
        assert row.request_id == response.headers["x-request-id"]
        assert row.source_ip == "testclient"
        assert utcnow() - row.time < timedelta(seconds=30)
        # Earlier rows are never rewritten.
        assert [fields(r) + (r.id, r.request_id) for r in rows[:-1]] == [
            fields(r) + (r.id, r.request_id) for r in before
        ]


def test_a_request_with_a_very_long_path_is_recorded_too(settings, client, tokens):
    path = "/api/v1/operations/" + "x" * 300 + "/cancel"
    response = client.post(path, headers=bearer(tokens["operator"]))
    assert_error(response, 404, "operation_not_found")
    unknown = client.post("/api/v1/" + "y" * 300, headers=bearer(tokens["operator"]))
    assert_error(unknown, 404, "not_found")
    rows = audit_rows(settings)
    assert len(rows) == 2
    assert rows[0].action == "POST /api/v1/operations/{operation_id}/cancel"
    assert path.startswith(rows[0].target) and len(rows[0].target) == 255
    assert rows[1].action.startswith("POST /api/v1/yyy") and rows[1].status_code == 404


def test_a_locked_out_login_is_recorded_as_denied(settings, client):
    form = {"username": "mallory", "password": "guess"}
    for _ in range(settings.login_max_failures + 1):
        response = client.post("/api/v1/auth/token", data=form)
    assert response.status_code == 429
    rows = audit_rows(settings)
    assert [(r.actor, r.status_code, r.result) for r in rows[-2:]] == [
        ("mallory", 401, "denied"),
        ("mallory", 429, "denied"),
    ]


def test_reading_writes_no_audit_rows(settings, client, tokens):
    before = len(audit_rows(settings))
    for path, token in [
        ("/api/v1/me", tokens["viewer"]),
        ("/api/v1/me", None),
        ("/api/v1/users", tokens["viewer"]),
        ("/api/v1/users/nobody", tokens["admin"]),
        ("/api/v1/operations?limit=0", tokens["viewer"]),
        ("/api/v1/audit", tokens["admin"]),
        ("/api/v1/nowhere", None),
        ("/metrics", tokens["viewer"]),
    ]:
        response = client.get(path, headers=bearer(token) if token else {})
        assert response.status_code in (200, 401, 403, 404, 422)
    assert client.head("/api/v1/health").status_code in (200, 405, 503)
    assert len(audit_rows(settings)) == before


def test_the_audit_log_pages_newest_first_and_filters(settings, client, tokens):
    admin = bearer(tokens["admin"])
    for index in range(4):
        client.post("/api/v1/users", json={**DAVE, "name": f"user{index}"}, headers=admin)
        client.post("/api/v1/system/check", headers=bearer(tokens["viewer"]))
    client.post(
        "/api/v1/operations", json={"kind": "system.noop"}, headers=bearer(tokens["operator"])
    )
    every_id = [row.id for row in reversed(audit_rows(settings))]
    assert len(every_id) == 9

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/audit", params=params, headers=admin).json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == every_id and pages == 5

    newest = client.get("/api/v1/audit", params={"limit": 1}, headers=admin).json()["items"][0]
    assert newest["actor"] == "operator" and newest["action"] == "POST /api/v1/operations"
    assert newest["status_code"] == 202 and newest["result"] == "ok"

    by_viewer = client.get("/api/v1/audit", params={"actor": "viewer"}, headers=admin).json()
    assert [(i["actor"], i["status_code"]) for i in by_viewer["items"]] == [("viewer", 403)] * 4
    by_action = client.get(
        "/api/v1/audit", params={"action": "POST /api/v1/users"}, headers=admin
    ).json()
    assert [i["target"] for i in by_action["items"]] == ["/api/v1/users"] * 4
    # A wildcard in the filter is taken literally.
    none = client.get("/api/v1/audit", params={"action": "%"}, headers=admin).json()
    assert none["items"] == []

    later = (utcnow() + timedelta(minutes=5)).isoformat()
    assert client.get("/api/v1/audit", params={"since": later}, headers=admin).json()["items"] == []
    # A time without a zone is UTC.
    naive = (utcnow() - timedelta(minutes=5)).replace(tzinfo=None).isoformat()
    response = client.get("/api/v1/audit", params={"since": naive, "limit": 500}, headers=admin)
    assert response.status_code == 200 and len(response.json()["items"]) == 9


BAD_CURSORS = [
    "!!!",
    "bm90IGpzb24",  # base64 of "not json"
    encode_cursor("abc"),
    encode_cursor([1]),
    encode_cursor({"id": 1}),
    encode_cursor(1.5),
    encode_cursor(True),
    encode_cursor(0),
    encode_cursor(-3),
    encode_cursor(2**63),
]


def test_a_bad_cursor_is_refused_naming_it(client, tokens):
    for cursor in BAD_CURSORS:
        response = client.get(
            "/api/v1/audit", params={"cursor": cursor}, headers=bearer(tokens["admin"])
        )
        assert response.status_code == 422, (cursor, response.text)
        assert_invalid(response, "cursor")


def test_only_admins_read_the_audit_log(client, tokens):
    for role in ("viewer", "operator"):
        assert_error(client.get("/api/v1/audit", headers=bearer(tokens[role])), 403, "forbidden")
    assert_error(client.get("/api/v1/audit"), 401, "unauthenticated")


def test_no_route_changes_or_deletes_audit_rows(settings, app, client, tokens):
    admin = bearer(tokens["admin"])
    audit_routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if "audit" in path
    }
    assert audit_routes == {("GET", "/api/v1/audit")}
    client.post("/api/v1/users", json=DAVE, headers=admin)
    first = audit_rows(settings)[0]
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert_error(
            client.request(method, "/api/v1/audit", headers=admin), 405, "method_not_allowed"
        )
        for path in (f"/api/v1/audit/{first.id}", f"/api/v1/audits/{first.id}"):
            assert_error(client.request(method, path, headers=admin), 404, "not_found")
    again = audit_rows(settings)[0]
    assert (again.id, fields(again), again.time) == (first.id, fields(first), first.time)
    assert len(audit_rows(settings)) == 1 + 4 * 3


def test_an_api_token_user_is_the_actor(settings, client, tokens):
    token = client.post(
        "/api/v1/tokens", json={"name": "ci", "user": "operator"}, headers=bearer(tokens["admin"])
    ).json()["token"]
    response = client.post("/api/v1/system/check", headers=bearer(token))
    assert response.status_code == 202
    row = audit_rows(settings)[-1]
    assert (row.actor, row.action, row.result) == ("operator", "POST /api/v1/system/check", "ok")


def test_starting_an_operation_writes_its_row_with_the_operation(settings, client, tokens):
    """POST /operations stores its audit row in the operation's own transaction: one row, never
    an operation without one."""
    before = audit_rows(settings)
    response = client.post(
        "/api/v1/operations", json={"kind": "system.noop"}, headers=bearer(tokens["operator"])
    )
    assert response.status_code == 202, response.text
    rows = audit_rows(settings)
    assert len(rows) == len(before) + 1
    row = rows[-1]
    assert fields(row) == (
        "operator",
        "POST /api/v1/operations",
        "/api/v1/operations",
        202,
        "ok",
    )
    assert row.request_id == response.headers["x-request-id"]
    assert row.source_ip == "testclient"
    # A refused start writes its own row, with the refusal.
    refused = client.post(
        "/api/v1/operations", json={"kind": "no.such"}, headers=bearer(tokens["operator"])
    )
    assert refused.status_code >= 400
    last = audit_rows(settings)[-1]
    assert (last.status_code, last.result) == (refused.status_code, "error")
    assert len(audit_rows(settings)) == len(before) + 2


@pytest.mark.parametrize(
    ("path", "body"),
    [("/api/v1/operations", {"kind": "system.noop"}), ("/api/v1/tokens", {"name": "ci"})],
)
def test_the_row_is_stored_before_the_answer_leaves(settings, app, tokens, path, body):
    """A process that dies right after answering has lost no audit row: the row is in the
    database when the response starts."""
    import asyncio
    import json

    payload = json.dumps(body).encode()
    seen: list[tuple[int, int]] = []

    async def call() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"testserver"),
                (b"authorization", f"Bearer {tokens['admin']}".encode()),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
            "client": ("10.0.0.7", 4242),
            "server": ("testserver", 80),
        }
        sent = False

        async def receive() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": payload, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                seen.append((message["status"], len(audit_rows(settings))))

        async with app.router.lifespan_context(app):
            await app(scope, receive, send)

    before = len(audit_rows(settings))
    asyncio.run(call())
    assert seen and seen[0][0] < 300, seen
    assert seen[0][1] == before + 1, "the answer started before its audit row was stored"
    row = audit_rows(settings)[-1]
    assert (row.actor, row.source_ip) == ("admin", "10.0.0.7")

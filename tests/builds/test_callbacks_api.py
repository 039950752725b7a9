"""/api/v1/settings/callback-headers (masked, encrypted, with revisions) and the history list."""

from __future__ import annotations

import pytest

from slipway.builds import callback_headers
from slipway.builds.callback_models import CallbackAttempt
from slipway.core.db import session_scope
from tests.api.helpers import assert_error, database_text
from tests.conftest import bearer

HEADERS = "/api/v1/settings/callback-headers"
SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def test_headers_are_stored_encrypted_shown_masked_and_revised(client, tokens, settings) -> None:
    admin, viewer = bearer(tokens["admin"]), bearer(tokens["viewer"])
    default = client.get(HEADERS, headers=viewer).json()
    assert default["headers"] == {"Content-Type": "application/json"}
    assert (default["source"], default["revision"]) == ("default", None)

    first = {
        "X-BizType": "DROS",
        "Authorization": "Basic dXNlcjpwYXNz",
        "Cookie": "sid=c00kie-value",
        "X-Auth-Token": "tkn-0042-abcd",
        "X-Api-Key": "key-9f9f9f",
        "X-Client-Secret": "sec-1234-zz",
        "X-Password": "pw-hunter2-x",
    }
    saved = client.put(HEADERS, json=first, headers=admin)
    assert saved.status_code == 200, saved.text
    masked = {name: "********" for name in first} | {"X-BizType": "DROS"}
    assert saved.json()["headers"] == masked
    assert client.get(HEADERS, headers=viewer).json() == saved.json()
    assert (saved.json()["source"], saved.json()["revision"]) == ("api", 1)
    assert saved.json()["updated_by"] == "admin"

    # What GET showed can be sent back: a masked value keeps the secret it stands for.
    second = {**masked, "X-BizType": "DROS2", "X-Login-UserId": "1"}
    del second["Cookie"]
    assert client.put(HEADERS, json=second, headers=admin).status_code == 200
    with session_scope(settings) as session:
        current = callback_headers.get_headers(session, settings)
    assert current["Authorization"] == "Basic dXNlcjpwYXNz" and "Cookie" not in current
    assert (current["X-BizType"], current["X-Login-UserId"]) == ("DROS2", "1")

    revisions = client.get(f"{HEADERS}/revisions", headers=viewer).json()
    assert [(r["revision"], r["changes"]) for r in revisions["items"]] == [
        (2, ["added X-Login-UserId", "removed Cookie", "changed X-BizType"]),
        (1, ["created"]),
    ]
    assert revisions["items"][1]["headers"] == masked
    text = database_text(settings) + str(revisions)
    for secret in ("dXNlcjpwYXNz", "c00kie-value", "tkn-0042", "key-9f9f9f", "sec-1234", "hunter2"):
        assert secret not in text


@SQLITE
@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ({"Bad Name": "x"}, "headers.Bad Name", "a header name may only have"),
        ({"X-Colon:": "x"}, "headers.X-Colon:", "a header name may only have"),
        ({"X-Inject": "a\r\nX-Evil: 1"}, "headers.X-Inject", "without CR, LF"),
        ({"X-Nul": "a\x00b"}, "headers.X-Nul", "without CR, LF"),
        ({"X-Long": "v" * 9000}, "headers.X-Long", "at most 8192"),
        ({"X-Number": 1}, "headers.X-Number", "must be a string"),
        ({"Host": "evil.example"}, "headers.Host", "set by slipway"),
        ({"Content-Length": "5"}, "headers.Content-Length", "set by slipway"),
        ({"X-A": "1", "x-a": "2"}, "headers.x-a", "given twice"),
        ({"Authorization": "********"}, "headers.Authorization", "there is none"),
        ({f"X-{n}": "v" for n in range(51)}, "headers", "at most 50"),
    ],
)
def test_bad_headers_are_refused_naming_the_header(client, tokens, body, field, problem) -> None:
    admin = bearer(tokens["admin"])
    error = assert_error(
        client.put(HEADERS, json=body, headers=admin),
        422,
        "invalid_header" if field != "headers" else "invalid_input",
    )
    assert error["details"]["field"] == field and problem in error["message"]
    assert client.get(HEADERS, headers=admin).json()["revision"] is None


@SQLITE
def test_a_body_that_is_not_an_object_is_refused(client, tokens) -> None:
    admin = bearer(tokens["admin"])
    for body in (["X-A", "1"], "X-A: 1"):
        assert_error(client.put(HEADERS, json=body, headers=admin), 422, "invalid_input")


@SQLITE
def test_the_history_is_paged_newest_first_and_filtered(client, tokens, settings) -> None:
    viewer = bearer(tokens["viewer"])
    assert client.get("/api/v1/callbacks", headers=viewer).json() == {
        "items": [],
        "next_cursor": None,
    }
    with session_scope(settings) as session:
        for number, (build, status) in enumerate(
            [("b-1", "failed"), ("b-1", "delivered"), ("b-2", "refused")], start=1
        ):
            session.add(
                CallbackAttempt(
                    build_id=build,
                    operation_id=f"op-{build}",
                    url="https://hooks.example/cb",
                    headers={"Authorization": "********"},
                    body={"n": number},
                    attempt=number,
                    status=status,
                )
            )
    page = client.get("/api/v1/callbacks?limit=2", headers=viewer).json()
    assert [item["body"]["n"] for item in page["items"]] == [3, 2]
    rest = client.get(f"/api/v1/callbacks?cursor={page['next_cursor']}", headers=viewer).json()
    assert [item["body"]["n"] for item in rest["items"]] == [1] and rest["next_cursor"] is None
    only = client.get("/api/v1/callbacks?build_id=b-1&status=delivered", headers=viewer).json()
    assert [item["body"]["n"] for item in only["items"]] == [2]
    assert_error(client.get("/api/v1/callbacks?status=lost", headers=viewer), 422, "invalid_input")
    assert_error(client.get("/api/v1/callbacks?cursor=zz", headers=viewer), 422, "invalid_input")

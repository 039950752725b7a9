"""Every failure leaves the API in one shape, {"error": {code, message, details, request_id}};
every answer carries its request id."""

from __future__ import annotations

import logging
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from slipway.api.app import create_app
from slipway.core.db import session_scope
from slipway.jobs import service as jobs_service
from slipway.jobs.models import Operation
from tests.api.helpers import assert_error, assert_invalid, audit_rows
from tests.conftest import bearer

pytestmark = pytest.mark.usefixtures("cheap_hashes")

GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")
SECRET = "the-database-password-is-hunter2"


@pytest.fixture
def failing_client(settings):
    """An app of its own (not the session's shared one) with one more route, which fails the way
    a bug would."""

    def explode() -> None:
        raise RuntimeError(f"could not connect with {SECRET}")

    app = create_app(settings, run_maintenance=False)
    app.add_api_route("/api/v1/test-explode", explode, methods=["GET", "POST"])
    with TestClient(app) as client:
        yield client


def test_an_unknown_route_is_404_not_found(client, tokens):
    for method, path in [
        ("GET", "/api/v1/nowhere"),
        ("POST", "/nowhere"),
        ("GET", "/api/v1/operations/a/b/c"),
        ("DELETE", "/api/v2/users"),
    ]:
        response = client.request(method, path, headers=bearer(tokens["admin"]))
        error = assert_error(response, 404, "not_found")
        assert path in error["message"] and "/docs" in error["message"]


def test_a_wrong_method_is_405_naming_the_allowed_ones(client, tokens):
    response = client.put("/api/v1/me", headers=bearer(tokens["viewer"]))
    error = assert_error(response, 405, "method_not_allowed")
    assert "PUT" in error["message"]
    assert response.headers["allow"] == "GET"
    assert_error(client.delete("/api/v1/auth/token"), 405, "method_not_allowed")


@pytest.mark.parametrize("body", [b"{bad json", b'{"name": "dave",}', b""])
def test_a_malformed_json_body_is_422_naming_the_body(client, tokens, body):
    headers = {**bearer(tokens["admin"]), "Content-Type": "application/json"}
    response = client.post("/api/v1/users", content=body, headers=headers)
    error = assert_invalid(response, "body")
    assert error["details"]["errors"][0]["field"] == "body"


def test_a_body_that_is_not_an_object_is_422_naming_the_body(client, tokens):
    response = client.post("/api/v1/users", json=["dave"], headers=bearer(tokens["admin"]))
    assert_invalid(response, "body")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("status=bogus", "status"),
    ],
)
def test_a_bad_query_parameter_is_422_naming_it(client, tokens, query, field):
    response = client.get(f"/api/v1/operations?{query}", headers=bearer(tokens["viewer"]))
    error = assert_invalid(response, field)
    assert error["message"].startswith(f"invalid request: {field}:")


def test_an_unknown_status_lists_the_known_ones(client, tokens):
    response = client.get("/api/v1/operations?status=bogus", headers=bearer(tokens["viewer"]))
    problem = assert_invalid(response, "status")["details"]["errors"][0]["problem"]
    assert all(status in problem for status in ("queued", "running", "succeeded", "canceled"))


def test_an_unexpected_error_is_500_internal_without_a_traceback(settings, failing_client, caplog):
    with caplog.at_level(logging.ERROR):
        response = failing_client.get("/api/v1/test-explode")
    error = assert_error(response, 500, "internal")
    request_id = response.headers["x-request-id"]
    assert request_id in error["message"] and error["details"] is None
    for leak in ("Traceback", "RuntimeError", SECRET, ".py", "line "):
        assert leak not in response.text
    # The cause is in the server's log, under the same request id, for whoever investigates.
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged and logged[0].exc_info and SECRET in str(logged[0].exc_info[1])


def test_an_unexpected_error_in_a_mutating_request_is_audited(settings, failing_client):
    response = failing_client.post(
        "/api/v1/test-explode", headers={"X-Request-ID": "incident-2026-0001"}
    )
    error = assert_error(response, 500, "internal")
    assert error["request_id"] == "incident-2026-0001"
    assert "incident-2026-0001" in error["message"]
    row = audit_rows(settings)[-1]
    assert (row.action, row.status_code, row.result, row.request_id) == (
        "POST /api/v1/test-explode",
        500,
        "error",
        "incident-2026-0001",
    )


def test_every_answer_carries_a_request_id(settings, failing_client, tokens):
    client = failing_client
    viewer = bearer(tokens["viewer"])
    answers = {
        200: client.get("/api/v1/me", headers=viewer),
        202: client.post("/api/v1/system/check", headers=bearer(tokens["operator"])),
        401: client.get("/api/v1/me"),
        403: client.get("/api/v1/users", headers=viewer),
        404: client.get("/api/v1/nowhere"),
        405: client.put("/api/v1/me"),
        422: client.get("/api/v1/operations?limit=0", headers=viewer),
        500: client.get("/api/v1/test-explode"),
    }
    ids = set()
    for status, response in answers.items():
        assert response.status_code == status, (status, response.text)
        request_id = response.headers["x-request-id"]
        assert GENERATED_ID.match(request_id)
        if status >= 400:
            assert response.json()["error"]["request_id"] == request_id
        ids.add(request_id)
    assert len(ids) == len(answers)


def test_a_log_stream_carries_a_request_id(settings, client, tokens):
    with session_scope(settings) as session:
        operation = jobs_service.submit(session, settings, kind="system.noop", enqueue=False)
        operation_id = operation.id
    with session_scope(settings) as session:
        session.execute(
            update(Operation).where(Operation.id == operation_id).values(status="succeeded")
        )
    with client.stream(
        "GET",
        f"/api/v1/operations/{operation_id}/logs?follow=true",
        headers={**bearer(tokens["viewer"]), "X-Request-ID": "follow-request-1"},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-request-id"] == "follow-request-1"
        text = "".join(response.iter_text())
    assert "event: end" in text and "succeeded" in text


@pytest.mark.parametrize("request_id", ["abcdef12", "ci-build-4711.step_2", "A" * 64])
def test_a_valid_incoming_request_id_is_kept(settings, client, tokens, request_id):
    headers = {**bearer(tokens["viewer"]), "X-Request-ID": request_id}
    assert client.get("/api/v1/me", headers=headers).headers["x-request-id"] == request_id
    refused = client.post("/api/v1/users", json={}, headers=headers)
    assert assert_error(refused, 403, "forbidden")["request_id"] == request_id
    assert audit_rows(settings)[-1].request_id == request_id


def test_an_invalid_incoming_request_id_is_replaced(client):
    for request_id in ["a b", "x" * 200, "short", "abc/def/ghi", "id;drop", "ünïcode-id"]:
        response = client.get("/api/v1/me", headers={"X-Request-ID": request_id.encode()})
        assert GENERATED_ID.match(response.headers["x-request-id"]), request_id
        assert response.json()["error"]["request_id"] == response.headers["x-request-id"]


def test_a_schedule_time_without_time_zone_is_refused_naming_the_field(client, tokens):
    response = client.post(
        "/api/v1/operations",
        json={"kind": "system.noop", "scheduled_for": "2030-01-01T00:00:00"},
        headers=bearer(tokens["operator"]),
    )
    error = assert_invalid(response, "scheduled_for")
    assert "timezone" in error["message"] or "time zone" in error["message"]
    assert client.get("/api/v1/operations", headers=bearer(tokens["viewer"])).json()["items"] == []

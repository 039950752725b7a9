"""Callbacks delivered by a real worker to a real receiver on 127.0.0.1 (allowed by the test
settings' SLIPWAY_OUTBOUND_ALLOW): headers, retries, failures, refusals, cancel, history, test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from slipway.builds import callbacks
from slipway.core.config import Settings, get_settings
from slipway.core.db import session_scope
from slipway.core.errors import InputError
from tests.api.helpers import assert_error, database_text
from tests.conftest import Processes, bearer, free_port, wait_for
from tests.core.test_outbound import Receiver
from tests.jobs.helpers import load, wait_status

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
HEADERS = "/api/v1/settings/callback-headers"
FAST = (0.05, 0.05)
SECRET = "Bearer s3cret-token-1"
PAYLOAD = {"task_name": "t-1714116639", "status": "succeeded", "image": "reg/ns/app:1"}


@pytest.fixture(autouse=True)
def callback_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Workers register `build.callback` (until slipway.builds.jobs imports it) and may reach
    127.0.0.1; requested before `settings` (autouse), so both the test and its workers see it."""
    values = {
        "SLIPWAY_PLUGINS": "tests.support.kinds,slipway.builds.callbacks",
        "SLIPWAY_OUTBOUND_ALLOW": "127.0.0.1/32",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
        env[name] = value
    get_settings.cache_clear()
    return env


@pytest.fixture
def worker(settings: Settings, processes: Processes) -> Processes:
    processes.worker()
    return processes


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


def send(settings: Settings, url: str, **kwargs: Any) -> str:
    kwargs.setdefault("payload", PAYLOAD)
    kwargs.setdefault("backoff", FAST)
    with session_scope(settings) as session:
        operation = callbacks.request_callback(
            session, settings, url=url, actor="builder", **kwargs
        )
        return operation.id


def attempts(client: Any, headers: dict[str, str], query: str = "") -> list[dict[str, Any]]:
    answer = client.get(f"/api/v1/callbacks{query}", headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


def log_of(client: Any, headers: dict[str, str], operation_id: str) -> str:
    return client.get(f"/api/v1/operations/{operation_id}/logs", headers=headers).text


def test_a_callback_is_delivered_with_the_configured_headers(
    settings, client, tokens, worker, receiver
) -> None:
    admin, viewer = bearer(tokens["admin"]), bearer(tokens["viewer"])
    configured = {
        "X-BizType": "DROS",
        "X-Login-UserId": "1",
        "Content-Type": "application/json",
        "Authorization": SECRET,
    }
    assert client.put(HEADERS, json=configured, headers=admin).status_code == 200

    operation_id = send(settings, f"{receiver.url}/api/app/harbor/image/callback", build_id="b-1")
    done = wait_status(settings, operation_id, "succeeded", "failed")

    assert done.status == "succeeded", done.error
    assert done.result == {
        "url": f"{receiver.url}/api/app/harbor/image/callback",
        "attempts": 1,
        "status_code": 200,
    }
    [seen] = receiver.requests
    assert (seen["method"], seen["path"]) == ("POST", "/api/app/harbor/image/callback")
    assert {name: seen["headers"].get(name) for name in configured} == configured
    assert json.loads(seen["body"]) == PAYLOAD

    [attempt] = attempts(client, viewer)
    assert attempt["headers"] == {**configured, "Authorization": "********"}
    assert (attempt["status"], attempt["status_code"], attempt["attempt"]) == ("delivered", 200, 1)
    assert attempt["body"] == PAYLOAD and attempt["response_excerpt"] == "ok"
    assert (attempt["build_id"], attempt["operation_id"]) == ("b-1", operation_id)
    assert attempt["error"] is None and attempt["is_test"] is False
    log = log_of(client, viewer, operation_id)
    assert "attempt 1/3: delivered, HTTP 200" in log
    assert "s3cret-token-1" not in log
    assert "s3cret-token-1" not in database_text(settings)


@SQLITE
def test_a_receiver_answering_500_then_200_gets_a_second_attempt(
    settings, client, tokens, worker, receiver
) -> None:
    receiver.answer((500, {}, b"busy, try later"), (200, {}, b"thanks"))
    operation_id = send(settings, f"{receiver.url}/hook")
    done = wait_status(settings, operation_id, "succeeded", "failed")

    assert done.status == "succeeded" and done.result["attempts"] == 2
    # Never saved: FastBuild's default headers.
    assert receiver.requests[0]["headers"]["Content-Type"] == "application/json"
    history = attempts(client, bearer(tokens["viewer"]))
    assert [(a["attempt"], a["status"], a["status_code"]) for a in history] == [
        (2, "delivered", 200),
        (1, "failed", 500),
    ]
    assert history[1]["response_excerpt"] == "busy, try later"
    log = log_of(client, bearer(tokens["viewer"]), operation_id)
    assert "attempt 1/3: failed, HTTP 500" in log and "trying again in 0.05 s" in log


@SQLITE
def test_a_receiver_that_always_fails_ends_callback_failed_with_every_attempt_recorded(
    settings, client, tokens, worker, receiver
) -> None:
    receiver.answer((500, {}, b"x" * 5000))
    operation_id = send(settings, f"{receiver.url}/hook", build_id="b-9")
    done = wait_status(settings, operation_id, "succeeded", "failed")

    assert done.status == "failed"
    assert done.error["code"] == "callback_failed"
    assert "failed after 3 attempts; the last got HTTP 500" in done.error["message"]
    assert done.error["details"] == {"status_code": 500, "attempts": 3}
    assert len(receiver.requests) == 3
    history = attempts(client, bearer(tokens["viewer"]), "?build_id=b-9&status=failed")
    assert [a["attempt"] for a in history] == [3, 2, 1]
    assert {len(a["response_excerpt"]) for a in history} == {2048}


@SQLITE
def test_an_unreachable_receiver_is_retried_then_fails(settings, client, tokens, worker) -> None:
    operation_id = send(settings, f"http://127.0.0.1:{free_port()}/hook")
    done = wait_status(settings, operation_id, "succeeded", "failed")

    assert done.error["code"] == "callback_failed"
    assert done.error["details"] == {"status_code": None, "attempts": 3}
    history = attempts(client, bearer(tokens["viewer"]))
    assert [a["error"]["code"] for a in history] == ["connection_failed"] * 3
    assert all(a["status_code"] is None for a in history)


@SQLITE
def test_a_callback_to_a_forbidden_address_is_refused_recorded_and_never_sent(
    settings, client, tokens, worker
) -> None:
    inner = Receiver("127.0.0.2").start()  # loopback, but not in the allow-list 127.0.0.1/32
    try:
        for url in (f"{inner.url}/hook", "http://169.254.169.254/latest/meta-data/"):
            operation_id = send(settings, url)
            done = wait_status(settings, operation_id, "succeeded", "failed")
            assert done.error["code"] == "outbound_forbidden", done.error
            assert "outbound allow-list" in done.error["message"]
            assert done.result["attempts"] == 1
        assert inner.requests == []
    finally:
        inner.stop()
    history = attempts(client, bearer(tokens["viewer"]), "?status=refused")
    assert len(history) == 2
    assert history[1]["error"]["message"].startswith(
        "callback_url: 127.0.0.2 is a loopback address"
    )
    assert history[0]["status_code"] is None and history[0]["duration_ms"] >= 0


@SQLITE
def test_cancel_stops_the_retries(settings, client, tokens, worker, receiver) -> None:
    receiver.answer((503, {}, b"down"))
    operation_id = send(settings, f"{receiver.url}/hook", backoff=(30, 30))
    operator = bearer(tokens["operator"])
    # Waiting between attempts (the line is stored before the wait).
    wait_for(
        lambda: "trying again in 30 s" in log_of(client, operator, operation_id),
        timeout=10,
        what="the wait after the first attempt",
    )
    canceled = client.post(f"/api/v1/operations/{operation_id}/cancel", headers=operator)
    assert canceled.status_code == 200, canceled.text
    done = wait_status(settings, operation_id, "canceled", "failed", "succeeded", timeout=10)
    assert done.status == "canceled", done.error
    assert len(receiver.requests) == 1
    assert len(attempts(client, operator)) == 1


@SQLITE
def test_the_test_endpoint_sends_the_latest_callback_again_with_todays_headers(
    settings, client, tokens, worker, receiver
) -> None:
    admin, operator = bearer(tokens["admin"]), bearer(tokens["operator"])
    assert_error(client.post("/api/v1/callbacks/test", headers=operator), 409, "no_callback_yet")

    client.put(HEADERS, json={"X-BizType": "DROS"}, headers=admin)
    first = send(settings, f"{receiver.url}/hook", build_id="b-2")
    wait_status(settings, first, "succeeded", "failed")
    client.put(HEADERS, json={"X-BizType": "DROS2", "X-Api-Key": "k-123456"}, headers=admin)

    answer = client.post("/api/v1/callbacks/test", headers=operator)
    assert answer.status_code == 202, answer.text
    operation = answer.json()["operation"]
    assert answer.headers["location"].endswith(f"/api/v1/operations/{operation['id']}")
    assert (operation["kind"], operation["actor"], operation["trigger"]) == (
        "build.callback",
        "operator",
        "api",
    )
    done = wait_status(settings, operation["id"], "succeeded", "failed")
    assert done.status == "succeeded"

    assert [r["body"] for r in receiver.requests] == [receiver.requests[0]["body"]] * 2
    assert receiver.requests[0]["headers"]["X-BizType"] == "DROS"
    again = receiver.requests[1]["headers"]
    assert (again["X-BizType"], again["X-Api-Key"]) == ("DROS2", "k-123456")
    latest = attempts(client, operator)[0]
    assert latest["is_test"] is True and latest["build_id"] == "b-2"
    assert latest["headers"] == {"X-BizType": "DROS2", "X-Api-Key": "********"}
    assert load(settings, operation["id"]).params["is_test"] is True


@SQLITE
def test_request_callback_refuses_bad_input_before_submitting(settings) -> None:
    for url, code in (
        ("ftp://example.com/hook", "invalid_url"),
        ("http://user:pass@example.com/hook", "invalid_url"),
        ("hook", "invalid_url"),
    ):
        with pytest.raises(InputError) as caught:
            send(settings, url)
        assert (caught.value.code, caught.value.details) == (code, {"field": "callback_url"})
    with pytest.raises(InputError) as caught:
        send(settings, "http://example.com/hook", payload={"when": object()})
    assert caught.value.details == {"field": "payload"}
    with pytest.raises(InputError):
        send(settings, "http://example.com/hook", backoff=(-1,))

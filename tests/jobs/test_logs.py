"""Operation logs: stored, masked, served as text / JSON lines / SSE, followed live, purged."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, insert, select

from slipway.core.db import session_factory, utcnow
from slipway.jobs import maintenance
from slipway.jobs.logs import MASK, stream_key
from slipway.jobs.models import Operation, OperationLog
from tests.conftest import Processes, bearer, make_user
from tests.jobs.helpers import submit, wait_status


def follow_events(
    url: str,
    token: str,
    op_id: str,
    *,
    last_event_id: int | None = None,
    stop_after: int | None = None,
) -> tuple[list[dict], str | None]:
    """Read SSE events; returns the data of each line event and the final status (None if cut)."""
    headers = bearer(token)
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    lines: list[dict] = []
    event = None
    with httpx.stream(
        "GET",
        f"{url}/api/v1/operations/{op_id}/logs",
        params={"follow": "true"},
        headers=headers,
        timeout=60,
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-request-id"]
        for raw in response.iter_lines():
            if raw.startswith("event: "):
                event = raw[7:]
            elif raw.startswith("id: "):
                seen_id = int(raw[4:])
            elif raw.startswith("data: "):
                data = json.loads(raw[6:])
                if event == "end":
                    return lines, data["status"]
                assert data["seq"] == seen_id
                lines.append(data)
                if stop_after is not None and len(lines) >= stop_after:
                    return lines, None
    return lines, None


@pytest.fixture
def live(settings, processes: Processes) -> tuple[str, str]:
    """A real API and worker, and an operator token."""
    token = make_user(settings, "ops", "operator")
    processes.worker()
    return processes.api(), token


def test_finished_log_as_text_and_json_lines(settings, live):
    url, token = live
    op_id = submit(settings, "test.steps", params={"steps": 2})
    wait_status(settings, op_id, "succeeded")
    text = httpx.get(f"{url}/api/v1/operations/{op_id}/logs", headers=bearer(token)).text
    assert text.splitlines() == [
        "==> step 1",
        "working on step 1",
        "==> step 2",
        "working on step 2",
    ]
    response = httpx.get(
        f"{url}/api/v1/operations/{op_id}/logs",
        headers={**bearer(token), "Accept": "application/x-ndjson"},
    )
    assert response.headers["content-type"].startswith("application/x-ndjson")
    records = [json.loads(line) for line in response.text.splitlines()]
    assert [r["seq"] for r in records] == [1, 2, 3, 4]
    assert records[0]["stream"] == "system" and records[1]["stream"] == "stdout"
    assert records[0]["time"].endswith("Z")


def test_follow_streams_every_line_once_in_order_then_ends(settings, live):
    url, token = live
    op_id = submit(settings, "test.lines", params={"count": 400, "rate": 400})
    lines, status = follow_events(url, token, op_id)
    assert status == "succeeded"
    assert [line["seq"] for line in lines] == list(range(1, 401))
    assert lines[-1]["text"].startswith("line 400 at")


def test_follow_resumes_from_last_event_id_without_loss_or_duplicates(settings, live):
    url, token = live
    op_id = submit(settings, "test.lines", params={"count": 300, "rate": 300})
    first, status = follow_events(url, token, op_id, stop_after=60)
    assert status is None and first[-1]["seq"] == 60
    rest, status = follow_events(url, token, op_id, last_event_id=60)
    assert status == "succeeded"
    assert [line["seq"] for line in first + rest] == list(range(1, 301))


def test_follow_loses_nothing_when_redis_is_flushed_midway(settings, live, redis_client):
    url, token = live
    op_id = submit(settings, "test.lines", params={"count": 600, "rate": 300})
    result: dict = {}

    def reader() -> None:
        result["lines"], result["status"] = follow_events(url, token, op_id)

    thread = threading.Thread(target=reader)
    thread.start()
    wait_status(settings, op_id, "running")
    import time

    time.sleep(0.7)
    redis_client.delete(stream_key(op_id))
    thread.join(timeout=60)
    assert result["status"] == "succeeded"
    assert [line["seq"] for line in result["lines"]] == list(range(1, 601))


def test_follow_of_unknown_operation_is_404(settings, live):
    url, token = live
    response = httpx.get(
        f"{url}/api/v1/operations/5b0b6a0e-0000-4000-8000-000000000000/logs",
        params={"follow": "true"},
        headers=bearer(token),
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "operation_not_found"


def test_bad_last_event_id_is_refused(settings, live):
    url, token = live
    op_id = submit(settings, "test.steps", params={"steps": 1})
    response = httpx.get(
        f"{url}/api/v1/operations/{op_id}/logs",
        params={"follow": "true"},
        headers={**bearer(token), "Last-Event-ID": "abc"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"]["field"] == "Last-Event-ID"


def test_secret_values_are_masked_in_stored_and_streamed_lines(settings, live, redis_client):
    url, token = live
    secret = "hunter2-very-secret"
    op_id = submit(settings, "test.secret", params={"value": secret})
    wait_status(settings, op_id, "succeeded")
    with session_factory(settings)() as session:
        stored = [row.text for row in session.scalars(select(OperationLog))]
    assert any(MASK in text for text in stored)
    assert not any(secret in text for text in stored)
    assert f"child says {MASK}" in stored
    streamed = redis_client.xrange(stream_key(op_id))
    assert streamed and not any(secret.encode() in b"".join(f.values()) for _, f in streamed)
    text = httpx.get(f"{url}/api/v1/operations/{op_id}/logs", headers=bearer(token)).text
    assert secret not in text


def test_purge_removes_lines_past_retention_and_keeps_newer(settings, processes: Processes):
    op_id = submit(settings, "test.steps", params={"steps": 1})
    old = utcnow() - timedelta(days=31)
    with session_factory(settings)() as session:
        session.execute(
            insert(OperationLog),
            [
                {
                    "operation_id": op_id,
                    "seq": 100 + i,
                    "time": old,
                    "stream": "stdout",
                    "text": "old",
                }
                for i in range(5)
            ]
            + [
                {
                    "operation_id": op_id,
                    "seq": 200,
                    "time": utcnow(),
                    "stream": "stdout",
                    "text": "new",
                }
            ],
        )
        session.commit()
        maintenance.schedule_purge(session, settings)
        purge_id = session.scalar(select(Operation.id).where(Operation.kind == "system.purge"))
        assert purge_id is not None
        # A purge ran within the last day: no second one is scheduled.
        maintenance.schedule_purge(session, settings)
        assert session.scalar(select(func.count()).where(Operation.kind == "system.purge")) == 1
    processes.worker()
    done = wait_status(settings, purge_id, "succeeded")
    assert done.result["removed_lines"] == 5
    with session_factory(settings)() as session:
        texts = session.scalars(
            select(OperationLog.text).where(OperationLog.operation_id == op_id)
        ).all()
    assert "old" not in texts and "new" in texts

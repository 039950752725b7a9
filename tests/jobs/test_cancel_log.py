"""Cancelling a running operation loses none of its log lines: while a job runs, its worker alone
numbers the lines, and the "cancel requested" note is one of them."""

from __future__ import annotations

from slipway.core.db import session_factory
from slipway.jobs import logs as oplogs
from slipway.jobs import service
from tests.conftest import Processes, wait_for
from tests.jobs.helpers import running_context, submit, wait_status


def stored(settings, operation_id: str) -> list[tuple[int, str]]:
    with session_factory(settings)() as session:
        return [(line.seq, line.text) for line in oplogs.read_lines(session, operation_id)]


def test_a_cancel_does_not_take_the_number_of_a_line_not_stored_yet(settings, monkeypatch):
    # Lines are stored in batches; keep these two in the batch, published but not stored.
    monkeypatch.setattr(oplogs, "_FLUSH_SECONDS", 3600)
    op_id = submit(settings, "test.steps", enqueue=False)
    ctx = running_context(settings, op_id)
    ctx.log("first line")
    ctx.log("second line")
    assert stored(settings, op_id) == []

    with session_factory(settings)() as session:
        canceled = service.cancel(session, settings, op_id, actor="tester")
    assert canceled.cancel_requested and canceled.status == "running"
    ctx.logs.flush()
    assert stored(settings, op_id) == [(1, "first line"), (2, "second line")]

    # What the worker's monitor does when it hears the request.
    ctx.request_cancel("tester")
    ctx.request_cancel("tester")  # heard twice (pub/sub and heartbeat): noted once
    ctx.logs.flush()

    assert stored(settings, op_id) == [
        (1, "first line"),
        (2, "second line"),
        (3, "cancel requested by tester"),
    ]


def test_a_canceled_running_job_keeps_every_line_in_order(settings, processes: Processes):
    processes.worker()
    op_id = submit(settings, "test.steps", params={"steps": 3, "sleep": 30})
    # Cancel as soon as the first lines are published, before the worker stores them.
    wait_for(lambda: processes_redis_len(settings, op_id) >= 2, timeout=20, what="the first lines")
    with session_factory(settings)() as session:
        service.cancel(session, settings, op_id, actor="tester")
    done = wait_status(settings, op_id, "canceled", timeout=15)
    assert done.error["code"] == "canceled"
    lines = stored(settings, op_id)
    texts = [text for _, text in lines]
    assert [seq for seq, _ in lines] == list(range(1, len(lines) + 1)), lines
    assert texts[:2] == ["==> step 1", "working on step 1"], lines
    assert "cancel requested by tester" in texts
    assert texts[-1].startswith("canceled: "), lines


def processes_redis_len(settings, operation_id: str) -> int:
    from slipway.core.redis import get_redis

    return int(get_redis(settings).xlen(oplogs.stream_key(operation_id)))

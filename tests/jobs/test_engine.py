"""The operations engine against real RQ workers, Redis and both databases."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis as redis_lib

from slipway.core.config import get_settings
from slipway.core.db import session_factory
from slipway.jobs import logs as oplogs
from slipway.jobs import service
from slipway.jobs.kinds import load_kinds
from tests.conftest import Processes, wait_for
from tests.jobs.helpers import load, marks, submit, wait_status


def log_text(settings, operation_id: str) -> str:
    with session_factory(settings)() as session:
        return "\n".join(line.text for line in oplogs.read_lines(session, operation_id))


def test_operation_runs_on_a_worker_with_steps_progress_and_log(settings, processes: Processes):
    processes.worker()
    op_id = submit(settings, "test.steps", params={"steps": 3})
    done = wait_status(settings, op_id, "succeeded")
    assert done.result == {"steps": 3}
    assert (done.progress_done, done.progress_total) == (3, 3)
    assert done.started_at and done.finished_at and done.finished_at >= done.started_at
    text = log_text(settings, op_id)
    assert "==> step 1" in text and "working on step 3" in text


def test_failure_is_stored_with_code_and_message(settings, processes: Processes):
    processes.worker()
    op_id = submit(settings, "test.fail")
    failed = wait_status(settings, op_id, "failed")
    assert failed.error["code"] == "thing_failed"
    assert "fix it and retry" in failed.error["message"]
    assert "about to fail" in log_text(settings, op_id)


def test_unexpected_exception_fails_as_internal_with_secrets_masked(settings, processes: Processes):
    processes.worker()
    op_id = submit(settings, "test.crash", params={"secret": "x"})
    failed = wait_status(settings, op_id, "failed")
    assert failed.error["code"] == "internal"
    assert "ValueError: boom" in failed.error["message"]


def test_kind_with_retries_runs_again_after_backoff(settings, processes: Processes, tmp_path: Path):
    processes.worker()
    mark_file = tmp_path / "marks"
    op_id = submit(settings, "test.flaky", params={"succeed_on": 2, "marks": str(mark_file)})
    done = wait_status(settings, op_id, "succeeded")
    assert done.attempt == 2
    assert [line.split()[1] for line in marks(mark_file)] == ["attempt1", "attempt2"]
    assert "retrying in" in log_text(settings, op_id)


def test_retries_stop_at_max_attempts(settings, processes: Processes, tmp_path: Path):
    processes.worker()
    op_id = submit(settings, "test.flaky", params={"succeed_on": 99, "marks": str(tmp_path / "m")})
    failed = wait_status(settings, op_id, "failed", timeout=30)
    assert failed.attempt == 3
    assert failed.error["code"] == "flaky"
    assert len(marks(tmp_path / "m")) == 3


def test_job_runs_once_even_if_enqueued_twice(settings, processes: Processes, tmp_path: Path):
    from slipway.jobs import queue

    mark_file = tmp_path / "marks"
    op_id = submit(settings, "test.steps", params={"steps": 1, "marks": str(mark_file)})
    queue.enqueue(settings, operation_id=op_id, queue="default", timeout=60)
    processes.worker()
    wait_status(settings, op_id, "succeeded")
    time.sleep(1)
    assert len(marks(mark_file)) == 1


# --- locks and the waiting queue ------------------------------------------------------------------


def test_lock_makes_second_operation_wait_then_run(settings, processes: Processes, tmp_path: Path):
    release = tmp_path / "release"
    mark_file = tmp_path / "marks"
    params = {"path": str(release), "marks": str(mark_file)}
    first = submit(settings, "test.wait_file", params=params, lock_keys=["app:local:web"])
    second = submit(settings, "test.wait_file", params=params, lock_keys=["app:local:web"])
    other = submit(settings, "test.steps", params={"steps": 1}, lock_keys=["app:local:db"])
    assert load(settings, second).status == "waiting"
    assert load(settings, other).status == "queued"
    processes.worker()
    processes.worker()
    wait_status(settings, first, "running")
    wait_status(settings, other, "succeeded")
    time.sleep(0.5)
    assert load(settings, second).status == "waiting"
    release.write_text("go")
    wait_status(settings, first, "succeeded")
    wait_status(settings, second, "succeeded")
    assert [line.split()[0] for line in marks(mark_file)] == [first, second]


def test_capacity_lets_n_run_at_once(settings, processes: Processes, tmp_path: Path):
    release = tmp_path / "release"
    params = {"path": str(release)}
    lock = [{"key": "endpoint-builds:local", "capacity": 2}]
    ids = [submit(settings, "test.wait_file", params=params, lock_keys=lock) for _ in range(3)]
    assert [load(settings, i).status for i in ids] == ["queued", "queued", "waiting"]
    for _ in range(3):
        processes.worker()
    wait_status(settings, ids[0], "running")
    wait_status(settings, ids[1], "running")
    assert load(settings, ids[2]).status == "waiting"
    release.write_text("go")
    for op_id in ids:
        wait_status(settings, op_id, "succeeded")


def test_waiting_operations_can_be_reordered_and_canceled(
    settings, processes: Processes, tmp_path: Path
):
    release = tmp_path / "release"
    mark_file = tmp_path / "marks"
    params = {"path": str(release), "marks": str(mark_file)}
    lock = ["host:prod:web1"]
    holder = submit(settings, "test.wait_file", params=params, lock_keys=lock)
    a = submit(settings, "test.wait_file", params=params, lock_keys=lock)
    b = submit(settings, "test.wait_file", params=params, lock_keys=lock)
    c = submit(settings, "test.wait_file", params=params, lock_keys=lock)
    with session_factory(settings)() as session:
        service.reorder(session, settings, c, to="front")
    with session_factory(settings)() as session:
        service.reorder(session, settings, b, before=a)
    with session_factory(settings)() as session:
        canceled = service.cancel(session, settings, a, actor="tester")
    assert canceled.status == "canceled"
    release.write_text("go")
    processes.worker()
    for op_id in (holder, b, c):
        wait_status(settings, op_id, "succeeded")
    assert [line.split()[0] for line in marks(mark_file)] == [holder, c, b]
    assert "canceled by tester before it started" in log_text(settings, a)


def test_reorder_refuses_operations_that_are_not_waiting(settings):
    from slipway.core.errors import InvalidStateError

    op_id = submit(settings, "test.steps")
    with session_factory(settings)() as session, pytest.raises(InvalidStateError) as caught:
        service.reorder(session, settings, op_id, to="front")
    assert "only waiting operations" in caught.value.message
    assert load(settings, op_id).status == "queued"


# --- cancel ---------------------------------------------------------------------------------------


def test_cancel_queued_operation_never_runs(settings, processes: Processes, tmp_path: Path):
    mark_file = tmp_path / "marks"
    op_id = submit(settings, "test.steps", params={"marks": str(mark_file)})
    with session_factory(settings)() as session:
        assert service.cancel(session, settings, op_id, actor="tester").status == "canceled"
    processes.worker()
    time.sleep(1.5)
    assert load(settings, op_id).status == "canceled"
    assert marks(mark_file) == []


def test_cancel_running_operation_kills_its_child_and_ends_canceled(
    settings, processes: Processes, tmp_path: Path
):
    pidfile = tmp_path / "child.pid"
    processes.worker()
    op_id = submit(settings, "test.child", params={"pidfile": str(pidfile)})
    wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), what="the child to start")
    child_pid = int(pidfile.read_text())
    started = time.monotonic()
    with session_factory(settings)() as session:
        service.cancel(session, settings, op_id, actor="tester")
    done = wait_status(settings, op_id, "canceled", timeout=15)
    assert time.monotonic() - started < 8
    assert done.error["code"] == "canceled"
    wait_for(lambda: not _alive(child_pid), timeout=10, what="the child to die")
    assert "cancel requested by tester" in log_text(settings, op_id)


def test_cancel_of_finished_operation_is_refused_naming_the_state(settings, processes: Processes):
    from slipway.core.errors import InvalidStateError

    processes.worker()
    op_id = submit(settings, "test.steps", params={"steps": 1})
    wait_status(settings, op_id, "succeeded")
    with session_factory(settings)() as session, pytest.raises(InvalidStateError) as caught:
        service.cancel(session, settings, op_id, actor="tester")
    assert "already succeeded" in caught.value.message
    assert load(settings, op_id).status == "succeeded"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


# --- failure modes --------------------------------------------------------------------------------


def test_worker_killed_mid_job_is_detected_as_worker_lost(settings, processes: Processes):
    victim = processes.worker()
    processes.worker()  # the survivor reaps
    op_id = submit(settings, "test.steps", params={"steps": 200, "sleep": 0.2})
    running = wait_status(settings, op_id, "running")
    victim_name = victim.worker_name  # type: ignore[attr-defined]
    if running.worker != victim_name:
        pytest.skip("the other worker took the job")  # pragma: no cover - rare
    killed_at = time.monotonic()
    victim.send_signal(signal.SIGKILL)
    failed = wait_status(settings, op_id, "failed", timeout=60)
    assert time.monotonic() - killed_at < 60
    assert failed.error["code"] == "worker_lost"
    assert victim_name in failed.error["message"]


def test_queued_operations_survive_a_redis_flush_and_run_once(
    settings, processes: Processes, redis_client, tmp_path: Path
):
    mark_file = tmp_path / "marks"
    ids = [
        submit(settings, "test.steps", params={"steps": 1, "marks": str(mark_file)})
        for _ in range(5)
    ]
    redis_client.flushdb()
    processes.worker()
    for op_id in ids:
        wait_status(settings, op_id, "succeeded", timeout=30)
    time.sleep(1)
    ran = [line.split()[0] for line in marks(mark_file)]
    assert sorted(ran) == sorted(ids)


def _lost_from_redis(settings, redis_client, count: int) -> list[str]:
    """Operations queued a minute ago whose RQ jobs are gone (Redis restarted meanwhile)."""
    from sqlalchemy import update

    from slipway.core.db import utcnow
    from slipway.jobs.models import Operation

    ids = [submit(settings, "test.steps", params={"steps": 1}) for _ in range(count)]
    redis_client.flushdb()
    with session_factory(settings)() as session:
        session.execute(
            update(Operation)
            .where(Operation.id.in_(ids))
            .values(queued_at=utcnow() - timedelta(minutes=1))
        )
        session.commit()
    return ids


def test_a_starting_worker_recovers_operations_lost_from_redis_at_once(
    settings, processes: Processes, redis_client
):
    ids = _lost_from_redis(settings, redis_client, 3)
    # No maintenance tick within the test: only the worker's start-up pass can find them, and a
    # burst worker stops as soon as its queues are empty.
    worker = processes.spawn(
        "worker",
        "--burst",
        log_name="burst-worker",
        extra_env={"SLIPWAY_MAINTENANCE_INTERVAL": "3600"},
    )
    assert worker.wait(timeout=60) == 0
    assert [load(settings, op_id).status for op_id in ids] == ["succeeded"] * 3


def test_a_starting_api_enqueues_operations_lost_from_redis_at_once(settings, redis_client):
    import asyncio

    from rq.job import JobStatus

    from slipway.api.app import create_app
    from slipway.jobs import queue

    ids = _lost_from_redis(settings, redis_client, 2)
    app = create_app(settings, run_maintenance=True)

    async def start_and_stop() -> None:
        async with app.router.lifespan_context(app):
            pass

    asyncio.run(start_and_stop())
    assert set(queue.job_statuses(settings, ids).values()) == {JobStatus.QUEUED}


def test_sigterm_lets_the_step_finish_then_fails_cleanly(
    settings, processes: Processes, tmp_path: Path
):
    mark_file = tmp_path / "marks"
    worker = processes.worker()
    op_id = submit(
        settings, "test.steps", params={"steps": 5, "sleep": 1.0, "marks": str(mark_file)}
    )
    wait_for(lambda: len(marks(mark_file)) >= 1, what="step 1 to start")
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=20)
    failed = wait_status(settings, op_id, "failed", timeout=5)
    assert failed.error["code"] == "worker_stopped"
    assert len(marks(mark_file)) == 1  # step 1 finished; step 2 never started
    assert "step 1" in log_text(settings, op_id)


def test_sigterm_requeues_a_resumable_operation_which_resumes_elsewhere(
    settings, processes: Processes, tmp_path: Path
):
    mark_file = tmp_path / "marks"
    worker = processes.worker()
    op_id = submit(
        settings, "test.resumable", params={"steps": 4, "sleep": 0.8, "marks": str(mark_file)}
    )
    wait_for(lambda: len(marks(mark_file)) >= 1, what="step 1 to start")
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=20)
    assert load(settings, op_id).status == "queued"
    processes.worker()
    wait_status(settings, op_id, "succeeded", timeout=30)
    steps = [line.split()[1] for line in marks(mark_file)]
    assert steps == ["step1", "step2", "step3", "step4"]
    assert "skipping step 1" in log_text(settings, op_id)


class PrivateRedis:
    """A redis-server of this test's own, so it can be restarted (losing everything, like the
    machine's Redis, which keeps nothing on disk)."""

    def __init__(self, tmp_path: Path) -> None:
        from tests.conftest import free_port

        self.port = free_port()
        self.dir = tmp_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis_lib.Redis.from_url(self.url)
        wait_for(lambda: _pings(client), timeout=10, what="redis-server")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def _pings(client: redis_lib.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis_lib.RedisError:
        return False


@pytest.fixture
def private_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    monkeypatch.setenv("SLIPWAY_REDIS_URL", server.url)
    get_settings.cache_clear()
    yield server
    server.stop()


def test_queued_operations_survive_a_redis_restart_and_run_once(
    private_redis: PrivateRedis, processes: Processes, tmp_path: Path
):
    settings = get_settings()
    load_kinds(settings)
    processes.env["SLIPWAY_REDIS_URL"] = private_redis.url
    worker = processes.worker_on(private_redis.url)
    mark_file = tmp_path / "marks"
    before = submit(settings, "test.steps", params={"steps": 1, "marks": str(mark_file)})
    wait_status(settings, before, "succeeded")
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=20)
    queued = [
        submit(settings, "test.steps", params={"steps": 1, "marks": str(mark_file)})
        for _ in range(4)
    ]
    private_redis.stop()
    private_redis.start()  # empty: the queue is gone
    processes.worker_on(private_redis.url)
    for op_id in queued:
        wait_status(settings, op_id, "succeeded", timeout=30)
    # An idle worker rides out a restart too.
    private_redis.stop()
    private_redis.start()
    after = submit(settings, "test.steps", params={"steps": 1, "marks": str(mark_file)})
    wait_status(settings, after, "succeeded", timeout=30)
    ran = [line.split()[0] for line in marks(mark_file)]
    assert sorted(ran) == sorted([before, *queued, after])


def test_operation_past_its_timeout_fails_with_code_timeout(settings, processes: Processes):
    processes.worker()
    op_id = submit(settings, "test.steps", params={"steps": 10, "sleep": 1}, timeout=2)
    failed = wait_status(settings, op_id, "failed", timeout=20)
    assert failed.error["code"] == "timeout"
    assert "within 2 s" in failed.error["message"]
    assert failed.finished_at - failed.started_at < timedelta(seconds=4)


def test_scheduled_operation_waits_for_its_time_then_runs(settings, processes: Processes):
    from datetime import UTC, datetime

    processes.worker()
    due = datetime.now(UTC) + timedelta(seconds=2)
    op_id = submit(settings, "test.steps", params={"steps": 1}, scheduled_for=due)
    assert load(settings, op_id).status == "scheduled"
    time.sleep(1)
    assert load(settings, op_id).status == "scheduled"
    done = wait_status(settings, op_id, "succeeded", timeout=15)
    assert done.started_at >= due

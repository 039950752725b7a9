"""What RQ's own tools (`rq info`, the worker registry) see of a slipway worker, which sends
RQ's bookkeeping in fewer round trips than RQ would."""

from __future__ import annotations

from pathlib import Path

import redis as redis_lib
from rq import Worker

from tests.conftest import REDIS_URL, Processes, wait_for
from tests.jobs.helpers import marks, submit, wait_status


def rq_worker(client: redis_lib.Redis, name: str) -> Worker | None:
    return next((w for w in Worker.all(connection=client) if w.name == name), None)


def test_rq_sees_the_worker_busy_then_idle_and_alive(
    settings, processes: Processes, tmp_path: Path
) -> None:
    client = redis_lib.Redis.from_url(REDIS_URL)
    name = processes.worker().worker_name  # type: ignore[attr-defined]
    wait_for(lambda: rq_worker(client, name), what="RQ to list the worker")

    done = [submit(settings, "test.steps", params={"steps": 1}) for _ in range(20)]
    for operation_id in done:
        wait_status(settings, operation_id, "succeeded")
    release = tmp_path / "release"
    mark_file = tmp_path / "marks"
    holding = submit(
        settings, "test.wait_file", params={"path": str(release), "marks": str(mark_file)}
    )
    wait_for(lambda: marks(mark_file), what="the holding operation to start")

    worker = rq_worker(client, name)
    assert worker is not None and worker.get_state() == "busy"
    assert worker.successful_job_count >= 20
    # Alive in RQ's registry for far longer than the few seconds between refreshes.
    assert client.ttl(f"rq:worker:{name}") > 300

    release.touch()
    wait_status(settings, holding, "succeeded")
    wait_for(
        lambda: (found := rq_worker(client, name)) is not None and found.get_state() == "idle",
        what="RQ to show the worker idle",
    )
    assert client.ttl(f"rq:worker:{name}") > 300

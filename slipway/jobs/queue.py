"""The RQ side of operations: one RQ job per operation, with the operation's id as the job id."""

from __future__ import annotations

import logging

import redis
from rq import Queue
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from slipway.core.config import Settings
from slipway.core.redis import get_redis

log = logging.getLogger(__name__)

RUNNER = "slipway.jobs.runner.run_operation"
RESULT_TTL = 24 * 3600


def queue_name(name: str) -> str:
    return f"slipway-{name}"


# One Queue per Redis URL and name: a Queue holds no per-call state, and building one costs a
# serializer check on every enqueue.
_queues: dict[tuple[str, str], Queue] = {}


def get_queue(settings: Settings, name: str) -> Queue:
    cached = _queues.get((settings.redis_url, name))
    if cached is None:
        cached = Queue(queue_name(name), connection=get_redis(settings), serializer=JSONSerializer)
        _queues[(settings.redis_url, name)] = cached
    return cached


def enqueue(settings: Settings, *, operation_id: str, queue: str, timeout: int) -> bool:
    """Put the operation's job on its queue; False when Redis is down (maintenance retries)."""
    return enqueue_many(settings, [(operation_id, queue, timeout)])


def enqueue_many(settings: Settings, jobs: list[tuple[str, str, int]]) -> bool:
    """Put each (operation id, queue, timeout)'s job on its queue, in one round trip to Redis
    (without a pipeline of ours, RQ makes two per job); False when Redis is down (maintenance
    retries)."""
    if not jobs:
        return True
    try:
        pipe = get_redis(settings).pipeline()
        for operation_id, queue, timeout in jobs:
            get_queue(settings, queue).enqueue(
                RUNNER,
                operation_id,
                job_id=operation_id,
                job_timeout=timeout,  # RQ's death penalty enforces the operation's timeout
                result_ttl=RESULT_TTL,
                failure_ttl=RESULT_TTL,
                description=f"operation {operation_id}",
                pipeline=pipe,
            )
        pipe.execute()
        return True
    except redis.RedisError as exc:
        ids = ", ".join(operation_id for operation_id, _, _ in jobs)
        log.warning("could not enqueue operation %s: %s; maintenance will retry", ids, exc)
        return False


def job_statuses(settings: Settings, operation_ids: list[str]) -> dict[str, JobStatus | None]:
    """RQ's state of each operation's job (None: no such job), in one round trip."""
    pipe = get_redis(settings).pipeline(transaction=False)
    for operation_id in operation_ids:
        pipe.hget(Job.key_for(operation_id), "status")
    statuses: dict[str, JobStatus | None] = {}
    for operation_id, raw in zip(operation_ids, pipe.execute(), strict=True):
        try:
            statuses[operation_id] = JobStatus(raw.decode()) if raw else None
        except ValueError:
            statuses[operation_id] = None
    return statuses


def job_failure(settings: Settings, operation_id: str) -> str | None:
    try:
        job = Job.fetch(operation_id, connection=get_redis(settings), serializer=JSONSerializer)
        result = job.latest_result()
    except Exception:
        return None
    return (
        (result.exc_string or "").strip().splitlines()[-1] if result and result.exc_string else None
    )


def remove(settings: Settings, *, operation_id: str) -> None:
    """Drop the operation's job from RQ, if RQ has it (the runner would skip it anyway)."""
    try:
        job = Job.fetch(operation_id, connection=get_redis(settings), serializer=JSONSerializer)
        job.delete()
    except (NoSuchJobError, InvalidJobOperation, redis.RedisError):
        pass

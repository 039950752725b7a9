"""Keeps the database and RQ agreeing: runs in the API and in every worker, every few seconds.

- running operations whose worker stopped heartbeating are failed with `worker_lost`;
- queued operations whose RQ job vanished (Redis restarted or flushed) are enqueued again, and
  ones RQ failed before slipway's runner started are failed with RQ's reason;
- due scheduled operations and waiting operations whose locks are free are started;
- once a day, a `system.purge` operation removes logs past their retention.
Every change is conditional on the row's current state, so two processes doing this at once agree.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import redis
from rq.job import JobStatus
from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.core.config import Settings
from slipway.core.db import hold_mutex, session_factory, utcnow
from slipway.core.redis import get_redis, key
from slipway.jobs import locks, queue, service
from slipway.jobs.models import Operation, OperationStatus, Trigger

log = logging.getLogger(__name__)

PURGE_KIND = "system.purge"
PURGE_EVERY = timedelta(days=1)
# A queued job RQ has not started after this long is looked up in RQ.
QUEUED_GRACE = timedelta(seconds=3)


def reap_lost(session: Session, settings: Settings) -> list[str]:
    cutoff = utcnow() - timedelta(seconds=settings.worker_lost_after)
    lost = session.scalars(
        select(Operation).where(
            Operation.status == OperationStatus.running, Operation.heartbeat_at < cutoff
        )
    ).all()
    reaped = []
    for operation in lost:
        session.refresh(operation, with_for_update=not settings.is_sqlite)
        if operation.status != OperationStatus.running or (
            operation.heartbeat_at and operation.heartbeat_at >= cutoff
        ):
            session.rollback()
            continue
        worker = operation.worker or "its worker"
        message = (
            f"{worker} stopped answering during the operation (no heartbeat for "
            f"{settings.worker_lost_after:g} s); it was killed or lost its connection"
        )
        service.finish_unclaimed(
            session,
            settings,
            operation,
            status=OperationStatus.failed,
            error={"code": "worker_lost", "message": message},
            note=f"failed: {message}",
        )
        log.warning("operation %s: %s", operation.id, message)
        reaped.append(operation.id)
    return reaped


def requeue_missing(session: Session, settings: Settings) -> list[str]:
    cutoff = utcnow() - QUEUED_GRACE
    stale = session.execute(
        select(Operation.id, Operation.queued_at).where(
            Operation.status == OperationStatus.queued, Operation.queued_at < cutoff
        )
    ).all()
    if not stale:
        return []
    # A backlog is normal under load: one round trip for all of it, and rows only for the few
    # that need something done.
    statuses = queue.job_statuses(settings, [row.id for row in stale])
    just_started = utcnow() - timedelta(seconds=settings.worker_lost_after)
    suspects = [
        row.id
        for row in stale
        if statuses[row.id] not in (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED)
        # a worker picked it up a moment ago and is about to claim it
        and not (
            statuses[row.id] == JobStatus.STARTED and row.queued_at and row.queued_at > just_started
        )
    ]
    if not suspects:
        return []
    requeued = []
    for operation in session.scalars(select(Operation).where(Operation.id.in_(suspects))).all():
        if operation.status != OperationStatus.queued:
            continue
        status = statuses[operation.id]
        if status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
            reason = queue.job_failure(settings, operation.id) or f"RQ reports the job {status}"
            service.finish_unclaimed(
                session,
                settings,
                operation,
                status=OperationStatus.failed,
                error={"code": "job_failed", "message": reason},
                note=f"failed before it started: {reason}",
            )
            continue
        if queue.enqueue(
            settings, operation_id=operation.id, queue=operation.queue, timeout=operation.timeout
        ):
            operation.queued_at = utcnow()
            session.commit()
            log.warning("operation %s was missing from its queue; enqueued again", operation.id)
            requeued.append(operation.id)
    return requeued


def start_due(session: Session, settings: Settings) -> None:
    due = session.scalars(
        select(Operation).where(
            Operation.status == OperationStatus.scheduled, Operation.scheduled_for <= utcnow()
        )
    ).all()
    if due:
        service.dispatch(session, settings, list(due))
    if session.scalar(
        select(Operation.id).where(Operation.status == OperationStatus.waiting).limit(1)
    ):
        hold_mutex(session, "dispatch")
        promoted = locks.promote_waiting(session)
        session.commit()
        service.enqueue_all(settings, promoted)


def schedule_purge(session: Session, settings: Settings) -> None:
    last = session.scalar(
        select(Operation.created_at)
        .where(Operation.kind == PURGE_KIND)
        .order_by(Operation.created_at.desc())
        .limit(1)
    )
    if last is None or last < utcnow() - PURGE_EVERY:
        service.submit(
            session,
            settings,
            kind=PURGE_KIND,
            trigger=Trigger.system,
            actor="system",
            lock_keys=["system:purge"],
        )


def tick(settings: Settings) -> None:
    """One maintenance pass; at most one process runs it per interval."""
    try:
        if not get_redis(settings).set(
            key("maintenance"), "1", nx=True, px=int(settings.maintenance_interval * 900)
        ):
            return
    except redis.RedisError:
        pass  # without Redis nothing can be enqueued, but lost workers are still reaped
    run_pass(settings)


def run_pass(settings: Settings) -> None:
    """One maintenance pass, whether another process runs one or not (each change is conditional
    on the row's state). Every API and worker process runs one as it starts: it recovers at once
    from what happened while it was down, and the first pass's own costs (compiling its
    statements, scheduling the first purge: ~30 ms, half of it CPU) are paid before any request
    or job could wait behind them."""
    with session_factory(settings)() as session:
        for task in (reap_lost, requeue_missing, start_due, schedule_purge):
            try:
                task(session, settings)  # type: ignore[operator]
            except Exception:
                session.rollback()
                log.exception("maintenance task %s failed", task.__name__)

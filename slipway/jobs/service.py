"""Operations: submit, read, cancel, reorder, and the state changes every job goes through."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Required, TypedDict, Unpack

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.orm import Session

from slipway.core.config import Settings
from slipway.core.db import hold_mutex, utcnow
from slipway.core.errors import InputError, InvalidStateError, NotFoundError
from slipway.core.redis import get_redis, key
from slipway.jobs import locks, queue
from slipway.jobs.inserts import Companions, insert_at_once, insert_new, insert_rows, is_clean
from slipway.jobs.kinds import get_kind
from slipway.jobs.logs import append_system_line, end_stream
from slipway.jobs.models import (
    FINAL_STATUSES,
    Operation,
    OperationLock,
    OperationStatus,
    Trigger,
)

CANCEL_CHANNEL = key("cancel")


def _next_position() -> int:
    return time.time_ns() // 1000


class OperationFields(TypedDict, total=False):
    """What a caller says about a new operation; the rest comes from its kind."""

    kind: Required[str]
    subject: str | None
    params: dict[str, Any] | None
    actor: str | None
    trigger: Trigger | str
    lock_keys: list[Any] | None
    timeout: int | None
    max_attempts: int | None


_FIELD_NAMES = OperationFields.__required_keys__ | OperationFields.__optional_keys__


def new_operation(**fields: Unpack[OperationFields]) -> Operation:
    """A queued operation of `kind`, not stored yet, with the kind's queue and limits."""
    unknown = fields.keys() - _FIELD_NAMES
    if unknown:  # a misspelt keyword must not be dropped silently (no type checker runs here)
        raise TypeError(f"new_operation() got unexpected keywords: {', '.join(sorted(unknown))}")
    spec = get_kind(fields["kind"])
    return Operation(
        kind=fields["kind"],
        subject=fields.get("subject"),
        params=fields.get("params") or {},
        actor=fields.get("actor"),
        trigger=str(fields.get("trigger", Trigger.api)),
        queue=spec.queue,
        lock_keys=[lock.to_dict() for lock in locks.parse_lock_keys(fields.get("lock_keys"))],
        position=_next_position(),
        timeout=fields.get("timeout") or spec.timeout,
        max_attempts=fields.get("max_attempts") or spec.max_attempts,
        status=OperationStatus.queued,
        state={},
    )


def submit(
    session: Session,
    settings: Settings,
    *,
    scheduled_for: datetime | None = None,
    enqueue: bool = True,
    also_insert: Companions = (),
    **fields: Unpack[OperationFields],
) -> Operation:
    """Record a new operation and start it: queued, waiting for its locks, or scheduled.

    Commits the session (with whatever the caller added to it) before enqueueing, so a worker
    never sees a job whose row does not exist yet. With `enqueue=False` the caller runs it itself.
    `also_insert` rows (table, values) are stored in the operation's transaction: the audit row
    of the request that started it.
    """
    operation = new_operation(**fields)
    if scheduled_for is not None and scheduled_for > utcnow():
        operation.status = OperationStatus.scheduled
        operation.scheduled_for = scheduled_for
        session.add(operation)
        insert_rows(session, also_insert)
        session.commit()
        return operation
    if operation.lock_keys:
        session.add(operation)
        insert_rows(session, also_insert)
        dispatch(session, settings, [operation], enqueue=enqueue)
        return operation
    # Nothing to wait for: queued at once, as `dispatch` would, in one INSERT.
    operation.created_at = operation.queued_at = utcnow()
    if not settings.is_sqlite and is_clean(session):
        # Nothing else to commit: the operation and its companion rows in one statement on the
        # autocommit pool, one round trip instead of five (ping, BEGIN, the INSERTs, COMMIT).
        insert_at_once(settings, session, operation, also_insert)
    else:
        insert_new(session, operation)
        insert_rows(session, also_insert)
        session.commit()
    if enqueue:
        enqueue_all(settings, [operation])
    return operation


def dispatch(
    session: Session, settings: Settings, operations: list[Operation], *, enqueue: bool = True
) -> None:
    """Queue each operation whose locks are free and leave the others waiting.

    Commits, then enqueues."""
    ready = []
    if any(op.lock_keys for op in operations):
        hold_mutex(session, "dispatch")
    for operation in operations:
        if not operation.lock_keys:
            operation.status = OperationStatus.queued
            operation.queued_at = utcnow()
            ready.append(operation)
            continue
        session.flush()
        have = set(
            session.scalars(
                select(OperationLock.key).where(OperationLock.operation_id == operation.id)
            )
        )
        for lock in operation.lock_keys:
            if lock["key"] not in have:
                session.add(
                    OperationLock(
                        operation_id=operation.id, key=lock["key"], capacity=lock["capacity"]
                    )
                )
        session.flush()
        if locks.try_grant(session, operation):
            operation.status = OperationStatus.queued
            operation.queued_at = utcnow()
            ready.append(operation)
        else:
            operation.status = OperationStatus.waiting
    session.commit()
    if enqueue:
        enqueue_all(settings, ready)
    return operation


def get(session: Session, operation_id: str) -> Operation | None:
    return session.get(Operation, operation_id)


def get_or_raise(session: Session, operation_id: str) -> Operation:
    operation = session.get(Operation, operation_id)
    if operation is None:
        raise NotFoundError(f"operation {operation_id} does not exist", code="operation_not_found")
    return operation


@dataclass(frozen=True)
class OperationFilter:
    kind: str | None = None
    status: str | None = None
    subject: str | None = None
    actor: str | None = None


def list_(
    session: Session, *, filters: OperationFilter, limit: int, cursor: tuple[datetime, str] | None
) -> tuple[list[Operation], tuple[datetime, str] | None]:
    """Newest first; the cursor is the (created_at, id) of the last item of the previous page."""
    query = select(Operation)
    if filters.kind:
        query = query.where(Operation.kind == filters.kind)
    if filters.status:
        query = query.where(Operation.status == filters.status)
    if filters.subject:
        query = query.where(Operation.subject == filters.subject)
    if filters.actor:
        query = query.where(Operation.actor == filters.actor)
    if cursor is not None:
        # A row-value comparison is an index range on (created_at, id); the equivalent
        # `a < x OR (a = x AND b < y)` makes PostgreSQL filter every row above the cursor.
        query = query.where(tuple_(Operation.created_at, Operation.id) < tuple_(*cursor))
    rows = session.scalars(
        query.order_by(Operation.created_at.desc(), Operation.id.desc()).limit(limit + 1)
    ).all()
    items = list(rows[:limit])
    next_cursor = (items[-1].created_at, items[-1].id) if len(rows) > limit else None
    return items, next_cursor


# --- ending operations --------------------------------------------------------------------------


def finish_unclaimed(
    session: Session,
    settings: Settings,
    operation: Operation,
    *,
    status: OperationStatus,
    error: dict[str, Any] | None,
    note: str,
) -> None:
    """End an operation no job is running (canceled while queued, lost worker); commits."""
    hold_mutex(session, "dispatch")
    operation.status = status
    operation.error = error
    operation.finished_at = utcnow()
    locks.release(session, operation.id)
    last_seq = append_system_line(settings, session, operation.id, note)
    promoted = locks.promote_waiting(session)
    session.commit()
    end_stream(settings, operation.id, status, last_seq=last_seq)
    enqueue_all(settings, promoted)


def release_and_promote(session: Session, settings: Settings, operation_id: str) -> None:
    """After a job ended: free its locks and start whoever waited for them; commits."""
    hold_mutex(session, "dispatch")
    locks.release(session, operation_id)
    promoted = locks.promote_waiting(session)
    session.commit()
    enqueue_all(settings, promoted)


def enqueue_all(settings: Settings, operations: list[Operation]) -> None:
    queue.enqueue_many(settings, [(op.id, op.queue, op.timeout) for op in operations])


# --- cancel and reorder -------------------------------------------------------------------------


def cancel(
    session: Session, settings: Settings, operation_id: str, *, actor: str | None
) -> Operation:
    """Cancel: removed at once when not running yet; stopped at its next step when running."""
    operation = get_or_raise(session, operation_id)
    who = actor or "someone"
    if operation.status in FINAL_STATUSES:
        raise InvalidStateError(
            f"operation {operation_id} is already {operation.status}; only scheduled, waiting, "
            "queued or running operations can be canceled",
            details={"status": operation.status},
        )
    if operation.status != OperationStatus.running:
        claimed = session.execute(
            update(Operation)
            .where(Operation.id == operation_id, Operation.status == operation.status)
            .values(cancel_requested=True)
        )
        if claimed.rowcount == 1:  # type: ignore[attr-defined]
            session.refresh(operation)
            finish_unclaimed(
                session,
                settings,
                operation,
                status=OperationStatus.canceled,
                error={"code": "canceled", "message": f"canceled by {who} before it started"},
                note=f"canceled by {who} before it started",
            )
            queue.remove(settings, operation_id=operation_id)
            return operation
        session.rollback()
        operation = get_or_raise(session, operation_id)
        if operation.status in FINAL_STATUSES:
            return operation
    session.execute(
        update(Operation).where(Operation.id == operation_id).values(cancel_requested=True)
    )
    session.commit()
    # The running job's worker writes the "cancel requested" line: while a job runs, its log has
    # one writer, which numbers the lines. A line numbered here could take the number of a line
    # the job has published but not stored yet, and one of the two would be lost.
    try:
        pipe = get_redis(settings).pipeline(transaction=False)
        pipe.set(cancel_by_key(operation_id), who, ex=CANCEL_BY_TTL)
        pipe.publish(CANCEL_CHANNEL, cancel_message(operation_id, who))
        pipe.execute()
    except Exception:  # the worker also sees the flag on its next heartbeat
        pass
    session.refresh(operation)
    return operation


def cancel_by_key(operation_id: str) -> str:
    """Who asked to cancel a running operation, for its worker's log line."""
    return key("cancel-by", operation_id)


CANCEL_BY_TTL = 24 * 3600


def cancel_message(operation_id: str, who: str) -> str:
    return f"{operation_id} {who}"


def parse_cancel_message(data: bytes | str) -> tuple[str, str | None]:
    """(operation id, who asked) of a CANCEL_CHANNEL message; an older process sends the id
    alone."""
    text = data.decode(errors="replace") if isinstance(data, bytes) else data
    operation_id, _, who = text.partition(" ")
    return operation_id, who or None


def reorder(
    session: Session,
    settings: Settings,
    operation_id: str,
    *,
    before: str | None = None,
    after: str | None = None,
    to: str | None = None,
) -> Operation:
    """Move a waiting operation in the waiting order: before/after another one, or to front/back."""
    if sum(x is not None for x in (before, after, to)) != 1:
        raise InputError("give exactly one of before, after or to", field="before")
    hold_mutex(session, "dispatch")
    operation = get_or_raise(session, operation_id)
    if operation.status != OperationStatus.waiting:
        raise InvalidStateError(
            f"operation {operation_id} is {operation.status}; only waiting operations can be "
            "reordered",
            details={"status": operation.status},
        )
    waiting_positions = select(Operation.position).where(
        Operation.status == OperationStatus.waiting, Operation.id != operation_id
    )
    if to is not None:
        if to not in ("front", "back"):
            raise InputError("`to` must be front or back", field="to")
        if to == "front":
            first = session.scalar(select(func.min(waiting_positions.subquery().c.position)))
            operation.position = (first if first is not None else operation.position) - 1
        else:
            last = session.scalar(select(func.max(waiting_positions.subquery().c.position)))
            operation.position = (last if last is not None else operation.position) + 1
    else:
        anchor_id = before or after
        assert anchor_id is not None
        anchor = get_or_raise(session, anchor_id)
        if anchor.status != OperationStatus.waiting:
            raise InvalidStateError(
                f"operation {anchor_id} is {anchor.status}, not waiting; pick a waiting one",
                details={"status": anchor.status},
            )
        _move_next_to(session, operation, anchor, place_before=before is not None)
    session.flush()
    promoted = locks.promote_waiting(session)
    session.commit()
    enqueue_all(settings, promoted)
    session.refresh(operation)
    return operation


def _move_next_to(
    session: Session, operation: Operation, anchor: Operation, *, place_before: bool
) -> None:
    """Positions are sparse integers; shift the anchor's side by one to make room."""
    if place_before:
        session.execute(
            update(Operation)
            .where(
                Operation.status == OperationStatus.waiting, Operation.position < anchor.position
            )
            .values(position=Operation.position - 1)
        )
        operation.position = anchor.position - 1
    else:
        session.execute(
            update(Operation)
            .where(
                Operation.status == OperationStatus.waiting, Operation.position > anchor.position
            )
            .values(position=Operation.position + 1)
        )
        operation.position = anchor.position + 1

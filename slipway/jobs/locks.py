"""Lock keys with capacities, and the ordered waiting queue in front of them.

An operation needs all its keys at once. A key with capacity N lets N operations hold it. Waiting
operations are granted strictly in `position` order per key, so a late arrival never overtakes.
Every decision runs under the `dispatch` mutex, so API replicas and workers agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from slipway.core.db import utcnow
from slipway.core.errors import InputError
from slipway.jobs.models import Operation, OperationLock, OperationStatus

MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class LockKey:
    key: str
    capacity: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "capacity": self.capacity}


def parse_lock_keys(raw: list[str | dict[str, Any] | LockKey] | None) -> list[LockKey]:
    keys: dict[str, LockKey] = {}
    for item in raw or []:
        if isinstance(item, LockKey):
            lock = item
        elif isinstance(item, str):
            lock = LockKey(item)
        else:
            lock = LockKey(str(item.get("key", "")), int(item.get("capacity", 1)))
        if not lock.key or len(lock.key) > MAX_KEY_LENGTH:
            raise InputError(
                f"lock key must be 1 to {MAX_KEY_LENGTH} characters", field="lock_keys"
            )
        if lock.capacity < 1:
            raise InputError(f"lock {lock.key!r} needs a capacity of at least 1", field="lock_keys")
        keys[lock.key] = lock
    return list(keys.values())


def try_grant(session: Session, operation: Operation) -> bool:
    """Grant all of `operation`'s keys if each has room and nobody waits ahead.

    The caller holds the dispatch mutex."""
    wanted = session.scalars(
        select(OperationLock).where(OperationLock.operation_id == operation.id)
    ).all()
    for lock in wanted:
        if lock.is_held:
            continue
        held = session.scalar(
            select(func.count())
            .select_from(OperationLock)
            .where(OperationLock.key == lock.key, OperationLock.is_held.is_(True))
        )
        if (held or 0) >= lock.capacity:
            return False
        waiting_ahead = session.scalar(
            select(func.count())
            .select_from(OperationLock)
            .join(Operation, Operation.id == OperationLock.operation_id)
            .where(
                OperationLock.key == lock.key,
                OperationLock.is_held.is_(False),
                Operation.status == OperationStatus.waiting,
                Operation.position < operation.position,
            )
        )
        if waiting_ahead:
            return False
    for lock in wanted:
        lock.is_held = True
    return True


def release(session: Session, operation_id: str) -> None:
    session.execute(delete(OperationLock).where(OperationLock.operation_id == operation_id))


def promote_waiting(session: Session) -> list[Operation]:
    """Move every waiting operation whose keys are now free to `queued`, in order; caller holds
    the mutex and enqueues what this returns after committing."""
    waiting = session.scalars(
        select(Operation)
        .where(Operation.status == OperationStatus.waiting)
        .order_by(Operation.position)
    ).all()
    promoted = []
    for operation in waiting:
        if try_grant(session, operation):
            operation.status = OperationStatus.queued
            operation.queued_at = utcnow()
            promoted.append(operation)
    return promoted

"""The one RQ job function: runs an operation by id, and records how it ended.

Two statements touch the operation's row per run: the claim and the record, each one `UPDATE …
RETURNING` built once at import (SQLAlchemy then reuses their compiled form), run on a plain
connection of the autocommit pool (one statement is its own transaction: no BEGIN and COMMIT round
trips, and no ping before it; on PostgreSQL handed to the driver directly: see `core.db.
execute_on_driver`), without ORM objects; everything else the run needs comes back from the claim.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from rq.timeouts import JobTimeoutException
from sqlalchemy import JSON, bindparam, case, update
from sqlalchemy.exc import SQLAlchemyError

from slipway.core.config import get_settings
from slipway.core.db import execute_on_driver, session_factory, utcnow
from slipway.core.errors import SlipwayError
from slipway.jobs import active, queue, service
from slipway.jobs.context import OperationCanceledError, OperationContext, WorkerStoppingError
from slipway.jobs.kinds import KindSpec, get_kind
from slipway.jobs.models import FINAL_STATUSES, Operation, OperationStatus

log = logging.getLogger(__name__)

_ops = Operation.__table__.c


def _param(name: str, column: Any) -> Any:
    return bindparam(name, type_=column.type)


def _json_param(name: str) -> Any:
    # None is SQL NULL, as for a column never set, rather than the JSON value null.
    return bindparam(name, type_=JSON(none_as_null=True))


_CLAIM = (
    update(Operation.__table__)
    .where(
        _ops.id == bindparam("operation_id"),
        _ops.status == OperationStatus.queued.value,
        _ops.cancel_requested.is_(False),
    )
    .values(
        status=OperationStatus.running.value,
        started_at=_param("now", _ops.started_at),
        heartbeat_at=_param("now", _ops.heartbeat_at),
        worker=bindparam("worker_name"),
    )
    .returning(
        _ops.kind,
        _ops.params,
        _ops.state,
        _ops.attempt,
        _ops.max_attempts,
        _ops.queue,
        _ops.timeout,
        _ops.lock_keys,
    )
)

# The outcome is written only while the row is still `running`: the reaper may have ended it.
_RUNNING = update(Operation.__table__).where(
    _ops.id == bindparam("operation_id"), _ops.status == OperationStatus.running.value
)
_END = _RUNNING.values(
    status=bindparam("new_status"),
    result=_json_param("new_result"),
    error=_json_param("new_error"),
    finished_at=_param("now", _ops.finished_at),
    state=_param("new_state", _ops.state),
).returning(_ops.id)
_SUCCEED = _END.values(
    progress_done=case((_ops.progress_total > 0, _ops.progress_total), else_=_ops.progress_done)
)
_RETRY = _RUNNING.values(
    status=OperationStatus.scheduled.value,
    scheduled_for=_param("retry_at", _ops.scheduled_for),
    attempt=_ops.attempt + 1,
    error=_json_param("new_error"),
    state=_param("new_state", _ops.state),
).returning(_ops.id)
_REQUEUE = _RUNNING.values(
    status=OperationStatus.queued.value, state=_param("new_state", _ops.state)
).returning(_ops.id)


@dataclass(frozen=True)
class Claim:
    """What the claim read from the row: all the run needs besides the context."""

    attempt: int
    max_attempts: int
    queue: str
    timeout: int
    lock_keys: list[dict[str, Any]]


def run_operation(operation_id: str) -> str:
    """Run the operation if it is still queued; a second call for the same id does nothing."""
    settings = get_settings()
    row = execute_on_driver(
        settings,
        _CLAIM,
        {"operation_id": operation_id, "now": utcnow(), "worker_name": active.worker_name()},
    )
    if row is None:
        log.info("operation %s is not queued any more; nothing to do", operation_id)
        return "skipped"
    claim = Claim(
        attempt=row.attempt,
        max_attempts=row.max_attempts,
        queue=row.queue,
        timeout=row.timeout,
        lock_keys=row.lock_keys or [],
    )
    spec = get_kind(row.kind)
    ctx = OperationContext(
        operation_id=operation_id,
        kind=row.kind,
        params=dict(row.params or {}),
        state=dict(row.state or {}),
        attempt=row.attempt,
        settings=settings,
    )
    active.register(ctx)
    started = time.perf_counter()
    try:
        outcome = _execute(spec, ctx, claim)
    finally:
        active.unregister(operation_id)
        ctx.kill_children()
    _record(ctx, spec, claim, **outcome)
    error = outcome["error"] or {}
    log.info(
        "operation %s kind=%s status=%s duration=%.3fs attempt=%d%s",
        operation_id,
        ctx.kind,
        outcome["status"],
        time.perf_counter() - started,
        ctx.attempt,
        f" error={error['code']}" if error else "",
    )
    return str(outcome["status"])


def _execute(spec: KindSpec, ctx: OperationContext, claim: Claim) -> dict[str, Any]:
    """Run the handler and translate how it ended into the operation's final fields."""
    if ctx.attempt > 1:
        ctx.log(f"attempt {ctx.attempt}", "system")
    try:
        ctx.check()
        result = spec.handler(ctx)
        ctx.check()
        return {"status": OperationStatus.succeeded, "result": result, "error": None}
    except OperationCanceledError:
        return _ended(ctx, OperationStatus.canceled, "canceled", _cancel_message(ctx))
    except WorkerStoppingError as exc:
        if spec.is_resumable:
            return {"status": OperationStatus.queued, "result": None, "error": None}
        return _ended(
            ctx,
            OperationStatus.failed,
            "worker_stopped",
            f"{exc.message}; the operation stopped cleanly and can be run again",
        )
    except JobTimeoutException:
        return _ended(
            ctx, OperationStatus.failed, "timeout", f"did not finish within {claim.timeout} s"
        )
    except SlipwayError as exc:
        if ctx.is_canceled:
            return _ended(ctx, OperationStatus.canceled, "canceled", _cancel_message(ctx))
        ended = _ended(ctx, OperationStatus.failed, exc.code, exc.message, details=exc.details)
        ended["result"] = getattr(exc, "result", None)
        return ended
    except SystemExit:
        _record(
            ctx,
            spec,
            claim,
            **_ended(ctx, OperationStatus.failed, "worker_stopped", "the worker was shut down"),
        )
        raise
    except Exception as exc:
        log.error("operation %s failed unexpectedly:\n%s", ctx.operation_id, traceback.format_exc())
        text = ctx.masker.mask(f"{type(exc).__name__}: {exc}")
        return _ended(ctx, OperationStatus.failed, "internal", f"unexpected error: {text}")


def _cancel_message(ctx: OperationContext) -> str:
    step = f" during step {ctx.current_step}" if ctx.current_step else ""
    return f"canceled{step}"


def _ended(
    ctx: OperationContext,
    status: OperationStatus,
    code: str,
    message: str,
    details: Any = None,
) -> dict[str, Any]:
    ctx.log(f"{status}: {message}", "system")
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"status": status, "result": None, "error": error}


def _record(
    ctx: OperationContext,
    spec: KindSpec,
    claim: Claim,
    *,
    status: OperationStatus,
    result: dict[str, Any] | None,
    error: dict[str, Any] | None,
) -> None:
    """Write the outcome, unless someone (the reaper) already ended the operation."""
    settings = ctx.settings
    values: dict[str, Any] = {"operation_id": ctx.operation_id, "new_state": ctx.state}
    retry_in: float | None = None
    if status == OperationStatus.queued:
        statement = _REQUEUE
        note = "worker stopping; the operation goes back to the queue and resumes"
    elif status == OperationStatus.failed and claim.attempt < claim.max_attempts:
        retry_in = spec.retry_backoff * (2 ** (claim.attempt - 1))
        statement = _RETRY
        values.update(new_error=error, retry_at=utcnow() + timedelta(seconds=retry_in))
        note = f"attempt {claim.attempt} failed; retrying in {retry_in:g} s"
    else:
        statement = _SUCCEED if status == OperationStatus.succeeded else _END
        values.update(new_status=status.value, new_result=result, new_error=error, now=utcnow())
        note = None
    # Lines first, so that whoever sees the outcome finds every line stored; failing to store
    # them (the database unreachable for a moment) must not cost the outcome.
    try:
        ctx.logs.flush()
    except SQLAlchemyError:
        log.exception("could not store the last log lines of operation %s", ctx.operation_id)
    is_recorded = execute_on_driver(settings, statement, values) is not None
    if not is_recorded:
        log.warning("operation %s was ended elsewhere; keeping that outcome", ctx.operation_id)
        return
    if note is not None:
        ctx.log(note, "system")
    is_final = status in FINAL_STATUSES and retry_in is None
    if is_final:
        ctx.logs.end(status)
    else:
        ctx.logs.flush()
    if (is_final or retry_in is not None) and claim.lock_keys:
        with session_factory(settings)() as session:
            service.release_and_promote(session, settings, ctx.operation_id)
    if status == OperationStatus.queued:
        queue.enqueue(
            settings, operation_id=ctx.operation_id, queue=claim.queue, timeout=claim.timeout
        )

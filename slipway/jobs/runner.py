"""The one RQ job function: runs an operation by id, and records how it ended."""

from __future__ import annotations

import logging
import time
import traceback
from datetime import timedelta
from typing import Any

from rq.timeouts import JobTimeoutException
from sqlalchemy import update

from slipway.core.config import get_settings
from slipway.core.db import session_factory, utcnow
from slipway.core.errors import SlipwayError
from slipway.jobs import active, service
from slipway.jobs.context import OperationCanceledError, OperationContext, WorkerStoppingError
from slipway.jobs.kinds import KindSpec, get_kind
from slipway.jobs.models import Operation, OperationStatus

log = logging.getLogger(__name__)


def run_operation(operation_id: str) -> str:
    """Run the operation if it is still queued; a second call for the same id does nothing."""
    settings = get_settings()
    sessions = session_factory(settings)
    now = utcnow()
    with sessions() as session:
        # One statement claims the row and reads what the job needs.
        claimed = session.execute(
            update(Operation)
            .where(
                Operation.id == operation_id,
                Operation.status == OperationStatus.queued,
                Operation.cancel_requested.is_(False),
            )
            .values(
                status=OperationStatus.running,
                started_at=now,
                heartbeat_at=now,
                worker=active.worker_name(),
            )
            .returning(Operation.kind, Operation.params, Operation.state, Operation.attempt)
        ).first()
        session.commit()
    if claimed is None:
        log.info("operation %s is not queued any more; nothing to do", operation_id)
        return "skipped"
    spec = get_kind(claimed.kind)
    ctx = OperationContext(
        operation_id=operation_id,
        kind=claimed.kind,
        params=dict(claimed.params or {}),
        state=dict(claimed.state or {}),
        attempt=claimed.attempt,
        settings=settings,
    )
    active.register(ctx)
    started = time.perf_counter()
    try:
        outcome = _execute(spec, ctx)
    finally:
        active.unregister(operation_id)
        ctx.kill_children()
    _record(ctx, spec, **outcome)
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


def _execute(spec: KindSpec, ctx: OperationContext) -> dict[str, Any]:
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
            ctx, OperationStatus.failed, "timeout", f"did not finish within {ctx_timeout(ctx)} s"
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
            **_ended(ctx, OperationStatus.failed, "worker_stopped", "the worker was shut down"),
        )
        raise
    except Exception as exc:
        log.error("operation %s failed unexpectedly:\n%s", ctx.operation_id, traceback.format_exc())
        text = ctx.masker.mask(f"{type(exc).__name__}: {exc}")
        return _ended(ctx, OperationStatus.failed, "internal", f"unexpected error: {text}")


def ctx_timeout(ctx: OperationContext) -> int:
    with ctx.session() as session:
        operation = session.get(Operation, ctx.operation_id)
        return operation.timeout if operation else 0


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
    *,
    status: OperationStatus,
    result: dict[str, Any] | None,
    error: dict[str, Any] | None,
) -> None:
    """Write the outcome, unless someone (the reaper) already ended the operation."""
    settings = ctx.settings
    retry_in: float | None = None
    with session_factory(settings)() as session:
        operation = session.get(Operation, ctx.operation_id)
        if operation is None or operation.status != OperationStatus.running:
            ctx.logs.flush()
            log.warning("operation %s was ended elsewhere; keeping that outcome", ctx.operation_id)
            return
        operation.state = ctx.state
        if status == OperationStatus.queued:
            ctx.log("worker stopping; the operation goes back to the queue and resumes", "system")
            operation.status = OperationStatus.queued
        elif status == OperationStatus.failed and operation.attempt < operation.max_attempts:
            retry_in = spec.retry_backoff * (2 ** (operation.attempt - 1))
            ctx.log(f"attempt {operation.attempt} failed; retrying in {retry_in:g} s", "system")
            operation.status = OperationStatus.scheduled
            operation.scheduled_for = utcnow() + timedelta(seconds=retry_in)
            operation.attempt += 1
            operation.error = error
        else:
            operation.status = status
            operation.result = result
            operation.error = error
            operation.finished_at = utcnow()
            if status == OperationStatus.succeeded and operation.progress_total:
                operation.progress_done = operation.progress_total
        session.commit()
        final = operation.status in (
            OperationStatus.succeeded,
            OperationStatus.failed,
            OperationStatus.canceled,
        )
        requeue = operation.status == OperationStatus.queued
        if final:
            ctx.logs.end(operation.status)
        else:
            ctx.logs.flush()
        if (final or retry_in is not None) and operation.lock_keys:
            service.release_and_promote(session, settings, ctx.operation_id)
        if requeue:
            service.enqueue_all(settings, [operation])

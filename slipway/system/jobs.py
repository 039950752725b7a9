"""slipway's own operations: the system check, log retention, and a no-op dispatch probe."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from slipway.core.db import utcnow
from slipway.core.errors import OperationError
from slipway.jobs.context import OperationContext
from slipway.jobs.kinds import operation_kind
from slipway.jobs.logs import purge_older_than
from slipway.system import service
from slipway.targets import host_probe, registries
from slipway.targets import service as targets


@operation_kind("system.check", timeout=300, is_public=True)
def check(ctx: OperationContext) -> dict[str, Any]:
    """Check every part slipway depends on; one log line per check."""
    results = []
    with ctx.session() as session:
        local_checks = [
            lambda: service.check_database(session, ctx.settings),
            lambda: service.check_redis(ctx.settings),
            lambda: service.check_workers(ctx.settings),
            lambda: service.check_data_dir(ctx.settings),
        ]
        for index, run_check in enumerate(local_checks):
            ctx.check()
            result = run_check()
            results.append(result)
            _log_result(ctx, result)
            ctx.progress(index + 1, len(local_checks))
    # Every configured Docker endpoint, SSH host and registry: each kind tested in parallel, the
    # outcome recorded on its rows.
    for check_all in (
        targets.check_endpoints,
        host_probe.check_hosts,
        registries.check_registries,
    ):
        ctx.check()
        with ctx.session() as session:
            found = [service.CheckResult(**row) for row in check_all(session, ctx.settings)]
            # Committed before the lines are logged: on SQLite the open write would hold the one
            # write lock, and the log writer's flush on this thread (the worker's heartbeat with
            # it) would wait for it until the busy timeout.
            session.commit()
        for result in found:
            _log_result(ctx, result)
        results.extend(found)
    failing = [r.to_dict() for r in results if not r.ok]
    summary = {"checks": [r.to_dict() for r in results], "failing": failing}
    if failing:
        raise OperationError(
            f"{len(failing)} check(s) failed: {', '.join(r['name'] for r in failing)}",
            code="check_failed",
            details={"failing": [r["name"] for r in failing]},
            result=summary,
        )
    return summary


def _log_result(ctx: OperationContext, result: service.CheckResult) -> None:
    ctx.log(f"{'ok  ' if result.ok else 'FAIL'} {result.name}: {result.message}")


@operation_kind("system.purge", timeout=3600)
def purge(ctx: OperationContext) -> dict[str, Any]:
    """Remove operation log lines older than the retention."""
    days = ctx.settings.operation_log_retention_days
    cutoff = utcnow() - timedelta(days=days)
    with ctx.session() as session:
        removed = purge_older_than(session, cutoff)
        session.commit()
    ctx.log(f"removed {removed} log line(s) older than {days} days")
    return {"removed_lines": removed, "cutoff": cutoff.isoformat()}


@operation_kind("system.noop", timeout=60, is_public=True)
def noop(ctx: OperationContext) -> dict[str, Any]:
    """Does nothing: measures the engine's own dispatch cost."""
    return {}

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
    with ctx.session() as session:
        checks = [
            lambda: service.check_database(session, ctx.settings),
            lambda: service.check_redis(ctx.settings),
            lambda: service.check_workers(ctx.settings),
            lambda: service.check_data_dir(ctx.settings),
        ]
        results = []
        for index, run_check in enumerate(checks):
            ctx.check()
            result = run_check()
            results.append(result)
            ctx.log(f"{'ok  ' if result.ok else 'FAIL'} {result.name}: {result.message}")
            ctx.progress(index + 1, len(checks))
        ctx.check()
        # Every configured Docker endpoint, pinged in parallel.
        for endpoint in targets.check_endpoints(session, ctx.settings):
            result = service.CheckResult(**endpoint)
            results.append(result)
            ctx.log(f"{'ok  ' if result.ok else 'FAIL'} {result.name}: {result.message}")
        # Committed before the next log line: on SQLite an open write would lock the log out.
        session.commit()
        ctx.check()
        # Every SSH host, connected to and tested in parallel.
        hosts = host_probe.check_hosts(session, ctx.settings)
        session.commit()
        for host in hosts:
            result = service.CheckResult(**host)
            results.append(result)
            ctx.log(f"{'ok  ' if result.ok else 'FAIL'} {result.name}: {result.message}")
        session.commit()
        ctx.check()
        # Every registry, logged in to in parallel with its saved password.
        checked_registries = registries.check_registries(session, ctx.settings)
        session.commit()
        for registry in checked_registries:
            result = service.CheckResult(**registry)
            results.append(result)
            ctx.log(f"{'ok  ' if result.ok else 'FAIL'} {result.name}: {result.message}")
        session.commit()
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

"""Operation kinds and bare RQ functions used by the benches.

Loaded by slipway workers through SLIPWAY_PLUGINS=_kinds with PYTHONPATH=bench, and by bare RQ
workers as `_kinds.bare_mark` / `_kinds.bare_noop` (rq worker --path bench).
"""

from __future__ import annotations

import time
from typing import Any

from rq import get_current_job

from slipway.core.redis import get_redis
from slipway.jobs.context import OperationContext
from slipway.jobs.kinds import operation_kind

# Each marking job pushes "<job or operation id> <time.time()>" here the moment its code starts.
MARKS = "bench:marks"


@operation_kind("bench.mark", timeout=60, is_public=True)
def mark(ctx: OperationContext) -> dict[str, Any]:
    """Records when the job code starts, then does nothing."""
    get_redis(ctx.settings).rpush(MARKS, f"{ctx.operation_id} {time.time():.6f}")
    return {}


@operation_kind("bench.lines", timeout=300, is_public=True)
def lines(ctx: OperationContext) -> dict[str, Any]:
    """Waits until `start_at` (unix time), then writes `count` lines at `rate` lines per second,
    each stamped with the time it was written: "line N at <time.time()>"."""
    count = int(ctx.params.get("count", 100))
    rate = float(ctx.params.get("rate", 1000))
    start_at = float(ctx.params.get("start_at", 0))
    ctx.sleep(max(0.0, start_at - time.time()))
    started = time.perf_counter()
    for index in range(count):
        delay = started + index / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        ctx.log(f"line {index + 1} at {time.time():.6f}")
    return {"lines": count}


def bare_mark() -> None:
    """The bare RQ twin of bench.mark."""
    job = get_current_job()
    assert job is not None
    job.connection.rpush(MARKS, f"{job.id} {time.time():.6f}")


def bare_noop() -> None:
    """The bare RQ twin of system.noop."""

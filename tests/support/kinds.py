"""Operation kinds used only by the tests (loaded through SLIPWAY_PLUGINS)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from slipway.core.errors import OperationError
from slipway.jobs.context import OperationContext
from slipway.jobs.kinds import operation_kind


def _mark(ctx: OperationContext, name: str) -> None:
    """Append to a file the test reads, so it can count how often each step really ran."""
    path = ctx.params.get("marks")
    if path:
        with open(path, "a") as handle:
            handle.write(f"{ctx.operation_id} {name} {os.getpid()}\n")


@operation_kind("test.steps", timeout=120, is_public=True)
def steps(ctx: OperationContext) -> dict[str, Any]:
    count = int(ctx.params.get("steps", 3))
    for index in range(count):
        with ctx.step(f"step {index + 1}"):
            _mark(ctx, f"step{index + 1}")
            ctx.log(f"working on step {index + 1}")
            ctx.sleep(float(ctx.params.get("sleep", 0)))
            ctx.progress(index + 1, count)
    return {"steps": count}


@operation_kind("test.resumable", timeout=120, is_resumable=True)
def resumable(ctx: OperationContext) -> dict[str, Any]:
    count = int(ctx.params.get("steps", 3))
    for index in range(count):
        name = f"step {index + 1}"
        if ctx.is_done(name):
            ctx.log(f"skipping {name}: done by an earlier run")
            continue
        with ctx.step(name):
            _mark(ctx, f"step{index + 1}")
            time.sleep(float(ctx.params.get("sleep", 0)))
    return {"steps": count}


@operation_kind("test.child", timeout=120)
def child(ctx: OperationContext) -> dict[str, Any]:
    """Runs a long child process; the test reads its pid from `pidfile`."""
    with ctx.step("run child"):
        ctx.run(["sh", "-c", f"echo $$ > {ctx.params['pidfile']}; echo started; exec sleep 120"])
    return {}


@operation_kind("test.fail")
def fail(ctx: OperationContext) -> None:
    ctx.log("about to fail")
    raise OperationError("the thing could not be done; fix it and retry", code="thing_failed")


@operation_kind("test.crash")
def crash(ctx: OperationContext) -> None:
    raise ValueError(f"boom with {ctx.params.get('secret', '')}")


@operation_kind("test.flaky", max_attempts=3, retry_backoff=0.2)
def flaky(ctx: OperationContext) -> dict[str, Any]:
    _mark(ctx, f"attempt{ctx.attempt}")
    if ctx.attempt < int(ctx.params.get("succeed_on", 2)):
        raise OperationError(f"attempt {ctx.attempt} failed", code="flaky")
    return {"attempt": ctx.attempt}


@operation_kind("test.secret")
def secret(ctx: OperationContext) -> None:
    value = ctx.params["value"]
    ctx.add_secret(value)
    ctx.log(f"connecting with password {value} now")
    ctx.run(["echo", f"child says {value}"])


@operation_kind("test.lines", timeout=300, is_public=True)
def lines(ctx: OperationContext) -> dict[str, Any]:
    """Writes `count` lines at `rate` lines per second, each stamped with its write time."""
    count = int(ctx.params.get("count", 100))
    rate = float(ctx.params.get("rate", 0)) or None
    started = time.perf_counter()
    for index in range(count):
        if rate:
            due = started + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        ctx.log(f"line {index + 1} at {time.time():.6f}")
    return {"lines": count}


@operation_kind("test.wait_file", timeout=120)
def wait_file(ctx: OperationContext) -> None:
    """Holds its locks until the test creates `path` (or a minute passes)."""
    path = Path(ctx.params["path"])
    _mark(ctx, "started")
    for _ in range(600):
        if path.exists():
            return
        ctx.sleep(0.1)

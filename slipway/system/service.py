"""Health of the parts slipway depends on, and the version manifest."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from slipway.core import schema
from slipway.core.config import Settings
from slipway.core.redis import get_redis
from slipway.core.version import manifest
from slipway.jobs.worker import live_workers

MIN_FREE_BYTES = 1 << 30  # below 1 GiB free in the data dir, check fails


@dataclass
class CheckResult:
    name: str
    ok: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "message": self.message, "details": self.details}


def check_database(session: Session, settings: Settings) -> CheckResult:
    started = time.perf_counter()
    try:
        session.execute(text("SELECT 1"))
        current = schema.current_revision(session.connection())
        head = schema.head_revision()
    except Exception as exc:
        return CheckResult("database", False, f"database does not answer: {type(exc).__name__}")
    ms = round((time.perf_counter() - started) * 1000, 1)
    backend = session.get_bind().dialect.name
    if current != head:
        return CheckResult(
            "database",
            False,
            f"schema is at {current}, this slipway needs {head}: run `slipway db upgrade`",
            {"backend": backend, "schema": current, "head": head},
        )
    return CheckResult(
        "database",
        True,
        f"{backend} answers in {ms} ms, schema {current}",
        {"backend": backend, "ms": ms},
    )


def check_redis(settings: Settings) -> CheckResult:
    started = time.perf_counter()
    try:
        get_redis(settings).ping()
    except Exception as exc:
        return CheckResult("redis", False, f"Redis does not answer: {type(exc).__name__}: {exc}")
    ms = round((time.perf_counter() - started) * 1000, 1)
    return CheckResult("redis", True, f"Redis answers in {ms} ms", {"ms": ms})


def check_workers(settings: Settings) -> CheckResult:
    try:
        workers = live_workers(settings)
    except Exception as exc:
        return CheckResult("workers", False, f"cannot list workers: {type(exc).__name__}")
    if not workers:
        return CheckResult("workers", False, "no worker is alive: start one with `slipway worker`")
    queues = sorted({queue for worker in workers for queue in worker.get("queues", [])})
    missing = [queue for queue in settings.queues if queue not in queues]
    details = {
        "count": len(workers),
        "queues": queues,
        "workers": [
            {"name": w["name"], "queues": w["queues"], "running": w["running"]} for w in workers
        ],
    }
    if missing:
        return CheckResult(
            "workers",
            False,
            f"{len(workers)} worker(s) alive, but none serves queue(s) {', '.join(missing)}",
            details,
        )
    return CheckResult(
        "workers", True, f"{len(workers)} worker(s) alive on queues {', '.join(queues)}", details
    )


def check_data_dir(settings: Settings) -> CheckResult:
    path = settings.data_dir
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{uuid.uuid4().hex}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        return CheckResult("data_dir", False, f"{path} is not writable: {exc.strerror}")
    free = shutil.disk_usage(path).free
    details = {"path": str(path), "free_bytes": free}
    if free < MIN_FREE_BYTES:
        return CheckResult("data_dir", False, f"{path} has only {free >> 20} MiB free", details)
    return CheckResult("data_dir", True, f"{path} is writable, {free >> 30} GiB free", details)


def health(session: Session, settings: Settings) -> tuple[bool, dict[str, Any]]:
    """Database, Redis and at least one worker: what the API needs to do useful work."""
    checks = [check_database(session, settings), check_redis(settings)]
    if checks[1].ok:
        checks.append(check_workers(settings))
    else:
        checks.append(CheckResult("workers", False, "unknown: Redis does not answer"))
    ok = all(check.ok for check in checks)
    return ok, {
        "status": "ok" if ok else "degraded",
        "checks": {check.name: {"ok": check.ok, "message": check.message} for check in checks},
        "pid": os.getpid(),
    }


def version(session: Session, settings: Settings) -> dict[str, Any]:
    from slipway.apps.catalog import load_catalog

    try:
        current = schema.current_revision(session.connection())
    except Exception:
        current = None
    document = manifest(schema_revision=current, schema_head=schema.head_revision())
    try:
        document["components"]["catalog"] = load_catalog(session, settings).versions
    except Exception:  # the version of slipway itself must always answer
        document["components"]["catalog"] = None
    return document

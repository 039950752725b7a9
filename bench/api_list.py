"""Listing operations with 100,000 rows in PostgreSQL: authenticated GET /api/v1/operations?limit=50
at a steady 50 req/s (open loop: latency counts from when each request was due), deeper pages
through the cursor, then the peak req/s of closed-loop clients against 1 and 2 API processes.
The paced part is repeated on SQLite for information.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from _common import Instance, Table, cpu_seconds, finish, ms, percentile
from sqlalchemy import create_engine, insert, select, text

from slipway.api.pagination import encode_cursor
from slipway.jobs.models import Operation

ROWS = 100_000
RATE = 50
PACED_SECONDS = 20
PEAK_CLIENTS = 16
PEAK_SECONDS = 15
PAGE = "/api/v1/operations?limit=50"
KINDS = [
    "system.check",
    "system.noop",
    "app.install",
    "app.upgrade",
    "release.deploy",
    "image.build",
]


def fake_rows(count: int) -> list[dict[str, Any]]:
    """Finished operations created over the last 30 days (final statuses only, so that nothing
    wants to run them)."""
    now = datetime.now(UTC)
    rows = []
    for index in range(count):
        created = now - timedelta(seconds=random.uniform(0, 30 * 86400))
        started = created + timedelta(seconds=random.uniform(0.005, 2))
        status = random.choices(["succeeded", "failed", "canceled"], [85, 10, 5])[0]
        failed = status != "succeeded"
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "kind": random.choice(KINDS),
                "subject": f"app-{index % 300}",
                "params": {},
                "status": status,
                "progress_done": 0,
                "progress_total": 0,
                "actor": random.choice(["bench", "ci", "alice"]),
                "trigger": "api",
                "queue": "default",
                "lock_keys": [],
                "position": int(created.timestamp() * 1e6),
                "attempt": 1,
                "max_attempts": 1,
                "timeout": 3600,
                "cancel_requested": False,
                "queued_at": created,
                "created_at": created,
                "started_at": started,
                "finished_at": started + timedelta(seconds=random.expovariate(1 / 20)),
                "error": {"code": status, "message": f"it {status}"} if failed else None,
                "result": None if failed else {},
                "state": {},
            }
        )
    return rows


def load(database_url: str) -> tuple[float, str]:
    """Insert ROWS operations; returns (seconds, a cursor pointing half-way down the list)."""
    engine = create_engine(database_url)
    took = time.monotonic()
    with engine.begin() as conn:
        for _ in range(ROWS // 5000):
            conn.execute(insert(Operation.__table__), fake_rows(5000))
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE operations"))
        took = time.monotonic() - took
        middle = conn.execute(
            select(Operation.created_at, Operation.id)
            .order_by(Operation.created_at.desc(), Operation.id.desc())
            .offset(ROWS // 2)
            .limit(1)
        ).one()
    engine.dispose()
    return took, str(encode_cursor([middle.created_at.isoformat(), middle.id]))


class Client(threading.local):
    """One keep-alive connection per thread; stdlib http.client, to keep the client light."""

    def __init__(self, port: int, token: str) -> None:
        self.port, self.headers = port, {"Authorization": f"Bearer {token}"}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def get(self, path: str) -> tuple[int, bytes]:
        self.conn.request("GET", path, headers=self.headers)
        reply = self.conn.getresponse()
        return reply.status, reply.read()


def paced(client: Client, path: str, rate: float, seconds: float) -> tuple[list[float], int]:
    """Open loop: request i is due at start + i/rate whatever happened to the others. Returns the
    latencies (from due time to the whole body read) and the number of non-200 answers."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()

    def one(due: float) -> None:
        nonlocal errors
        status, _ = client.get(path)
        with lock:
            latencies.append(time.perf_counter() - due)
            errors += status != 200

    start = time.perf_counter() + 0.1
    with ThreadPoolExecutor(8) as pool:
        for index in range(int(rate * seconds)):
            due = start + index / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            pool.submit(one, due)
    return latencies, errors


def peak(client: Client) -> tuple[float, list[float], int]:
    """Closed loop: PEAK_CLIENTS threads each sending the next request as soon as one returns."""
    latencies: list[list[float]] = [[] for _ in range(PEAK_CLIENTS)]
    errors = [0] * PEAK_CLIENTS
    stop = time.perf_counter() + PEAK_SECONDS

    def loop(slot: int) -> None:
        while (before := time.perf_counter()) < stop:
            status, _ = client.get(PAGE)
            latencies[slot].append(time.perf_counter() - before)
            errors[slot] += status != 200

    with ThreadPoolExecutor(PEAK_CLIENTS) as pool:
        list(pool.map(loop, range(PEAK_CLIENTS)))
    merged = [lat for slot in latencies for lat in slot]
    return len(merged) / PEAK_SECONDS, merged, sum(errors)


def paced_pages(inst: Instance, table: Table, first_page_seconds: int) -> None:
    """Page 1, page 2 and a page half-way down, each at RATE req/s, on a 1-process API."""
    took, middle = load(inst.database_url)
    table.add(f"bulk insert of {ROWS:,} rows + ANALYZE", f"{took:.1f} s")
    url, api = inst.api()
    client = Client(int(url.rsplit(":", 1)[1]), inst.token)
    status, body = client.get(PAGE)
    assert status == 200 and len(json.loads(body)["items"]) == 50, body[:200]
    paced(client, PAGE, RATE, 2)  # warm-up
    pages = [
        ("page 1", PAGE, first_page_seconds),
        ("page 2 (next_cursor)", f"{PAGE}&cursor={json.loads(body)['next_cursor']}", 5),
        (f"page {ROWS // 100 + 1} ({ROWS // 2:,} rows down)", f"{PAGE}&cursor={middle}", 5),
    ]
    for name, path, seconds in pages:
        cpu = cpu_seconds(api.pid)
        latencies, errors = paced(client, path, RATE, seconds)
        cpu_ms = (cpu_seconds(api.pid) - cpu) / len(latencies) * 1000
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        table.add(
            f"{name} at {RATE} req/s for {seconds} s: p50 | p99",
            f"{ms(p50)} | {ms(p99)} (API CPU {cpu_ms:.1f} ms/req)"
            + (f" ({errors} errors)" if errors else ""),
            "p99 <= 50 ms",
            p99 <= 0.050 and not errors,
        )
    inst.stop(api)


def peaks(inst: Instance, table: Table) -> None:
    for workers in (1, 2):
        url, api = inst.api(workers=workers)
        client = Client(int(url.rsplit(":", 1)[1]), inst.token)
        paced(client, PAGE, RATE, 1)  # warm-up every API process
        before = time.process_time()
        rate, latencies, errors = peak(client)
        client_cpu = (time.process_time() - before) / PEAK_SECONDS
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        table.add(
            f"peak, {PEAK_CLIENTS} clients, `slipway api --workers {workers}`",
            f"{rate:.0f} req/s (p50 {ms(p50)}, p99 {ms(p99)}; "
            f"the bench client took {client_cpu:.0%} of a core)"
            + (f" ({errors} errors)" if errors else ""),
            "reported" if workers == 2 else "",
            not errors if workers == 2 else None,
        )
        inst.stop(api)


def main() -> None:
    started = time.monotonic()
    tables = []
    for backend in ("postgresql", "sqlite"):
        table = Table(f"GET {PAGE}, {ROWS:,} operations in {backend}", binding=backend != "sqlite")
        with Instance(backend) as inst:
            paced_pages(inst, table, PACED_SECONDS if backend == "postgresql" else 5)
            if backend == "postgresql":
                peaks(inst, table)
        tables.append(table)
    finish(tables, started)


if __name__ == "__main__":
    main()

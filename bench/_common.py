"""What the benches share: a throwaway slipway instance (database, Redis, api and worker
processes), bare RQ workers, percentiles and the result table.

Run the benches with the project's venv: `.venv/bin/python bench/NAME.py` (or `make bench`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import redis

BENCH_DIR = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
SLIPWAY = str(BIN / "slipway")
RQ = str(BIN / "rq")
REDIS_BASE_URL = os.environ.get("SLIPWAY_BENCH_REDIS_URL", "redis://127.0.0.1:6379")
# The test suite's protocol (tests/conftest.py): whoever holds this key in a Redis database owns
# it, so a bench never flushes a database a test session is using, nor the other way round.
CLAIM_KEY = "slipway-test-session"
PG_ADMIN_URL = os.environ.get("SLIPWAY_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
PASSWORD = "pw-bench-123"
# Other work on the machine skews every figure; the table footer shows how busy it was.
_LOAD_AT_START = os.getloadavg()[0]


# --- numbers and the table ------------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Table:
    """Result rows; a table that is not `binding` (e.g. SQLite) shows verdicts for information."""

    title: str
    binding: bool = True
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)

    def add(self, metric: str, value: str, target: str = "", ok: bool | None = None) -> None:
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        if verdict and not self.binding:
            verdict += " (info)"
        self.rows.append((metric, value, target, verdict))

    @property
    def failed(self) -> bool:
        return self.binding and any(row[3] == "FAIL" for row in self.rows)

    def print(self) -> None:
        header = ("metric", "value", "target", "result")
        widths = [max(len(r[i]) for r in [header, *self.rows]) for i in range(4)]
        line = "  ".join("-" * w for w in widths)
        print(f"\n{self.title}")
        print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
        print(line)
        for row in self.rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        sys.stdout.flush()


def finish(tables: list[Table], started: float) -> None:
    """Print every table, the runtime, and exit 1 when a target was missed."""
    for table in tables:
        table.print()
    runtime = time.monotonic() - started
    print(
        f"\nruntime {runtime:.0f} s; 1-min load average {_LOAD_AT_START:.1f} at the start, ", end=""
    )
    print(f"{os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} CPUs")
    sys.exit(1 if any(t.failed for t in tables) else 0)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


# --- processes ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], *, timeout: float = 30, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def rss_mb(pid: int, *, children: bool = True) -> float:
    """Resident memory of a process (and its descendants), in MB."""
    process = psutil.Process(pid)
    members = [process, *(process.children(recursive=True) if children else [])]
    return sum(p.memory_info().rss for p in members) / 1e6


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live descendants."""
    process = psutil.Process(pid)
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        times = member.cpu_times()
        total += times.user + times.system
    return total


def servers_cpu_seconds() -> dict[str, float]:
    """CPU time so far of the PostgreSQL and Redis server processes on this machine (all of their
    processes: a backend that exits takes its share with it, so measure across work that keeps
    its connections)."""
    totals = {"postgres": 0.0, "redis-server": 0.0}
    for process in psutil.process_iter(["name", "cpu_times"]):
        name = process.info["name"] or ""
        for server in totals:
            if name.startswith(server) and process.info["cpu_times"] is not None:
                times = process.info["cpu_times"]
                totals[server] += times.user + times.system
    return totals


def claim_redis() -> tuple[str, redis.Redis]:
    """Database 12 (or the first free even one from 14 down), claimed like a test session does,
    then flushed. SLIPWAY_BENCH_REDIS_URL with a database number is taken as it is."""
    base = REDIS_BASE_URL.rstrip("/")
    explicit = base.rsplit("/", 1)[-1].isdigit()
    for number in [None] if explicit else [12, 14, 10, 8, 6, 4, 2]:
        url = base if number is None else f"{base}/{number}"
        client = redis.Redis.from_url(url)
        if explicit or client.set(CLAIM_KEY, f"bench {os.getpid()}", nx=True, ex=3600):
            client.flushdb()
            client.set(CLAIM_KEY, f"bench {os.getpid()}", ex=3600)
            return url, client
        client.close()
    raise RuntimeError(f"every Redis database of {base} is claimed by a test session or bench")


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/v1/health", timeout=1).status_code in (200, 503)
    except httpx.HTTPError:
        return False


class Instance:
    """A slipway instance of its own: fresh database (PostgreSQL or SQLite), Redis db 12 flushed,
    an admin user `bench` with an API token, and the processes started through it.

    Use as a context manager: on exit every process is stopped, the database dropped, Redis
    flushed and the data dir removed.
    """

    def __init__(self, backend: str = "postgresql") -> None:
        self.backend = backend
        self.tmp = Path(tempfile.mkdtemp(prefix="slipway-bench-"))
        self.pg_name = f"slipway_bench_{os.getpid()}"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.redis_url, self.redis = claim_redis()
        self.token = ""
        if backend == "postgresql":
            base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
            self.database_url = f"{base}/{self.pg_name}"
        else:
            self.database_url = f"sqlite:///{self.tmp / 'slipway.db'}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
        self.env.update(
            SLIPWAY_DATA_DIR=str(self.tmp / "data"),
            SLIPWAY_DATABASE_URL=self.database_url,
            SLIPWAY_REDIS_URL=self.redis_url,
            SLIPWAY_PLUGINS="_kinds",
            PYTHONPATH=os.pathsep.join(
                filter(None, [str(BENCH_DIR), os.environ.get("PYTHONPATH")])
            ),
        )

    def __enter__(self) -> Instance:
        try:
            if self.backend == "postgresql":
                self._pg(f'DROP DATABASE IF EXISTS "{self.pg_name}"')
                self._pg(f'CREATE DATABASE "{self.pg_name}"')
            self.run("db", "upgrade")
            self.run(
                "users", "create", "bench", "--role", "admin", "--password-stdin", stdin=PASSWORD
            )
            self.token = self.run("tokens", "create", "--user", "bench", "--name", "bench").strip()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _pg(self, sql: str) -> None:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(sql)

    def run(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [SLIPWAY, *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            cwd=self.tmp,
        )
        if done.returncode != 0:
            raise RuntimeError(f"slipway {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def spawn(self, argv: list[str], log_name: str) -> subprocess.Popen[bytes]:
        with open(self.tmp / f"{log_name}.log", "ab") as log:
            process = subprocess.Popen(
                argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp
            )
        self.processes.append(process)
        return process

    def api(self, workers: int = 1) -> tuple[str, subprocess.Popen[bytes]]:
        """`slipway api` on a free port, once it answers; returns (base url, process)."""
        port = free_port()
        argv = [SLIPWAY, "api", "--port", str(port), "--workers", str(workers)]
        process = self.spawn(argv, f"api-{port}")
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(url), timeout=30, what="the API")
        if workers > 1:  # every uvicorn child has booted once each answers with its app loaded
            wait_for(
                lambda: len(psutil.Process(process.pid).children()) >= workers,
                what="the API workers",
            )
            time.sleep(2)
        return url, process

    def worker(self, name: str) -> subprocess.Popen[bytes]:
        """`slipway worker`, once it has announced itself in Redis."""
        process = self.spawn([SLIPWAY, "worker", "--name", name], f"worker-{name}")
        wait_for(
            lambda: self.redis.exists(f"slipway:workers:{name}"), timeout=30, what=f"worker {name}"
        )
        return process

    def bare_worker(self, name: str, queue: str) -> subprocess.Popen[bytes]:
        """A plain `rq worker` with rq.SimpleWorker and the JSON serializer, as slipway's."""
        argv = [RQ, "worker", "-w", "rq.SimpleWorker", "-S", "json", "-u", self.redis_url]
        argv += ["-P", str(BENCH_DIR), "-n", name, queue]
        process = self.spawn(argv, f"rq-{name}")
        wait_for(
            lambda: self.redis.exists(f"rq:worker:{name}"), timeout=30, what=f"rq worker {name}"
        )
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)  # in case a bench paused it
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def close(self) -> None:
        for process in self.processes:
            self.stop(process)
        if self.backend == "postgresql":
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (self.pg_name,),
                )
                conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}"')
        self.redis.flushdb()  # also drops our claim
        self.redis.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

"""Dispatch latency and throughput of slipway operations, beside bare RQ 3 with the same worker
class in the same run.

Worker class: rq.SimpleWorker on both sides (slipway's `SlipwayWorker` subclasses it and only adds
a monitor thread for heartbeats and cancel). slipway uses it because it runs jobs in its own
process: no fork per job, which makes dispatch about 3x faster and throughput about 3x higher than
RQ's forking Worker on this machine kind (../shared/REFERENCE_FIGURES.md); what it lacks (a work
horse to kill, heartbeats during a job) slipway's worker adds (slipway/jobs/worker.py).

Latency: one job at a time on an idle worker; from the client's clock just before the API POST (or
the bare `Queue.enqueue`) to the job code's first line, which pushes time.time() to a Redis list.
Throughput: 500 trivial jobs submitted by 8 client threads at once, 2 workers; from the first POST
(enqueue) to the last job's end, `finished_at` as the operations table holds it (bare: RQ's
`ended_at`), so every operation went API -> queued -> running -> succeeded. Measured in five
interleaved rounds (slipway, bare, slipway, bare, ...); the figure is the median of the rounds'
ratios, each round's ratio is printed too. For the diagnosis, also
the drain rate (500 jobs queued while the workers are paused with SIGSTOP, timed from SIGCONT: the
engine without the API) and the CPU time each process spends per job.

The HTTP client is the standard library's http.client on a kept-alive connection per thread (as
curl or any lean client would be): the client runs on the same two cores as everything it
measures, and httpx spends about 1.1 ms of CPU per request where http.client spends 0.35 ms; the
bare side's client is RQ's own `Queue.enqueue`. The client's CPU per job is printed too.
"""

from __future__ import annotations

import http.client
import json
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from _common import Instance, Table, cpu_seconds, finish, ms, percentile, servers_cpu_seconds
from _kinds import MARKS
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy import create_engine, func, select

from slipway.jobs.models import Operation

RUNS = 200
WARMUP = 10
BURST = 500
# The throughput pair (slipway, then bare) is measured this many times; the figure is the median
# ratio. Other work on a two-core machine moves single runs by tens of percent.
ROUNDS = 5
CLIENT_THREADS = 8
BARE_QUEUE = "bench-bare"


class Client:
    """A JSON client of the API on one kept-alive connection (one per thread)."""

    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        self._conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body) if body is not None else None
        self._conn.request(method, path, body=data, headers=self._headers)
        response = self._conn.getresponse()
        text = response.read()
        if response.status >= 400:
            raise RuntimeError(f"{method} {path}: {response.status} {text[:300]!r}")
        return json.loads(text)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("POST", path, body)

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def close(self) -> None:
        self._conn.close()


def wait_mark(inst: Instance, job_id: str) -> float:
    """The time the job's code started, from the list its first line pushes to."""
    popped = inst.redis.blpop([MARKS], timeout=30)
    assert popped is not None, f"job {job_id} never started"
    marked_id, at = popped[1].decode().split()
    assert marked_id == job_id, f"expected a mark from {job_id}, got {marked_id}"
    return float(at)


def wait_rq_finished(inst: Instance, job_id: str) -> None:
    """Until RQ itself is done with the job, so that the next one finds an idle worker."""
    deadline = time.monotonic() + 30
    while inst.redis.hget(f"rq:job:{job_id}", "status") != b"finished":
        assert time.monotonic() < deadline, f"job {job_id} did not finish"
        time.sleep(0.002)
    time.sleep(0.02)


def slipway_latency(inst: Instance, client: Client) -> dict[str, list[float]]:
    """Per run: total (POST → code), the POST round trip, POST → started_at, started_at → code."""
    out: dict[str, list[float]] = {"total": [], "post": [], "claim": [], "entry": []}
    for index in range(WARMUP + RUNS):
        before = time.time()
        reply = client.post("/api/v1/operations", {"kind": "bench.mark"})
        answered = time.time()
        operation_id = reply["operation"]["id"]
        entered = wait_mark(inst, operation_id)
        wait_rq_finished(inst, operation_id)
        operation = client.get(f"/api/v1/operations/{operation_id}")
        assert operation["status"] == "succeeded", operation
        started = datetime.fromisoformat(operation["started_at"]).timestamp()
        if index >= WARMUP:
            out["total"].append(entered - before)
            out["post"].append(answered - before)
            out["claim"].append(started - before)
            out["entry"].append(entered - started)
    return out


def bare_latency(inst: Instance) -> list[float]:
    queue = Queue(BARE_QUEUE, connection=inst.redis, serializer=JSONSerializer)
    latencies = []
    for index in range(WARMUP + RUNS):
        before = time.time()
        job = queue.enqueue("_kinds.bare_mark")
        entered = wait_mark(inst, job.id)
        wait_rq_finished(inst, job.id)
        if index >= WARMUP:
            latencies.append(entered - before)
    return latencies


def pause(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGSTOP)


def resume(processes: list[subprocess.Popen[bytes]]) -> float:
    for process in processes:
        process.send_signal(signal.SIGCONT)
    return time.time()


def slipway_throughput(
    inst: Instance, url: str, paused: list[subprocess.Popen[bytes]]
) -> tuple[float, float, float]:
    """(operations/s, POSTs/s, client CPU ms per POST) for BURST system.noop operations: from
    the first POST to the last finished_at; with `paused` workers, from resuming them once all
    are posted (the drain rate)."""
    local = threading.local()
    clients: list[Client] = []

    def post(_: int) -> str:
        if not hasattr(local, "client"):
            local.client = Client(url, inst.token)
            clients.append(local.client)
        return str(
            local.client.post("/api/v1/operations", {"kind": "system.noop"})["operation"]["id"]
        )

    pause(paused)
    cpu = time.process_time()
    first = time.time()
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        ids = list(pool.map(post, range(BURST)))
    posted = time.time()
    client_cpu = (time.process_time() - cpu) / BURST * 1000
    for client in clients:
        client.close()
    if paused:
        first = resume(paused)
    engine = create_engine(inst.database_url)
    query = select(func.count(), func.max(Operation.finished_at)).where(
        Operation.id.in_(ids), Operation.finished_at.is_not(None)
    )
    deadline = time.monotonic() + 120
    while True:
        with engine.connect() as conn:
            done, last = conn.execute(query).one()
        if done >= BURST:
            break
        assert time.monotonic() < deadline, f"only {done} of {BURST} operations finished"
        time.sleep(0.1)
    engine.dispose()
    return BURST / (last.timestamp() - first), BURST / (posted - first), client_cpu


def bare_throughput(inst: Instance, paused: list[subprocess.Popen[bytes]]) -> tuple[float, float]:
    """The bare RQ twin of slipway_throughput: (jobs/s, client CPU ms per enqueue)."""
    queue = Queue(BARE_QUEUE, connection=inst.redis, serializer=JSONSerializer)
    registry = queue.finished_job_registry
    expected = registry.count + BURST
    pause(paused)
    cpu = time.process_time()
    first = time.time()
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        jobs = list(pool.map(lambda _: queue.enqueue("_kinds.bare_noop"), range(BURST)))
    client_cpu = (time.process_time() - cpu) / BURST * 1000
    if paused:
        first = resume(paused)
    deadline = time.monotonic() + 120
    while registry.count < expected:
        assert time.monotonic() < deadline, f"only {registry.count} of {expected} jobs finished"
        time.sleep(0.05)
    fetched = Job.fetch_many(
        [job.id for job in jobs], connection=inst.redis, serializer=JSONSerializer
    )
    last = max(job.ended_at.timestamp() for job in fetched if job and job.ended_at)
    return BURST / (last - first), client_cpu


def cpu_ms_per_job(pids: list[int], before: float, jobs: int) -> float:
    return (sum(cpu_seconds(pid) for pid in pids) - before) / jobs * 1000


def bench(backend: str) -> Table:
    table = Table(
        f"dispatch on {backend} (worker class: SimpleWorker)", binding=backend != "sqlite"
    )
    with Instance(backend) as inst:
        url, api = inst.api()
        workers = [inst.worker("w1")]
        bare_workers = [inst.bare_worker("bare1", BARE_QUEUE)]
        client = Client(url, inst.token)
        try:
            slip = slipway_latency(inst, client)
        finally:
            client.close()
        bare = bare_latency(inst)
        for pct in (50, 99):
            s, b = percentile(slip["total"], pct), percentile(bare, pct)
            table.add(
                f"dispatch p{pct}: slipway | bare RQ",
                f"{ms(s)} | {ms(b)}",
                f"<= 2 x bare + 10 ms = {ms(2 * b + 0.010)}",
                s <= 2 * b + 0.010,
            )
        for part, label in (
            ("post", "POST round trip"),
            ("claim", "POST -> started_at"),
            ("entry", "started_at -> code"),
        ):
            p50, p99 = percentile(slip[part], 50), percentile(slip[part], 99)
            table.add(f"  slipway {label} p50 | p99", f"{ms(p50)} | {ms(p99)}")

        workers.append(inst.worker("w2"))
        bare_workers.append(inst.bare_worker("bare2", BARE_QUEUE))
        pids = [api.pid] + [w.pid for w in workers]
        bare_pids = [w.pid for w in bare_workers]
        rounds: list[tuple[float, float, float]] = []  # slipway ops/s, bare jobs/s, POSTs/s
        client_cpu: list[tuple[float, float]] = []
        cpu = [cpu_seconds(pid) for pid in pids]
        cpu_bare = sum(cpu_seconds(pid) for pid in bare_pids)
        servers = {"slipway": Counter[str](), "bare": Counter[str]()}
        for _ in range(ROUNDS):
            # Interleaved, so that each ratio compares two runs under the same load.
            before = servers_cpu_seconds()
            ops, posts, post_cpu = slipway_throughput(inst, url, paused=[])
            between = servers_cpu_seconds()
            jobs, enqueue_cpu = bare_throughput(inst, paused=[])
            after = servers_cpu_seconds()
            servers["slipway"].update({k: between[k] - before[k] for k in before})
            servers["bare"].update({k: after[k] - between[k] for k in before})
            rounds.append((ops, jobs, posts))
            client_cpu.append((post_cpu, enqueue_cpu))
        api_cpu = cpu_ms_per_job(pids[:1], cpu[0], BURST * ROUNDS)
        worker_cpu = cpu_ms_per_job(pids[1:], sum(cpu[1:]), BURST * ROUNDS)
        bare_cpu = cpu_ms_per_job(bare_pids, cpu_bare, BURST * ROUNDS)
        ratios = [ops / jobs for ops, jobs, _ in rounds]
        ratio = statistics.median(ratios)
        ops = statistics.median(r[0] for r in rounds)
        jobs = statistics.median(r[1] for r in rounds)
        table.add(
            f"throughput, {BURST} jobs, 2 workers: slipway | bare RQ",
            f"{ops:.0f}/s | {jobs:.0f}/s ({ratio:.0%})",
            ">= 60 % of bare",
            ratio >= 0.6,
        )
        table.add(
            f"  ratio in each of {ROUNDS} interleaved rounds (median above)",
            ", ".join(f"{r:.0%}" for r in ratios),
        )
        posts = statistics.median(r[2] for r in rounds)
        table.add(f"  slipway POST rate ({CLIENT_THREADS} client threads, 1 API)", f"{posts:.0f}/s")
        post_cpu = statistics.mean(c[0] for c in client_cpu)
        enqueue_cpu = statistics.mean(c[1] for c in client_cpu)
        drained, _, _ = slipway_throughput(inst, url, paused=workers)
        bare_drained, _ = bare_throughput(inst, paused=bare_workers)
        table.add(
            f"  drain rate, {BURST} already queued: slipway | bare",
            f"{drained:.0f}/s | {bare_drained:.0f}/s ({drained / bare_drained:.0%})",
        )
        table.add(
            "  CPU per job: slipway worker | bare RQ worker",
            f"{worker_cpu:.1f} | {bare_cpu:.1f} ms",
        )
        table.add("  CPU per job: slipway API (POST)", f"{api_cpu:.1f} ms")
        per_job = {
            side: {k: v / (BURST * ROUNDS) * 1000 for k, v in used.items()}
            for side, used in servers.items()
        }
        table.add(
            "  CPU per job: PostgreSQL | Redis, slipway",
            f"{per_job['slipway']['postgres']:.1f} | {per_job['slipway']['redis-server']:.1f} ms",
        )
        table.add("  CPU per job: Redis, bare RQ", f"{per_job['bare']['redis-server']:.1f} ms")
        table.add(
            "  CPU per job: bench client, POST | bare enqueue",
            f"{post_cpu:.1f} | {enqueue_cpu:.1f} ms",
        )
    return table


def main() -> None:
    """`python bench/dispatch.py [postgresql] [sqlite]`: the backends to measure (default both)."""
    started = time.monotonic()
    tables = [bench(backend) for backend in sys.argv[1:] or ("postgresql", "sqlite")]
    finish(tables, started)


if __name__ == "__main__":
    main()

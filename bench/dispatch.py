"""Dispatch latency and throughput of slipway operations, beside bare RQ 3 with the same worker
class (rq.SimpleWorker, which slipway's worker subclasses) in the same run.

Latency: one job at a time on an idle worker; from the client's clock just before the API POST (or
the bare `Queue.enqueue`) to the job code's first line, which pushes time.time() to a Redis list.
Throughput: 500 trivial jobs submitted by 8 client threads at once, 2 workers; from the first POST
(enqueue) to the last job's end. For the diagnosis, also the drain rate (500 jobs queued while the
workers are paused with SIGSTOP, timed from SIGCONT: the engine without the API) and the CPU time
each process spends per job.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
from _common import Instance, Table, cpu_seconds, finish, ms, percentile
from _kinds import MARKS
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy import create_engine, func, select

from slipway.jobs.models import Operation

RUNS = 200
WARMUP = 10
BURST = 500
CLIENT_THREADS = 8
BARE_QUEUE = "bench-bare"


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


def slipway_latency(inst: Instance, client: httpx.Client) -> dict[str, list[float]]:
    """Per run: total (POST → code), the POST round trip, POST → started_at, started_at → code."""
    out: dict[str, list[float]] = {"total": [], "post": [], "claim": [], "entry": []}
    for index in range(WARMUP + RUNS):
        before = time.time()
        reply = client.post("/api/v1/operations", json={"kind": "bench.mark"})
        answered = time.time()
        reply.raise_for_status()
        operation_id = reply.json()["operation"]["id"]
        entered = wait_mark(inst, operation_id)
        wait_rq_finished(inst, operation_id)
        operation = client.get(f"/api/v1/operations/{operation_id}").json()
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
) -> tuple[float, float]:
    """(operations/s, POSTs/s) for BURST system.noop operations: from the first POST to the last
    finished_at; with `paused` workers, from resuming them once all are posted (the drain rate)."""
    local = threading.local()

    def post(_: int) -> str:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, headers=inst.headers, timeout=60)
        reply = local.client.post("/api/v1/operations", json={"kind": "system.noop"})
        reply.raise_for_status()
        return str(reply.json()["operation"]["id"])

    pause(paused)
    first = time.time()
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        ids = list(pool.map(post, range(BURST)))
    posted = time.time()
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
    return BURST / (last.timestamp() - first), BURST / (posted - first)


def bare_throughput(inst: Instance, paused: list[subprocess.Popen[bytes]]) -> float:
    """The bare RQ twin of slipway_throughput."""
    queue = Queue(BARE_QUEUE, connection=inst.redis, serializer=JSONSerializer)
    registry = queue.finished_job_registry
    expected = registry.count + BURST
    pause(paused)
    first = time.time()
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        jobs = list(pool.map(lambda _: queue.enqueue("_kinds.bare_noop"), range(BURST)))
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
    return BURST / (last - first)


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
        with httpx.Client(base_url=url, headers=inst.headers, timeout=30) as client:
            slip = slipway_latency(inst, client)
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
        cpu = [cpu_seconds(pid) for pid in pids]
        ops, posts = slipway_throughput(inst, url, paused=[])
        api_cpu = cpu_ms_per_job(pids[:1], cpu[0], BURST)
        worker_cpu = cpu_ms_per_job(pids[1:], sum(cpu[1:]), BURST)
        bare_pids = [w.pid for w in bare_workers]
        cpu_bare = sum(cpu_seconds(pid) for pid in bare_pids)
        jobs = bare_throughput(inst, paused=[])
        bare_cpu = cpu_ms_per_job(bare_pids, cpu_bare, BURST)
        table.add(
            f"throughput, {BURST} jobs, 2 workers: slipway | bare RQ",
            f"{ops:.0f}/s | {jobs:.0f}/s ({ops / jobs:.0%})",
            ">= 60 % of bare",
            ops >= 0.6 * jobs,
        )
        table.add(f"  slipway POST rate ({CLIENT_THREADS} client threads, 1 API)", f"{posts:.0f}/s")
        drained, _ = slipway_throughput(inst, url, paused=workers)
        bare_drained = bare_throughput(inst, paused=bare_workers)
        table.add(
            f"  drain rate, {BURST} already queued: slipway | bare",
            f"{drained:.0f}/s | {bare_drained:.0f}/s ({drained / bare_drained:.0%})",
        )
        table.add(
            "  CPU per job: slipway worker | bare RQ worker",
            f"{worker_cpu:.1f} | {bare_cpu:.1f} ms",
        )
        table.add("  CPU per job: slipway API (POST)", f"{api_cpu:.1f} ms")
    return table


def main() -> None:
    started = time.monotonic()
    tables = [bench("postgresql"), bench("sqlite")]
    finish(tables, started)


if __name__ == "__main__":
    main()

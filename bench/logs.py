"""Live log latency: one operation writes 1,000 lines/s for 10 s while 20 SSE followers stream
its log; latency = time received - time written (embedded in each line by the job).

Every follower must receive every sequence number exactly once, in order, then `event: end`.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import httpx
from _common import Instance, Table, cpu_seconds, finish, ms, percentile

COUNT = 10_000
RATE = 1_000
FOLLOWERS = 20
LEAD = 3.0  # seconds between the POST and the first line, for every follower to connect


@dataclass
class Follower(asyncio.Protocol):
    """One SSE follower on a raw connection (lighter than an HTTP library, so that the client
    takes as little CPU as possible from the server on a small machine). Parses the HTTP/1.1
    chunked response and records, per line, its seq and received - written."""

    seqs: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    mismatched: int = 0  # lines whose text does not carry their own sequence number
    ended: bool = False
    status: int = 0
    closed: asyncio.Future[None] | None = None
    _buffer: bytes = b""
    _events: bytes = b""

    def data_received(self, data: bytes) -> None:
        received = time.time()
        self._buffer += data
        if not self.status:
            head, sep, rest = self._buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            self.status = int(head.split(b" ", 2)[1])
            self._buffer = rest
        if self.status != 200:
            return  # counted as a fault; the body is an error, not a stream
        while (end := self._buffer.find(b"\r\n")) >= 0:  # one chunk: "<hex size>\r\n<data>\r\n"
            size = int(self._buffer[:end], 16)
            if len(self._buffer) < end + size + 4:
                return
            self._events += self._buffer[end + 2 : end + 2 + size]
            self._buffer = self._buffer[end + size + 4 :]
            *events, self._events = self._events.split(b"\n\n")
            for event in events:
                self._event(event, received)

    def _event(self, event: bytes, received: float) -> None:
        if event.startswith(b"event: end"):
            self.ended = True
        elif event.startswith(b"id: "):
            id_line, data_line = event.split(b"\n", 1)
            seq = int(id_line[4:])
            _, number, _, written = json.loads(data_line[6:])["text"].split()
            self.seqs.append(seq)
            self.mismatched += int(number) != seq
            self.latencies.append(received - float(written))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(None)


async def follow(port: int, token: str, operation_id: str) -> Follower:
    loop = asyncio.get_running_loop()
    follower = Follower(closed=loop.create_future())
    transport, _ = await loop.create_connection(lambda: follower, "127.0.0.1", port)
    request = (
        f"GET /api/v1/operations/{operation_id}/logs?follow=true HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    transport.write(request.encode())
    await asyncio.wait_for(follower.closed, timeout=COUNT / RATE + LEAD + 60)
    return follower


async def follow_all(port: int, token: str, operation_id: str) -> list[Follower]:
    return list(
        await asyncio.gather(*(follow(port, token, operation_id) for _ in range(FOLLOWERS)))
    )


def check(followed: list[Follower]) -> dict[str, int]:
    """Faults summed over the followers; all must be 0."""
    faults = {"lost": 0, "duplicated": 0, "out of order": 0, "text != seq": 0, "no end": 0}
    for got in followed:
        unique = set(got.seqs)
        faults["lost"] += len(set(range(1, COUNT + 1)) - unique)
        faults["duplicated"] += len(got.seqs) - len(unique)
        faults["out of order"] += sum(b <= a for a, b in zip(got.seqs, got.seqs[1:], strict=False))
        faults["text != seq"] += got.mismatched
        faults["no end"] += not got.ended or got.status != 200
    return faults


def bench(backend: str) -> Table:
    table = Table(
        f"live logs on {backend}: {FOLLOWERS} SSE followers, {RATE} lines/s, 1 API process",
        binding=backend != "sqlite",
    )
    with Instance(backend) as inst:
        url, api = inst.api()
        worker = inst.worker("w1")
        pids = {"api": api.pid, "worker": worker.pid}
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        params = {"count": COUNT, "rate": RATE, "start_at": time.time() + LEAD}
        with httpx.Client(base_url=url, headers=inst.headers) as client:
            reply = client.post(
                "/api/v1/operations", json={"kind": "bench.lines", "params": params}
            )
            reply.raise_for_status()
            operation_id = reply.json()["operation"]["id"]
            port = int(url.rsplit(":", 1)[1])
            followed = asyncio.run(follow_all(port, inst.token, operation_id))
            wall = time.time() - params["start_at"]
            cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
            status = client.get(f"/api/v1/operations/{operation_id}").json()["status"]
            stored = len(client.get(f"/api/v1/operations/{operation_id}/logs").text.splitlines())
    latencies = [lat for got in followed for lat in got.latencies]
    faults = check(followed)
    table.add("latency p50", ms(percentile(latencies, 50)))
    p95 = percentile(latencies, 95)
    table.add("latency p95", ms(p95), "<= 100 ms", p95 <= 0.100)
    table.add("latency max", ms(max(latencies, default=float("nan"))))
    received = f"{len(latencies)} of {COUNT * FOLLOWERS}"
    table.add(
        "lines received (all followers)", received, "all", len(latencies) == COUNT * FOLLOWERS
    )
    for fault, count in faults.items():
        table.add(f"  {fault} (all followers)", str(count), "0", count == 0)
    table.add("lines stored in the database", str(stored), str(COUNT), stored == COUNT)
    table.add("operation status", status, "succeeded", status == "succeeded")
    for name, seconds in cpu.items():
        table.add(f"  CPU of the {name} while streaming", f"{seconds / wall:.0%} of a core")
    return table


def main() -> None:
    started = time.monotonic()
    finish([bench("postgresql"), bench("sqlite")], started)


if __name__ == "__main__":
    main()

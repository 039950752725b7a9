"""Following an operation's log: replay what is stored, then the live Redis stream, resumable by
sequence number, never losing or repeating a line."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import redis
from anyio import to_thread

from slipway.core.config import Settings
from slipway.core.db import session_factory
from slipway.core.redis import get_async_redis
from slipway.jobs.logs import LogLine, read_lines, stream_key
from slipway.jobs.models import FINAL_STATUSES, Operation

KEEPALIVE_SECONDS = 15.0
BLOCK_MS = 1000
# A line published on the stream reaches the database within a second (batched writes).
GAP_RETRIES = 20


def _stored(settings: Settings, operation_id: str, after: int, limit: int = 1000) -> list[LogLine]:
    with session_factory(settings)() as session:
        return read_lines(session, operation_id, after_seq=after, limit=limit)


def _status(settings: Settings, operation_id: str) -> str | None:
    with session_factory(settings)() as session:
        operation = session.get(Operation, operation_id)
        return operation.status if operation else None


def sse_event(line: LogLine) -> str:
    return f"id: {line.seq}\ndata: {json.dumps(line.to_dict())}\n\n"


def sse_end(status: str) -> str:
    return f"event: end\ndata: {json.dumps({'status': status})}\n\n"


async def follow(settings: Settings, operation_id: str, after: int) -> AsyncIterator[str]:
    """SSE text for every line after `after`, until the operation ends."""
    last = after
    # Replay what the database holds.
    while True:
        lines = await to_thread.run_sync(_stored, settings, operation_id, last)
        for line in lines:
            yield sse_event(line)
            last = line.seq
        if len(lines) < 1000:
            break
    client = get_async_redis(settings)
    quiet = 0.0
    try:
        while True:
            try:
                reply = await client.xread(
                    {stream_key(operation_id): f"{last}-0"}, block=BLOCK_MS, count=500
                )
            except redis.RedisError:
                reply = []
                await asyncio.sleep(1)
            entries = reply[0][1] if reply else []
            if not entries:
                quiet += BLOCK_MS / 1000
                status = await to_thread.run_sync(_status, settings, operation_id)
                if status in FINAL_STATUSES:
                    for line in await to_thread.run_sync(
                        _stored, settings, operation_id, last, 100_000
                    ):
                        yield sse_event(line)
                    yield sse_end(status)
                    return
                if quiet >= KEEPALIVE_SECONDS:
                    quiet = 0.0
                    yield ": keepalive\n\n"
                continue
            quiet = 0.0
            # One write per XREAD batch, not per line: a follower costs the API little.
            batch: list[str] = []
            for entry_id, fields in entries:
                seq_text, part = entry_id.split("-")
                seq = int(seq_text)
                if "end" in fields:
                    for line in await to_thread.run_sync(
                        _stored, settings, operation_id, last, 100_000
                    ):
                        batch.append(sse_event(line))
                    batch.append(sse_end(fields["end"]))
                    yield "".join(batch)
                    return
                if part != "0" or seq <= last:
                    continue
                if seq > last + 1:
                    async for text in _fill_gap(settings, operation_id, last, seq):
                        batch.append(text)
                batch.append(sse_event(LogLine.from_stream(seq, fields)))
                last = seq
            if batch:
                yield "".join(batch)
    finally:
        await client.aclose()


async def _fill_gap(
    settings: Settings, operation_id: str, last: int, upto: int
) -> AsyncIterator[str]:
    """Lines the stream no longer has (trimmed, or Redis restarted) come from the database."""
    for _ in range(GAP_RETRIES):
        lines = [
            line
            for line in await to_thread.run_sync(_stored, settings, operation_id, last, upto - last)
            if line.seq < upto
        ]
        if lines and lines[-1].seq == upto - 1:
            break
        await asyncio.sleep(0.1)
    for line in lines:
        yield sse_event(line)

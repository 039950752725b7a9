"""Operation log lines: written by a job, masked, published on a Redis stream at once and stored
in the database in batches; read back by any API replica.

The Redis stream of an operation uses the line's sequence number as its entry id (`<seq>-0`), so a
follower resumes from any line with one XREAD. The last entry, `<seq>-1`, marks the end.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from slipway.core.config import Settings
from slipway.core.db import session_factory, utcnow
from slipway.core.redis import get_redis, key
from slipway.jobs.models import OperationLog

log = logging.getLogger(__name__)

MASK = "******"
STREAM_MAXLEN = 20_000
STREAM_TTL_AFTER_END = 3600
MAX_LINE_CHARS = 16_000
_FLUSH_LINES = 500
_FLUSH_SECONDS = 0.25


def stream_key(operation_id: str) -> str:
    return key("oplog", operation_id)


@dataclass(frozen=True)
class LogLine:
    seq: int
    time: datetime
    stream: str
    text: str

    @classmethod
    def from_stream(cls, seq: int, fields: dict[str, str]) -> LogLine:
        return cls(
            seq=seq,
            time=datetime.fromisoformat(fields["time"].replace("Z", "+00:00")),
            stream=fields["stream"],
            text=fields["text"],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "stream": self.stream,
            "text": self.text,
        }


class SecretMasker:
    """Replaces every known secret value in a text; longest first, so no secret leaks in part."""

    MIN_LENGTH = 4

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str | None) -> None:
        if value and len(value) >= self.MIN_LENGTH and value not in self._values:
            self._values.add(value)
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def mask(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern else text


class LogWriter:
    """Writes one operation's lines. Thread-safe: the job and its output readers share it."""

    def __init__(self, operation_id: str, settings: Settings, masker: SecretMasker) -> None:
        self.operation_id = operation_id
        self._settings = settings
        self._masker = masker
        self._redis = get_redis(settings)
        self._lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()
        # Looked up at the first line: many operations never log, and the lookup costs a query.
        self._seq: int | None = None
        self._is_ended = False

    def _last_seq(self) -> int:
        with session_factory(self._settings)() as session:
            return last_seq(self._redis, session, self.operation_id)

    @property
    def last_seq(self) -> int:
        if self._seq is None:
            self._seq = self._last_seq()
        return self._seq

    def write(self, text: str, stream: str = "stdout") -> None:
        lines = self._masker.mask(text.rstrip("\n")).split("\n")
        with self._lock:
            if self._is_ended:
                # After the end marker nobody reads or stores it (a cancel note that lost the
                # race with the job's own end).
                log.info("operation %s: dropped a line written after its end", self.operation_id)
                return
            seq = self.last_seq
            for line in lines:
                seq += 1
                self._seq = seq
                entry = {
                    "operation_id": self.operation_id,
                    "seq": seq,
                    "time": utcnow(),
                    "stream": stream,
                    "text": line[:MAX_LINE_CHARS],
                }
                self._pending.append(entry)
                self._publish(entry)
            if (
                len(self._pending) >= _FLUSH_LINES
                or time.monotonic() - self._last_flush >= _FLUSH_SECONDS
            ):
                self._flush_locked()

    def _publish(self, entry: dict[str, Any]) -> None:
        try:
            self._redis.xadd(
                stream_key(self.operation_id),
                {
                    "time": entry["time"].isoformat().replace("+00:00", "Z"),
                    "stream": entry["stream"],
                    "text": entry["text"],
                },
                id=f"{entry['seq']}-0",
                maxlen=STREAM_MAXLEN,
                approximate=True,
            )
        except redis.ResponseError:
            # The stream moved past this id (another writer, or an old end marker); the line is
            # still stored, and followers fill gaps from the database.
            pass
        except redis.RedisError:
            pass

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        self._last_flush = time.monotonic()
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            with session_factory(self._settings)() as session:
                session.execute(insert(OperationLog), batch)
                session.commit()
        except IntegrityError:
            # Someone else numbered a line of this operation meanwhile (the reaper's note, when
            # this worker was taken for lost): store every line whose number is still free.
            self._store_one_by_one(batch)

    def _store_one_by_one(self, batch: list[dict[str, Any]]) -> None:
        lost = 0
        for entry in batch:
            try:
                with session_factory(self._settings)() as session:
                    session.execute(insert(OperationLog), [entry])
                    session.commit()
            except IntegrityError:
                lost += 1
        if lost:
            log.warning(
                "operation %s: %d log line(s) not stored, their numbers were taken",
                self.operation_id,
                lost,
            )

    def end(self, status: str) -> None:
        with self._lock:
            self._flush_locked()
            self._is_ended = True
        # A job that wrote nothing does not look its last line up just for the marker's id.
        end_stream(self._settings, self.operation_id, status, last_seq=self._seq)


def end_stream(settings: Settings, operation_id: str, status: str, *, last_seq: int | None) -> None:
    """Tell followers the operation is over; the stream expires an hour later.

    The marker's id is `<last_seq>-1`; with `last_seq` unknown (None) or behind the stream, Redis
    picks one, which is past every line. Followers know the marker by its `end` field."""
    pipe = get_redis(settings).pipeline(transaction=False)
    name = stream_key(operation_id)
    try:
        pipe.xadd(name, {"end": status}, id="*" if last_seq is None else f"{last_seq}-1")
        pipe.expire(name, STREAM_TTL_AFTER_END)
        added, _ = pipe.execute(raise_on_error=False)
        if isinstance(added, redis.ResponseError):
            pipe.xadd(name, {"end": status})
            pipe.expire(name, STREAM_TTL_AFTER_END)
            pipe.execute()
    except redis.RedisError:
        log.warning(
            "could not publish the end of %s's log; followers poll the database", operation_id
        )


def read_lines(
    session: Session, operation_id: str, *, after_seq: int = 0, limit: int = 1000
) -> list[LogLine]:
    rows = session.execute(
        select(OperationLog.seq, OperationLog.time, OperationLog.stream, OperationLog.text)
        .where(OperationLog.operation_id == operation_id, OperationLog.seq > after_seq)
        .order_by(OperationLog.seq)
        .limit(limit)
    ).all()
    return [LogLine(seq=r.seq, time=r.time, stream=r.stream, text=r.text) for r in rows]


def last_seq(client: redis.Redis, session: Session, operation_id: str) -> int:
    """The highest line number of the operation, stored or published (a job publishes each line
    at once and stores them in batches)."""
    stored = session.scalar(
        select(func.max(OperationLog.seq)).where(OperationLog.operation_id == operation_id)
    )
    published = 0
    try:
        newest = client.xrevrange(stream_key(operation_id), count=1)
        if newest:
            published = int(newest[0][0].decode().split("-")[0])
    except redis.RedisError:
        log.warning("redis unavailable; log lines of %s go to the database only", operation_id)
    return max(stored or 0, published)


def append_system_line(settings: Settings, session: Session, operation_id: str, text: str) -> int:
    """A line written by slipway itself about an operation no job is running (canceled before it
    started, worker lost), not by a job; returns its seq. A running job's lines are numbered by
    its worker alone."""
    seq = last_seq(get_redis(settings), session, operation_id) + 1
    now = utcnow()
    session.add(
        OperationLog(operation_id=operation_id, seq=seq, time=now, stream="system", text=text)
    )
    try:
        get_redis(settings).xadd(
            stream_key(operation_id),
            {"time": now.isoformat().replace("+00:00", "Z"), "stream": "system", "text": text},
            id=f"{seq}-0",
        )
    except redis.RedisError:
        pass
    return seq


def purge_older_than(session: Session, cutoff: datetime) -> int:
    result = session.execute(delete(OperationLog).where(OperationLog.time < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]

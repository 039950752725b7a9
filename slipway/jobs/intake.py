"""Group submit: the API's `POST /operations` are stored by one thread, whatever has arrived at
once in one transaction and enqueued in one Redis round trip.

Under load many POSTs arrive together. Each used to take a trip of its own to the thread pool
(with eight in flight, the threads spend more CPU passing the GIL than storing rows), its own
INSERT and commit and its own round trip to Redis. Here the event loop hands each request to the
one intake thread; the thread takes everything waiting, stores it with `inserts.insert_many` and
enqueues it with one pipeline, and wakes each request. A lone request is stored exactly as
`service.submit` stores it, one statement. If a batch fails on one of its rows, each of its
requests is stored on its own, so that one bad request fails alone; if the database fails, the
whole batch gets that error at once. Every request is answered, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Unpack

from sqlalchemy.exc import DataError, IntegrityError

from slipway.core.config import Settings
from slipway.core.db import session_factory, utcnow
from slipway.core.errors import InputError
from slipway.jobs import service
from slipway.jobs.inserts import Companions, insert_many
from slipway.jobs.models import Operation
from slipway.jobs.service import OperationFields

log = logging.getLogger(__name__)

# Enough to take a burst whole; a bigger batch only makes its first request wait longer.
MAX_BATCH = 64


@dataclass
class Submission:
    """One request to start an operation, and where its answer goes."""

    settings: Settings
    fields: OperationFields
    scheduled_for: datetime | None
    also_insert: Companions
    loop: asyncio.AbstractEventLoop = field(repr=False)
    future: asyncio.Future[Operation] = field(repr=False)
    answered: bool = False

    def starts_by(self, now: datetime) -> bool:
        """Whether it would be queued at `now` without waiting (for its time or its locks)."""
        starts = self.scheduled_for is None or self.scheduled_for <= now
        return starts and not self.fields.get("lock_keys")

    def store_alone(self) -> Operation:
        with session_factory(self.settings)() as session:
            return service.submit(
                session,
                self.settings,
                scheduled_for=self.scheduled_for,
                also_insert=self.also_insert,
                **self.fields,
            )

    def answer(self, operation: Operation | None, error: BaseException | None) -> None:
        self.answered = True
        with contextlib.suppress(RuntimeError):  # the caller's loop is gone: nobody to tell
            self.loop.call_soon_threadsafe(_settle, self.future, operation, error)


def _settle(
    future: asyncio.Future[Operation], operation: Operation | None, error: BaseException | None
) -> None:
    if future.done():  # the request was canceled (its client went away); the row stays
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(operation)  # type: ignore[arg-type]


class Intake:
    """The one intake thread of this process, started at the first submission."""

    def __init__(self) -> None:
        self._waiting: queue.SimpleQueue[Submission] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._owner_pid = 0  # a forked child starts a thread of its own

    async def submit(
        self,
        settings: Settings,
        *,
        scheduled_for: datetime | None = None,
        also_insert: Companions = (),
        **fields: Unpack[OperationFields],
    ) -> Operation:
        """`service.submit`, from the event loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Operation] = loop.create_future()
        self._ensure_thread()
        self._waiting.put(Submission(settings, fields, scheduled_for, also_insert, loop, future))
        return await future

    def _ensure_thread(self) -> None:
        if self._owner_pid == os.getpid():
            return
        with self._lock:
            if self._owner_pid != os.getpid():
                self._waiting = queue.SimpleQueue()
                threading.Thread(target=self._run, name="slipway-intake", daemon=True).start()
                self._owner_pid = os.getpid()

    def _run(self) -> None:
        waiting = self._waiting
        while True:
            batch = [waiting.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(waiting.get_nowait())
                except queue.Empty:
                    break
            try:
                self._store(batch)
            except BaseException as exc:  # the thread must outlive any request, and answer it
                log.exception("the intake thread failed on %d submissions", len(batch))
                for submission in batch:
                    if not submission.answered:
                        submission.answer(None, exc)

    def _store(self, batch: list[Submission]) -> None:
        now = utcnow()
        together: list[Submission] = []
        alone: list[Submission] = []  # for later, or with locks: stored by `service.submit`
        for submission in batch:
            (together if submission.starts_by(now) else alone).append(submission)
        if len(together) > 1:
            by_settings: dict[int, list[Submission]] = {}
            for submission in together:
                by_settings.setdefault(id(submission.settings), []).append(submission)
            for group in by_settings.values():
                if len(group) == 1 or not self._store_together(group):
                    alone.extend(group)
        else:
            alone.extend(together)
        for submission in alone:
            try:
                submission.answer(submission.store_alone(), None)
            except Exception as exc:
                submission.answer(None, exc)

    @staticmethod
    def _store_together(group: list[Submission]) -> bool:
        """Store and enqueue `group` at once and answer each. False when one of its requests is
        at fault (nothing was stored; each is then stored alone, so only that one fails); when
        the database itself fails, every request of the group gets that error at once (storing
        each alone would wait on it once per request)."""
        settings = group[0].settings
        try:
            operations = [service.new_operation(**submission.fields) for submission in group]
            for operation in operations:
                operation.created_at = operation.queued_at = utcnow()
            insert_many(
                settings, [(op, s.also_insert) for op, s in zip(operations, group, strict=True)]
            )
        except (InputError, IntegrityError, DataError) as exc:
            log.warning(
                "storing %d operations together failed (%s); storing each alone",
                len(group),
                type(exc).__name__,
            )
            return False
        except Exception as exc:
            for submission in group:
                submission.answer(None, exc)
            return True
        service.enqueue_all(settings, operations)
        for operation, submission in zip(operations, group, strict=True):
            submission.answer(operation, None)
        return True


intake = Intake()

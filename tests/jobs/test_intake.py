"""Group submit (jobs/intake.py): requests that arrive together are stored in one transaction and
enqueued in one round trip, each with its own row, audit row and job; one bad request fails
alone; a scheduled one waits for its time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import event, func, make_url, select
from sqlalchemy.exc import IntegrityError

from slipway.audit import service as audit_service
from slipway.audit.models import AuditEntry
from slipway.core.db import get_engine, session_factory, utcnow
from slipway.core.errors import InputError
from slipway.core.redis import get_redis
from slipway.jobs import queue, service
from slipway.jobs.intake import intake
from slipway.jobs.models import Operation, OperationStatus

NOOP = "system.noop"


def audit(request_id: str):
    return audit_service.row(
        actor="ci",
        action="POST /api/v1/operations",
        target="/api/v1/operations",
        source_ip="127.0.0.1",
        status_code=202,
        request_id=request_id,
    )


BLOCKER = "blocker"


@contextlib.contextmanager
def operations_table_held(settings) -> Iterator[None]:
    """Another connection holds the operations table (SQLite: the write lock), as a slow
    database would: whatever reaches the intake meanwhile piles up."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        conn = sqlite3.connect(url.database or "", isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
    else:
        conn = psycopg.connect(url.set(drivername="postgresql").render_as_string(False))
        conn.execute(f"LOCK TABLE {Operation.__tablename__} IN EXCLUSIVE MODE")
    try:
        yield
    finally:
        conn.rollback()
        conn.close()


def submit_together(settings, requests: list[dict], *, pile_up: bool = True) -> list:
    """Every request handed to the intake at once, as concurrent POSTs are; each outcome is an
    Operation or the exception its caller got. With `pile_up`, they arrive while the intake
    thread waits on the database with one request of its own (subject "blocker"), so they are
    all waiting together when it comes back, whatever the machine's load."""

    async def all_at_once() -> list:
        if not pile_up:
            return await asyncio.gather(
                *(intake.submit(settings, **r) for r in requests), return_exceptions=True
            )
        with operations_table_held(settings):
            blocker = asyncio.ensure_future(intake.submit(settings, kind=NOOP, subject=BLOCKER))
            await asyncio.sleep(0.3)  # the intake thread took it and waits on the database
            waiting = [asyncio.ensure_future(intake.submit(settings, **r)) for r in requests]
            await asyncio.sleep(0.1)  # every request is in the intake's queue
        await blocker
        return await asyncio.gather(*waiting, return_exceptions=True)

    return asyncio.run(all_at_once())


def stored(settings) -> tuple[dict[str, Operation], list[str | None]]:
    """The operations stored (the blocker left out) and the request ids of the audit rows."""
    with session_factory(settings)() as session:
        operations = {
            op.id: op
            for op in session.scalars(
                select(Operation).where(Operation.subject.is_distinct_from(BLOCKER))
            )
        }
        audited = list(session.scalars(select(AuditEntry.request_id)))
    return operations, audited


def queued_job_ids(settings) -> list[str]:
    """The jobs waiting in RQ (the blocker's left out)."""
    with session_factory(settings)() as session:
        blockers = set(session.scalars(select(Operation.id).where(Operation.subject == BLOCKER)))
    name = queue.queue_name("default")
    jobs = Queue(name, connection=get_redis(settings), serializer=JSONSerializer).job_ids
    return [job for job in jobs if job not in blockers]


def test_requests_arriving_together_are_stored_in_one_transaction_each_with_its_own_job(settings):
    commits = []

    def count(_connection) -> None:
        commits.append(1)

    event.listen(get_engine(settings), "commit", count)
    requests = [
        {"kind": NOOP, "subject": f"s{n}", "actor": "ci", "also_insert": [audit(f"r{n}")]}
        for n in range(20)
    ]

    try:
        outcomes = submit_together(settings, requests)
    finally:
        event.remove(get_engine(settings), "commit", count)

    assert all(isinstance(outcome, Operation) for outcome in outcomes), outcomes
    operations, audited = stored(settings)
    ids = [outcome.id for outcome in outcomes]
    assert sorted(ids) == sorted(operations) and len(set(ids)) == 20
    assert [operations[i].subject for i in ids] == [f"s{n}" for n in range(20)]
    assert all(op.status == OperationStatus.queued and op.queued_at for op in operations.values())
    assert sorted(audited) == sorted(f"r{n}" for n in range(20))
    assert sorted(queued_job_ids(settings)) == sorted(ids)  # each enqueued, once
    # Stored alone, each would have been a transaction of its own (on PostgreSQL a statement on
    # the autocommit pool, which commits nothing on this engine): the 20 were one.
    assert len(commits) == (2 if settings.is_sqlite else 1), commits


def test_a_bad_request_among_others_fails_alone_and_the_others_are_stored(settings, caplog):
    table, values = audit("b")
    broken_row = (table, {**values, "status_code": None})  # NOT NULL: the database refuses it
    requests = [
        {"kind": NOOP, "subject": "first", "also_insert": [audit("a")]},
        {"kind": NOOP, "subject": "bad", "also_insert": [broken_row]},
        {"kind": NOOP, "subject": "third", "also_insert": [audit("c")]},
    ]

    with caplog.at_level(logging.WARNING, logger="slipway.jobs.intake"):
        first, bad, third = submit_together(settings, requests)

    assert "storing 3 operations together failed (IntegrityError)" in caplog.text, caplog.text
    assert isinstance(bad, IntegrityError), bad
    operations, audited = stored(settings)
    assert sorted(operations) == sorted([first.id, third.id])
    assert sorted(audited) == ["a", "c"]  # the refused request changed nothing
    assert sorted(queued_job_ids(settings)) == sorted([first.id, third.id])


def test_an_unknown_kind_among_others_is_refused_alone(settings):
    first, bad = submit_together(settings, [{"kind": NOOP}, {"kind": "no.such.kind"}])

    assert isinstance(bad, InputError) and bad.details == {"field": "kind"}
    assert "no.such.kind" in bad.message
    assert list(stored(settings)[0]) == [first.id]


def test_a_request_for_later_is_scheduled_not_queued(settings):
    later = utcnow() + timedelta(hours=1)
    now, scheduled = submit_together(
        settings, [{"kind": NOOP}, {"kind": NOOP, "scheduled_for": later}]
    )

    operations, _ = stored(settings)
    assert operations[now.id].status == OperationStatus.queued
    assert operations[scheduled.id].status == OperationStatus.scheduled
    assert operations[scheduled.id].scheduled_for == later
    assert queued_job_ids(settings) == [now.id]


def test_a_database_that_does_not_answer_fails_every_request_and_stores_nothing(settings):
    broken = settings.model_copy(
        update={"database_url": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    )
    outcomes = submit_together(broken, [{"kind": NOOP} for _ in range(3)], pile_up=False)

    assert all(isinstance(outcome, Exception) for outcome in outcomes), outcomes
    assert queued_job_ids(settings) == []
    with session_factory(settings)() as session:
        assert session.scalar(select(func.count()).select_from(Operation)) == 0


def test_with_redis_down_the_requests_are_stored_and_answered_for_maintenance_to_enqueue(settings):
    no_redis = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})

    outcomes = submit_together(no_redis, [{"kind": NOOP} for _ in range(3)])

    assert all(isinstance(outcome, Operation) for outcome in outcomes), outcomes
    operations, _ = stored(settings)
    assert sorted(operations) == sorted(outcome.id for outcome in outcomes)
    assert all(op.status == OperationStatus.queued for op in operations.values())


def test_with_redis_stalled_the_requests_are_stored_and_answered_within_its_timeout(
    settings, silent_server
):
    # A Redis that accepts connections and never answers (stalled, or cut off without a reset)
    # must not hold every POST of the API for good: the client gives up after its socket timeout.
    stalled = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{silent_server}/0"})

    started = time.monotonic()
    outcomes = submit_together(stalled, [{"kind": NOOP} for _ in range(3)])
    took = time.monotonic() - started

    assert all(isinstance(outcome, Operation) for outcome in outcomes), outcomes
    operations, _ = stored(settings)
    assert sorted(operations) == sorted(outcome.id for outcome in outcomes)
    assert took < 15, f"answered after {took:.1f} s"


def test_a_misspelt_keyword_is_refused_not_dropped(settings):
    # `lock_key` for `lock_keys` would otherwise start the operation without its locks.
    with session_factory(settings)() as session, pytest.raises(TypeError, match="lock_key"):
        service.submit(session, settings, kind=NOOP, lock_key=["app:x"])  # type: ignore[call-arg]
    assert stored(settings)[0] == {}

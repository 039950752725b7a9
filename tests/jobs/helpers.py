"""Helpers for the operations tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import update

from slipway.core.config import Settings
from slipway.core.db import session_factory, utcnow
from slipway.jobs import service
from slipway.jobs.context import OperationContext
from slipway.jobs.models import Operation
from tests.conftest import wait_for


def submit(settings: Settings, kind: str, **kwargs: Any) -> str:
    with session_factory(settings)() as session:
        return service.submit(session, settings, kind=kind, **kwargs).id


def load(settings: Settings, operation_id: str) -> Operation:
    with session_factory(settings)() as session:
        operation = session.get(Operation, operation_id)
        assert operation is not None
        return operation


def running_context(
    settings: Settings, operation_id: str, kind: str = "test.steps"
) -> OperationContext:
    """The operation as a worker's runner holds it after its claim: to run a job in the test."""
    with session_factory(settings)() as session:
        session.execute(
            update(Operation)
            .where(Operation.id == operation_id)
            .values(status="running", started_at=utcnow(), heartbeat_at=utcnow(), worker="w")
        )
        session.commit()
    return OperationContext(
        operation_id=operation_id, kind=kind, params={}, state={}, attempt=1, settings=settings
    )


def wait_status(
    settings: Settings, operation_id: str, *statuses: str, timeout: float = 30
) -> Operation:
    try:
        wait_for(
            lambda: load(settings, operation_id).status in statuses,
            timeout=timeout,
            what=f"operation {operation_id} to be {'/'.join(statuses)}",
        )
    except AssertionError as exc:
        ended = load(settings, operation_id)
        raise AssertionError(f"{exc}; it is {ended.status}, error {ended.error}") from None
    return load(settings, operation_id)


def marks(path: Path) -> list[str]:
    return path.read_text().split("\n")[:-1] if path.exists() else []

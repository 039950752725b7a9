"""A deployment's host rows: `HostBook` writes them while a batch runs, and reads them between.

The hosts of a batch run on one event loop; a database write there would hold up every host's
SSH traffic, so their state changes are collected here and written by a thread of its own.
Between batches (and at the end) the job counts the failed hosts, marks the ones that will not
run as skipped, and sums them up, from the rows as written.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from slipway.releases.models import DeploymentHost, HostStatus

PROGRESS_EVERY = 0.25

log = logging.getLogger(__name__)


class HostBook:
    """Per-host state written by a thread of its own, batched every PROGRESS_EVERY seconds, so the
    event loop that drives the hosts never waits on the database."""

    def __init__(
        self,
        deployment_id: int,
        session: Callable[[], Session],
        flushed: Callable[[], None],
    ) -> None:
        self._deployment_id = deployment_id
        self._session = session
        # Called after every flush, written or not: the job reports its progress from there.
        self._flushed = flushed
        self._lock = threading.Lock()
        self._dirty: dict[int, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="host-book", daemon=True)

    def __enter__(self) -> HostBook:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.flush()

    def set(self, host_id: int, **values: Any) -> None:
        with self._lock:
            self._dirty.setdefault(host_id, {}).update(values)

    def _loop(self) -> None:
        while not self._stop.wait(PROGRESS_EVERY):
            try:
                self.flush()
            except Exception:  # the next flush, or the final one, writes it
                log.exception("writing host state of deployment %s", self._deployment_id)

    def flush(self) -> None:
        with self._lock:
            dirty, self._dirty = self._dirty, {}
        if dirty:
            with self._session() as session:
                for host_id, values in dirty.items():
                    session.execute(
                        update(DeploymentHost)
                        .where(
                            DeploymentHost.deployment_id == self._deployment_id,
                            DeploymentHost.host_id == host_id,
                        )
                        .values(**values)
                    )
                session.commit()
        self._flushed()

    # --- between batches: the rows as written --------------------------------------------------

    def count_failed(self) -> int:
        with self._session() as session:
            return len(
                session.scalars(
                    select(DeploymentHost.id).where(
                        DeploymentHost.deployment_id == self._deployment_id,
                        DeploymentHost.status == HostStatus.failed,
                    )
                ).all()
            )

    def skip_pending(self) -> None:
        with self._session() as session:
            session.execute(
                update(DeploymentHost)
                .where(
                    DeploymentHost.deployment_id == self._deployment_id,
                    DeploymentHost.status == HostStatus.pending,
                )
                .values(status=HostStatus.skipped)
            )
            session.commit()

    def summary(self) -> dict[str, Any]:
        with self._session() as session:
            rows = session.scalars(
                select(DeploymentHost)
                .where(DeploymentHost.deployment_id == self._deployment_id)
                .order_by(DeploymentHost.batch, DeploymentHost.id)
            ).all()
            return {
                row.host_name: {"status": row.status, "version": row.version, "error": row.error}
                for row in rows
            }

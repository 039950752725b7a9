"""Prometheus metrics, read from the database and Redis at scrape time (so any replica answers)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import generate_latest
from prometheus_client.core import CollectorRegistry, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from slipway.core.config import Settings
from slipway.core.db import session_factory
from slipway.jobs.models import Operation, OperationStatus
from slipway.jobs.queue import get_queue
from slipway.jobs.worker import live_workers


class OperationsCollector(Collector):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[GaugeMetricFamily]:
        by_state = GaugeMetricFamily(
            "slipway_operations", "Operations by kind and status", labels=["kind", "status"]
        )
        durations = GaugeMetricFamily(
            "slipway_operation_duration_seconds_sum",
            "Total run time of finished operations, by kind and status",
            labels=["kind", "status"],
        )
        finished = GaugeMetricFamily(
            "slipway_operation_duration_seconds_count",
            "Finished operations with a run time, by kind and status",
            labels=["kind", "status"],
        )
        with session_factory(self.settings)() as session:
            for kind, status, count in session.execute(
                select(Operation.kind, Operation.status, func.count()).group_by(
                    Operation.kind, Operation.status
                )
            ):
                by_state.add_metric([kind, status], count)
            rows = session.execute(
                select(
                    Operation.kind, Operation.status, Operation.started_at, Operation.finished_at
                ).where(Operation.finished_at.is_not(None), Operation.started_at.is_not(None))
            )
            totals: dict[tuple[str, str], list[float]] = {}
            for kind, status, started, ended in rows:
                bucket = totals.setdefault((kind, status), [0.0, 0.0])
                bucket[0] += (ended - started).total_seconds()
                bucket[1] += 1
            waiting = session.scalar(
                select(func.count()).where(Operation.status == OperationStatus.waiting)
            )
        for (kind, status), (seconds, count) in totals.items():
            durations.add_metric([kind, status], seconds)
            finished.add_metric([kind, status], count)
        yield by_state
        yield durations
        yield finished
        depth = GaugeMetricFamily(
            "slipway_queue_depth", "Jobs waiting in each queue", labels=["queue"]
        )
        for name in self.settings.queues:
            try:
                depth.add_metric([name], len(get_queue(self.settings, name)))
            except Exception:
                continue
        depth.add_metric(["(waiting for locks)"], waiting or 0)
        yield depth
        workers = GaugeMetricFamily("slipway_workers", "Live workers")
        try:
            workers.add_metric([], len(live_workers(self.settings)))
        except Exception:
            workers.add_metric([], 0)
        yield workers


def render(settings: Settings) -> bytes:
    registry = CollectorRegistry()
    registry.register(OperationsCollector(settings))
    return generate_latest(registry)

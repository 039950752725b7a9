"""Idle memory: RSS of `slipway api` (with its child processes) and of `slipway worker`, 5 s after
they are up, on PostgreSQL (binding) and SQLite (for information)."""

from __future__ import annotations

import time

import psutil
from _common import Instance, Table, finish, rss_mb

IDLE_SECONDS = 5
LIMIT_MB = 150


def bench(backend: str) -> Table:
    table = Table(f"idle memory on {backend}", binding=backend != "sqlite")
    with Instance(backend) as inst:
        _, api = inst.api()
        _, api2 = inst.api(workers=2)
        worker = inst.worker("w1")
        time.sleep(IDLE_SECONDS)
        for name, pid in (("slipway api", api.pid), ("slipway worker", worker.pid)):
            rss = rss_mb(pid)
            table.add(f"{name} RSS", f"{rss:.0f} MB", f"<= {LIMIT_MB} MB", rss <= LIMIT_MB)
        parts = [api2.pid, *(child.pid for child in psutil.Process(api2.pid).children())]
        sizes = " + ".join(f"{rss_mb(pid, children=False):.0f}" for pid in parts)
        table.add(
            "slipway api --workers 2 RSS, all processes", f"{rss_mb(api2.pid):.0f} MB = {sizes}"
        )
    return table


def main() -> None:
    started = time.monotonic()
    finish([bench("postgresql"), bench("sqlite")], started)


if __name__ == "__main__":
    main()

"""An API process stops when asked, whenever it is asked."""

from __future__ import annotations

import asyncio
import random
from typing import Any


def test_the_api_stops_at_once_even_right_after_starting(settings: Any, app: Any) -> None:
    # Its auth-change listener is subscribing to Redis in the first milliseconds. Python 3.11's
    # asyncio.wait_for (which redis-py sends commands with) drops a cancel that lands as its
    # command completes, and the listener went on listening: the stop hung for good (about one
    # stop in eight, 1 ms after start).
    hung = 0

    async def run(started: asyncio.Event, stopped: asyncio.Event) -> None:
        async with app.router.lifespan_context(app):
            started.set()
            await asyncio.sleep(random.uniform(0, 0.004))
        stopped.set()

    async def start_and_stop() -> None:
        nonlocal hung
        for _ in range(60):
            started, stopped = asyncio.Event(), asyncio.Event()
            task = asyncio.create_task(run(started, stopped))
            await started.wait()
            try:
                await asyncio.wait_for(stopped.wait(), timeout=2)
            except TimeoutError:
                hung += 1
                task.cancel()

    asyncio.run(start_and_stop())
    assert hung == 0, f"{hung} of 60 stops hung"

"""The operations running in this worker process, for its monitor thread to heartbeat and cancel."""

from __future__ import annotations

import os
import socket
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from slipway.jobs.context import OperationContext

_lock = threading.Lock()
_running: dict[str, OperationContext] = {}
_name = f"{socket.gethostname()}.{os.getpid()}"


def set_worker_name(name: str) -> None:
    global _name
    _name = name


def worker_name() -> str:
    return _name


def register(ctx: OperationContext) -> None:
    with _lock:
        _running[ctx.operation_id] = ctx


def unregister(operation_id: str) -> None:
    with _lock:
        _running.pop(operation_id, None)


def running() -> dict[str, OperationContext]:
    with _lock:
        return dict(_running)

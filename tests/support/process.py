"""Stopping a process a test started."""

from __future__ import annotations

import subprocess
from typing import Any


def stop_process(process: Any, *, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not ended within `timeout` seconds; waits for the end.

    `process` is a subprocess.Popen or anything with its poll/terminate/wait/kill."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()

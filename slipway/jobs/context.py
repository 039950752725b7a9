"""What a job handler gets: logging, steps, progress, cancellable waits and child processes."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from slipway.core.config import Settings
from slipway.core.db import session_factory
from slipway.core.errors import OperationError, SlipwayError
from slipway.jobs.logs import LogWriter, SecretMasker
from slipway.jobs.models import Operation

KILL_GRACE_SECONDS = 5.0


class OperationCanceledError(SlipwayError):
    """Raised at a step boundary after someone canceled the operation."""

    default_code = "canceled"


class WorkerStoppingError(SlipwayError):
    """Raised at a step boundary after the worker was asked to stop (SIGTERM)."""

    default_code = "worker_stopped"


# Set by the worker's SIGTERM handler: every running job stops at its next step.
WORKER_STOPPING = threading.Event()


@dataclass(frozen=True)
class CommandResult:
    argv: list[str]
    exited: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.exited == 0


class OperationContext:
    """One running operation, as its handler sees it."""

    def __init__(
        self,
        *,
        operation_id: str,
        kind: str,
        params: dict[str, Any],
        state: dict[str, Any],
        attempt: int,
        settings: Settings,
    ) -> None:
        self.operation_id = operation_id
        self.kind = kind
        self.params = params
        self.state = state
        self.attempt = attempt
        self.settings = settings
        self.masker = SecretMasker()
        self.logs = LogWriter(operation_id, settings, self.masker)
        self._canceled = threading.Event()
        self._cancel_lock = threading.Lock()
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._children_lock = threading.Lock()
        self.current_step: str | None = None

    # --- logging and progress ------------------------------------------------------------------

    def log(self, text: str, stream: str = "stdout") -> None:
        self.logs.write(text, stream)

    def add_secret(self, value: str | None) -> None:
        """Mask `value` in every line logged from now on."""
        self.masker.add(value)

    def progress(self, done: int, total: int) -> None:
        with self.session() as session:
            session.execute(
                update(Operation)
                .where(Operation.id == self.operation_id)
                .values(progress_done=done, progress_total=total)
            )
            session.commit()

    def session(self) -> Session:
        return session_factory(self.settings)()

    # --- cancellation --------------------------------------------------------------------------

    @property
    def is_canceled(self) -> bool:
        return self._canceled.is_set()

    def request_cancel(self, who: str | None = None) -> None:
        """Called from the worker's monitor thread: note who asked in the log, stop children now,
        and the job at its next step."""
        with self._cancel_lock:
            if self._canceled.is_set():
                return
            # The note first: once the flag is set the job may end, and its last line must be
            # the outcome.
            try:
                self.log(f"cancel requested by {who or 'someone'}", "system")
            except Exception:  # the note must not keep the children alive
                pass
            self._canceled.set()
        self.kill_children()

    def check(self) -> None:
        """Raise if the operation was canceled or the worker is stopping."""
        if self._canceled.is_set():
            raise OperationCanceledError("the operation was canceled")
        if WORKER_STOPPING.is_set():
            raise WorkerStoppingError(
                f"the worker was asked to stop before step {self.current_step or 'start'}"
            )

    def sleep(self, seconds: float) -> None:
        """Wait, but wake at once when canceled."""
        if self._canceled.wait(seconds):
            self.check()

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """A named step: checked for cancel before it starts, recorded when it finishes."""
        self.check()
        self.current_step = name
        self.log(f"==> {name}", "system")
        yield
        self.logs.flush()
        done = self.state.setdefault("steps_done", [])
        if name not in done:
            done.append(name)

    def is_done(self, name: str) -> bool:
        """Whether an earlier run of this (resumed) operation finished step `name`."""
        return name in self.state.get("steps_done", [])

    # --- child processes -----------------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> CommandResult:
        """Run a program (never through a shell), streaming its output into the log.

        Cancel kills its whole process group; `check` raises OperationError on a non-zero exit.
        """
        self.check()
        started = time.monotonic()
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        with self._children_lock:
            self._children[process.pid] = process
        outputs: dict[str, list[str]] = {"stdout": [], "stderr": []}

        def pump(pipe: Any, stream: str) -> None:
            for raw in iter(pipe.readline, b""):
                # Progress output rewrites a line with \r; keep its last state.
                line = raw.decode(errors="replace").rstrip("\r\n").rsplit("\r", 1)[-1]
                outputs[stream].append(line)
                self.log(line, stream)
            pipe.close()

        readers = [
            threading.Thread(target=pump, args=(process.stdout, "stdout"), daemon=True),
            threading.Thread(target=pump, args=(process.stderr, "stderr"), daemon=True),
        ]
        for reader in readers:
            reader.start()
        try:
            exited = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill(process)
            exited = process.wait()
            raise OperationError(
                f"{argv[0]} did not finish within {timeout:g} s and was killed", code="timeout"
            ) from None
        finally:
            for reader in readers:
                reader.join(timeout=5)
            with self._children_lock:
                self._children.pop(process.pid, None)
        result = CommandResult(
            argv=list(argv),
            exited=exited,
            stdout="\n".join(outputs["stdout"]),
            stderr="\n".join(outputs["stderr"]),
            duration=time.monotonic() - started,
        )
        self.check()
        if check and not result.ok:
            raise OperationError(f"{argv[0]} exited with status {exited}", code="command_failed")
        return result

    def kill_children(self) -> None:
        with self._children_lock:
            children = list(self._children.values())
        for process in children:
            self._kill(process)

    @staticmethod
    def _kill(process: subprocess.Popen[bytes]) -> None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

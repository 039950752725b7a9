"""`slipway api` and `slipway worker` for the tests, forked from a process that imported slipway.

A new `slipway` process spends about 3 s of CPU importing before it does anything, and the suite
starts a few hundred of them. The forker imports everything once, then forks a child per request
that takes the test's environment, working directory and log file and runs the real command line
(`slipway.cli.main.main`) from there: the same code path as the console script, minus the imports.
The CLI tests' own commands (`subprocess.run` of the console script) and `make run` still start
the program from scratch.

The forker is single-threaded (forking a threaded process can copy a held lock) and answers one
JSON line per connection on a Unix socket:

    {"spawn": [args], "env": {...}, "cwd": "...", "log": "..."}  ->  {"pid": N}
    {"poll": N}                                                   ->  {"returncode": int | null}

It is the children's parent, so the tests ask it how a child ended (a signal is a negative code,
as with subprocess).

Set SLIPWAY_TEST_FORK=0 to spawn every process from scratch instead.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from tests.support.process import stop_process

PRELOAD = (
    "slipway.cli.main",
    "slipway.api.app",
    "slipway.jobs.worker",
    "slipway.system.jobs",
    "slipway.apps.jobs",
    "slipway.releases.jobs",
    "slipway.builds.jobs",
    "tests.support.kinds",
    "uvicorn",
)


# --- the client, in the test process ----------------------------------------------------------


class Forker:
    """The running forker process, and how to reach it."""

    def __init__(self, workdir: Path) -> None:
        self.path = workdir / "forker.sock"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.forker", str(self.path)],
            cwd=Path(__file__).resolve().parents[2],
            stdout=open(workdir / "forker.log", "ab"),  # noqa: SIM115 - the child keeps it
            stderr=subprocess.STDOUT,
        )

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + 60  # the first request waits for the imports
        while True:
            try:
                with socket.socket(socket.AF_UNIX) as sock:
                    sock.connect(str(self.path))
                    sock.sendall(json.dumps(request).encode() + b"\n")
                    answer = sock.makefile("rb").readline()
                return dict(json.loads(answer))
            except (FileNotFoundError, ConnectionRefusedError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the test forker did not start; see forker.log") from None
                time.sleep(0.05)

    def spawn(self, args: list[str], *, env: dict[str, str], cwd: Path, log: Path) -> Forked:
        pid = self.ask({"spawn": args, "env": env, "cwd": str(cwd), "log": str(log)})["pid"]
        return Forked(self, int(pid), args)

    def stop(self) -> None:
        stop_process(self.process)


class Forked:
    """A forked `slipway` process, with the part of subprocess.Popen the tests use."""

    def __init__(self, forker: Forker, pid: int, args: list[str]) -> None:
        self.forker = forker
        self.pid = pid
        self.args = args
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.forker.ask({"poll": self.pid})["returncode"]
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(["slipway", *self.args], timeout or 0)
            time.sleep(0.02)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


# --- the forker process ----------------------------------------------------------------------


def _serve(path: str) -> None:
    for module in PRELOAD:
        importlib.import_module(module)
    # Reaped here, between requests, not in a SIGCHLD handler: a handler could see a child end
    # before its spawn was recorded.
    ended: dict[int, int] = {}

    def reap() -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            ended[pid] = os.waitstatus_to_exitcode(status)

    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX)
    server.bind(path + ".new")
    server.listen(64)
    os.rename(path + ".new", path)  # clients connect only once it listens
    while True:
        conn, _ = server.accept()
        with conn:
            request = json.loads(conn.makefile("rb").readline())
            reap()
            if "spawn" in request:
                pid = _fork(request, server, conn)
                ended.pop(pid, None)  # a number an earlier child had
                answer: dict[str, Any] = {"pid": pid}
            else:
                answer = {"returncode": ended.get(int(request["poll"]))}
            conn.sendall(json.dumps(answer).encode() + b"\n")


def _fork(request: dict[str, Any], server: socket.socket, conn: socket.socket) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        server.close()
        conn.close()
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["slipway", *request["spawn"]]
        from slipway.cli.main import main

        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()  # into the test's log, or the forker's when that failed
    finally:
        with contextlib.suppress(Exception):
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)  # never back into the forker's loop


if __name__ == "__main__":
    _serve(sys.argv[1])

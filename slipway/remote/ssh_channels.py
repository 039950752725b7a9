"""One command on a channel of its own over an open SSH connection, and how it is stopped.

A timeout or a cancel kills the command and everything it started on the host: each command's
shell first says its pid, the leader of its process group, and the group is killed from a second
channel. SSHSession (remote/ssh_session.py) runs every command and transfer through here.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncssh

from slipway.remote.ssh_types import SSHConnectionLostError, SSHTarget

MAX_CHANNELS = 8  # OpenSSH allows 10 channels per connection by default (MaxSessions)
KILL_GRACE = 5.0  # how long a killed command gets to report its end
_SAY_PID = "echo slipway-pid:$$ >&2"
_PID_LINE = re.compile(rb"slipway-pid:(\d+)\n")

OnLine = Callable[[str, str], None]
Process = asyncssh.SSHClientProcess[bytes]


class Channels:
    """An open connection's channels, a command each and at most MAX_CHANNELS at once; closing
    it waits for the commands cancelled on it to be killed."""

    def __init__(self, conn: asyncssh.SSHClientConnection, target: SSHTarget) -> None:
        self._conn = conn
        self._target = target
        self._slots = asyncio.Semaphore(MAX_CHANNELS)
        self._stopping: set[asyncio.Future[None]] = set()

    async def execute(
        self,
        command: str,
        talk: Callable[[Running], Awaitable[None]],
        *,
        timeout: float | None,
        shown: str,
    ) -> int:
        """Run `command` on a channel of its own while `talk` feeds and drains it; returns its
        exit status (-N for signal N). Raises TimedOut after killing it on timeout. `shown` is
        how messages name the work (never the command line: env values may be secrets)."""
        async with self._slots:
            try:
                running = await self._open(command)
                try:
                    async with asyncio.timeout(timeout):
                        await talk(running)
                        await running.process.wait_closed()
                except TimeoutError:
                    await self._stop(running)
                    raise TimedOut(running.process.returncode) from None
                except BaseException:  # cancelled, a failing on_line, the connection gone
                    self._stop_soon(running)
                    raise
            except (asyncssh.DisconnectError, asyncssh.ChannelOpenError, ConnectionError) as exc:
                raise self._lost(shown) from exc
        if running.process.returncode is None:  # the channel closed without an exit status
            raise self._lost(shown)
        return running.process.returncode

    async def close(self) -> None:
        """Close the connection, once commands cancelled on it have been killed."""
        if self._stopping:
            await asyncio.wait(self._stopping, timeout=KILL_GRACE)
        self._conn.close()
        await self._conn.wait_closed()

    async def _open(self, command: str) -> Running:
        """Start `command`; a cancel that lands mid-start still stops it once it has started."""
        starting = asyncio.ensure_future(self._start(command))
        try:
            return await asyncio.shield(starting)
        except asyncio.CancelledError:
            starting.add_done_callback(
                lambda done: done.cancelled() or done.exception() or self._stop_soon(done.result())
            )
            raise

    async def _start(self, command: str) -> Running:
        # sshd runs every command as a session (and process group) leader; its first line tells
        # us that leader's pid, so that _stop can kill the whole group. A line of its own: a
        # shell parses line by line, so a syntax error further on still comes after it.
        process = await self._conn.create_process(
            f"{_SAY_PID}\n{command}", encoding=None, request_pty=False
        )
        early = b""  # what a chatty .bashrc wrote before the pid line
        while line := await process.stderr.readline():
            said = _PID_LINE.fullmatch(line)
            if said:
                return Running(process, int(said[1]), early)
            early += line
        return Running(process, None, early)  # not a POSIX login shell: no group to kill

    async def _stop(self, running: Running) -> None:
        """Kill a command that is still running, and everything it started, on the host.

        Closing the channel would leave it running, and the SSH "signal" request is no help:
        OpenSSH refuses it for root logins (no privilege separation there), the usual case. So
        the process group is killed from a second channel, then the first one is closed.
        """
        process = running.process
        if process.returncode is None and running.pid is not None:
            group = running.pid
            # `kill -9 -PGID`: the one spelling dash, bash and busybox sh all take.
            kill = f"kill -9 -{group} 2>/dev/null || kill -9 {group} 2>/dev/null"
            if self._target.user != "root":  # what it ran under sudo is root's
                kill += f"; sudo -n /bin/kill -9 -- -{group} 2>/dev/null"
            with contextlib.suppress(Exception):  # the connection may be gone as well
                async with asyncio.timeout(KILL_GRACE):
                    await self._conn.run(kill, request_pty=False)
                    await process.wait_closed()
        process.close()

    def _stop_soon(self, running: Running) -> None:
        """_stop in the background (the caller was cancelled); close() waits for it."""
        task = asyncio.ensure_future(self._stop(running))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    def _lost(self, shown: str) -> SSHConnectionLostError:
        return SSHConnectionLostError(
            f"{self._target.label}: the connection was lost during {shown}; check that the host "
            "is up and retry (what was under way may or may not have finished)"
        )


@dataclass
class Running:
    """A command started on its channel, the pid line read."""

    process: Process
    pid: int | None  # on the host: the command's process (and process group) leader
    early_stderr: bytes = b""  # what came instead of the pid line

    @property
    def stdout(self) -> asyncssh.SSHReader[bytes]:
        return self.process.stdout

    @property
    def stdin(self) -> asyncssh.SSHWriter[bytes]:
        return self.process.stdin


class TimedOut(Exception):
    """The command outlived its timeout and was killed; `status` is what it reported, if any."""

    def __init__(self, status: int | None) -> None:
        self.status = status


async def pump(
    reader: asyncssh.SSHReader[bytes], stream: str, sink: list[str], on_line: OnLine | None
) -> None:
    while raw := await reader.readline():  # b"" only at the end (iterating yields that too)
        line = raw.decode("utf-8", errors="replace")
        sink.append(line)
        if on_line is not None:
            on_line(stream, line.rstrip("\n"))


async def pump_stderr(running: Running, sink: list[str], on_line: OnLine | None) -> None:
    if running.early_stderr:
        line = running.early_stderr.decode("utf-8", errors="replace")
        sink.append(line)
        if on_line is not None:
            on_line("stderr", line.rstrip("\n"))
    await pump(running.process.stderr, "stderr", sink, on_line)

"""One open SSH connection to a host, and every command and file transfer run over it.

One SSH channel per command over the one connection, so a command costs a round trip, not a
handshake. A timeout or a cancel kills the command and everything it started on the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import posixpath
import re
import shlex
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from slipway.core.errors import InputError, RemoteCommandError
from slipway.remote.ssh_keys import public_line
from slipway.remote.ssh_types import RemoteResult, SSHConnectionLostError, SSHError, SSHTarget

MAX_CHANNELS = 8  # OpenSSH allows 10 channels per connection by default (MaxSessions)
CHUNK = 256 * 1024
KILL_GRACE = 5.0  # how long a killed command gets to report its end
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SAY_PID = "echo slipway-pid:$$ >&2"
_PID_LINE = re.compile(rb"slipway-pid:(\d+)\n")

OnLine = Callable[[str, str], None]
Process = asyncssh.SSHClientProcess[bytes]


class SSHSession:
    """One open connection to a host; use as `async with await connect(target) as session`."""

    def __init__(self, conn: asyncssh.SSHClientConnection, target: SSHTarget) -> None:
        self._conn = conn
        self.target = target
        self.label = target.label
        server_key = conn.get_server_host_key()
        assert server_key is not None  # there is always one once the handshake is done
        self.host_key = public_line(server_key)
        self.host_key_fingerprint = server_key.get_fingerprint("sha256")
        self._channels = asyncio.Semaphore(MAX_CHANNELS)
        self._stopping: set[asyncio.Future[None]] = set()

    async def __aenter__(self) -> SSHSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def run(
        self,
        command: str,
        *,
        check: bool = True,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        input: bytes | str | None = None,
        on_line: OnLine | None = None,
    ) -> RemoteResult:
        """Run `command` in the login shell (no pty); lines go to `on_line(stream, line)` as
        they arrive. A timeout or a cancel kills the command and all it started."""
        started = time.monotonic()
        out: list[str] = []
        err: list[str] = []
        data = input.encode() if isinstance(input, str) else input

        async def talk(running: _Running) -> None:
            if data:
                running.stdin.write(data)
            running.stdin.write_eof()
            await asyncio.gather(
                _pump(running.stdout, "stdout", out, on_line),
                _pump_stderr(running, err, on_line),
            )

        def result(status: int | None) -> RemoteResult:
            duration = time.monotonic() - started
            return RemoteResult(command, -1 if status is None else status, "".join(out),
                                "".join(err), duration)  # fmt: skip

        try:
            status = await self._execute(
                _with_env(command, env), talk, timeout=timeout, shown=f"`{_short(command)}`"
            )
        except _TimedOut as timed_out:
            raise RemoteCommandError(
                f"{self.label}: `{_short(command)}` did not finish within {timeout:g} s and was "
                "killed; give it a longer timeout or find out what it waits for",
                result=result(timed_out.status),
                code="timeout",
            ) from None
        done = result(status)
        if check and not done.ok:
            raise _command_failed(self.label, done)
        return done

    async def upload(
        self,
        local: Path,
        remote: str,
        *,
        sha256: str | None = None,
        unpack_into: str | None = None,
    ) -> str:
        """Copy `local` to `remote` through `remote.part`, renamed into place only once the
        host's sha256 of what it wrote matches ours (or `sha256`, when given); returns it.

        With `unpack_into`, the same stream is also unpacked (`tar -xz`) into that directory as
        it arrives: one pass over the network and the disk instead of an upload, then a read.
        """
        size = local.stat().st_size
        part = shlex.quote(remote + ".part")
        # Hash here only when the caller does not know the sum: a deploy to ten hosts hashes
        # its package once, not ten times.
        hashing = None if sha256 else asyncio.ensure_future(asyncio.to_thread(_file_sha256, local))
        if unpack_into is not None:
            target = shlex.quote(unpack_into)
            receive = (
                f"mkdir -p -- {target} && tee -- {part} | tar -xzf - -C {target} --no-same-owner"
            )
        else:
            receive = f"cat > {part}"
        # The sum is taken from the file just written (page cache); openssl is 3x faster than
        # coreutils here. wc then tells a short write (a full disk) from a complete one.
        command = (
            f"mkdir -p -- {_parent(remote)} && {{ {receive}; echo received $?; }};"
            f" {{ {sha256_command(remote + '.part')}; }};"
            f" wc -c < {part}"
        )
        with local.open("rb") as source:

            async def send(stdin: asyncssh.SSHWriter[bytes]) -> None:
                while chunk := source.read(CHUNK):
                    stdin.write(chunk)
                    await stdin.drain()

            done = await self._feed(command, send, shown=f"the upload to {remote}")
        ours = sha256 if hashing is None else await hashing
        fields = [line.split() for line in done.stdout.split("\n") if line.strip()]
        received = next((f[1] for f in fields if f[0] == "received" and len(f) == 2), None)
        if not done.ok or received is None or len(fields) < 3 or not fields[-1][0].isdigit():
            await self._discard(remote + ".part")
            raise _command_failed(self.label, done, doing=f"upload to {remote}")
        theirs, written = fields[-2][0].lower(), int(fields[-1][0])
        if written == size and received != "0":
            await self._discard(remote + ".part")
            why = _first_line(done.stderr) or f"exit status {received}"
            raise RemoteCommandError(
                f"{self.label}: unpacking the upload into {unpack_into} failed: {why}",
                result=done,
                code="unpack_failed",
            )
        if written != size:
            await self._discard(remote + ".part")
            why = _first_line(done.stderr) or "the host stored fewer bytes than were sent"
            raise RemoteCommandError(
                f"{self.label}: upload to {remote} stopped after {written} of {size} bytes: "
                f"{why}; free space on the host and retry",
                result=done,
                code="upload_incomplete",
            )
        expected = (ours or "").lower()
        if theirs != expected:
            await self._discard(remote + ".part")
            raise RemoteCommandError(
                f"{self.label}: {remote} arrived with sha256 {theirs}, expected {expected}; "
                "the local file is not the one expected: rebuild or re-upload it",
                result=done,
                code="checksum_mismatch",
            )
        await self.run(f"mv -f -- {part} {shlex.quote(remote)}")
        return theirs

    async def sha256(self, remote: str) -> str | None:
        """The sha256 of a file on the host, or None when there is no such file."""
        path = shlex.quote(remote)
        done = await self.run(f"[ -e {path} ] || exit 0; {sha256_command(remote)}")
        return done.stdout.split()[0] if done.stdout.strip() else None

    async def write_file(self, remote: str, data: bytes, *, mode: int = 0o644) -> None:
        """Replace `remote` with `data` atomically: readers see the old file or the new one."""
        if not 0 <= mode <= 0o7777:
            raise InputError(f"file mode {mode:o} is not a permission mode", field="mode")
        part, path = shlex.quote(remote + ".part"), shlex.quote(remote)
        # The size check stops a stream cut short (connection lost) from being renamed in.
        command = (
            f"mkdir -p -- {_parent(remote)} && cat > {part}"
            f" && [ $(wc -c < {part}) -eq {len(data)} ] && chmod {mode:o} -- {part}"
            f" && mv -f -- {part} {path}"
            f" || {{ rm -f -- {part}; exit 1; }}"
        )

        async def send(stdin: asyncssh.SSHWriter[bytes]) -> None:
            stdin.write(data)
            await stdin.drain()

        done = await self._feed(command, send, shown=f"writing {remote}")
        if not done.ok:
            raise _command_failed(self.label, done, doing=f"write {remote}")

    async def read_file(self, remote: str) -> bytes:
        """The bytes of a file on the host."""
        started = time.monotonic()
        chunks: list[bytes] = []
        err: list[str] = []

        async def talk(running: _Running) -> None:
            running.stdin.write_eof()
            content, _ = await asyncio.gather(
                running.stdout.read(), _pump_stderr(running, err, None)
            )
            chunks.append(content)

        command = f"cat -- {shlex.quote(remote)}"
        status = await self._execute(command, talk, timeout=None, shown=f"reading {remote}")
        if status != 0:
            done = RemoteResult(command, status, "", "".join(err), time.monotonic() - started)
            raise _command_failed(self.label, done, doing=f"read {remote}")
        return b"".join(chunks)

    async def close(self) -> None:
        """Close the connection, once commands cancelled on it have been killed."""
        if self._stopping:
            await asyncio.wait(self._stopping, timeout=KILL_GRACE)
        self._conn.close()
        await self._conn.wait_closed()

    # --- internals ----------------------------------------------------------------------------

    async def _feed(
        self,
        command: str,
        send: Callable[[asyncssh.SSHWriter[bytes]], Awaitable[None]],
        *,
        shown: str,
    ) -> RemoteResult:
        """Run `command` with `send` writing its stdin; stdout and stderr are collected."""
        started = time.monotonic()
        out: list[str] = []
        err: list[str] = []

        async def talk(running: _Running) -> None:
            readers = asyncio.gather(
                _pump(running.stdout, "stdout", out, None), _pump_stderr(running, err, None)
            )
            try:
                await send(running.stdin)
                running.stdin.write_eof()
            except BaseException:
                readers.cancel()
                raise
            await readers

        status = await self._execute(command, talk, timeout=None, shown=shown)
        duration = time.monotonic() - started
        return RemoteResult(command, status, "".join(out), "".join(err), duration)

    async def _execute(
        self,
        command: str,
        talk: Callable[[_Running], Awaitable[None]],
        *,
        timeout: float | None,
        shown: str,
    ) -> int:
        """Run `command` on a channel of its own while `talk` feeds and drains it; returns its
        exit status (-N for signal N). Raises _TimedOut after killing it on timeout. `shown` is
        how messages name the work (never the command line: env values may be secrets)."""
        async with self._channels:
            try:
                running = await self._open(command)
                try:
                    async with asyncio.timeout(timeout):
                        await talk(running)
                        await running.process.wait_closed()
                except TimeoutError:
                    await self._stop(running)
                    raise _TimedOut(running.process.returncode) from None
                except BaseException:  # cancelled, a failing on_line, the connection gone
                    self._stop_soon(running)
                    raise
            except (asyncssh.DisconnectError, asyncssh.ChannelOpenError, ConnectionError) as exc:
                raise self._lost(shown) from exc
        if running.process.returncode is None:  # the channel closed without an exit status
            raise self._lost(shown)
        return running.process.returncode

    async def _open(self, command: str) -> _Running:
        """Start `command`; a cancel that lands mid-start still stops it once it has started."""
        starting = asyncio.ensure_future(self._start(command))
        try:
            return await asyncio.shield(starting)
        except asyncio.CancelledError:
            starting.add_done_callback(
                lambda done: done.cancelled() or done.exception() or self._stop_soon(done.result())
            )
            raise

    async def _start(self, command: str) -> _Running:
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
                return _Running(process, int(said[1]), early)
            early += line
        return _Running(process, None, early)  # not a POSIX login shell: no group to kill

    async def _stop(self, running: _Running) -> None:
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
            if self.target.user != "root":  # what it ran under sudo is root's
                kill += f"; sudo -n /bin/kill -9 -- -{group} 2>/dev/null"
            with contextlib.suppress(Exception):  # the connection may be gone as well
                async with asyncio.timeout(KILL_GRACE):
                    await self._conn.run(kill, request_pty=False)
                    await process.wait_closed()
        process.close()

    def _stop_soon(self, running: _Running) -> None:
        """_stop in the background (the caller was cancelled); close() waits for it."""
        task = asyncio.ensure_future(self._stop(running))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _discard(self, path: str) -> None:
        with contextlib.suppress(SSHError, RemoteCommandError):
            await self.run(f"rm -f -- {shlex.quote(path)}", check=False)

    def _lost(self, shown: str) -> SSHConnectionLostError:
        return SSHConnectionLostError(
            f"{self.label}: the connection was lost during {shown}; check that the host is up "
            "and retry (what was under way may or may not have finished)"
        )


@dataclass
class _Running:
    process: Process
    pid: int | None  # on the host: the command's process (and process group) leader
    early_stderr: bytes = b""  # what came instead of the pid line

    @property
    def stdout(self) -> asyncssh.SSHReader[bytes]:
        return self.process.stdout

    @property
    def stdin(self) -> asyncssh.SSHWriter[bytes]:
        return self.process.stdin


class _TimedOut(Exception):
    def __init__(self, status: int | None) -> None:
        self.status = status


async def _pump(
    reader: asyncssh.SSHReader[bytes], stream: str, sink: list[str], on_line: OnLine | None
) -> None:
    while raw := await reader.readline():  # b"" only at the end (iterating yields that too)
        line = raw.decode("utf-8", errors="replace")
        sink.append(line)
        if on_line is not None:
            on_line(stream, line.rstrip("\n"))


async def _pump_stderr(running: _Running, sink: list[str], on_line: OnLine | None) -> None:
    if running.early_stderr:
        line = running.early_stderr.decode("utf-8", errors="replace")
        sink.append(line)
        if on_line is not None:
            on_line("stderr", line.rstrip("\n"))
    await _pump(running.process.stderr, "stderr", sink, on_line)


def sha256_command(remote: str) -> str:
    """A shell command printing `<sha256> …` of a file on the host: openssl when there is one
    (3x faster than coreutils here), else sha256sum."""
    path = shlex.quote(remote)
    return f"openssl dgst -sha256 -r {path} 2>/dev/null || sha256sum -- {path}"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _with_env(command: str, env: Mapping[str, str] | None) -> str:
    """Set `env` in the command line itself: sshd drops "env" requests it does not AcceptEnv."""
    if not env:
        return command
    for name in env:
        if not _ENV_NAME.match(name):
            raise InputError(f"{name!r} is not an environment variable name", field="env")
    exports = " ".join(f"{name}={shlex.quote(value)}" for name, value in env.items())
    return f"export {exports}; {command}"


def _parent(remote: str) -> str:
    return shlex.quote(posixpath.dirname(remote) or ".")


def _short(command: str, limit: int = 80) -> str:
    flat = " ".join(command.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _command_failed(label: str, result: RemoteResult, *, doing: str = "") -> RemoteCommandError:
    what = doing or f"`{_short(result.command)}`"
    if result.exit_status < 0:
        ended = f"was killed by signal {-result.exit_status}"
    else:
        ended = f"failed with exit status {result.exit_status}"
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    why = f": {lines[-1]}" if lines else ""
    return RemoteCommandError(
        f"{label}: {what} {ended}{why}; its output says more (fix the cause on the host, retry)",
        result=result,
    )

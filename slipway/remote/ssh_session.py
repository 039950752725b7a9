"""One open SSH connection to a host, and every command and file transfer run over it.

One SSH channel per command over the one connection, so a command costs a round trip, not a
handshake. A timeout or a cancel kills the command and everything it started on the host
(remote/ssh_channels.py starts each command on its channel and does the killing).
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
from pathlib import Path

import asyncssh

from slipway.core.errors import InputError, RemoteCommandError
from slipway.remote.ssh_channels import Channels, OnLine, Running, TimedOut, pump, pump_stderr
from slipway.remote.ssh_keys import public_line
from slipway.remote.ssh_types import RemoteResult, SSHError, SSHTarget

CHUNK = 256 * 1024
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class SSHSession:
    """One open connection to a host; use as `async with await connect(target) as session`."""

    def __init__(self, conn: asyncssh.SSHClientConnection, target: SSHTarget) -> None:
        self.target = target
        self.label = target.label
        server_key = conn.get_server_host_key()
        assert server_key is not None  # there is always one once the handshake is done
        self.host_key = public_line(server_key)
        self.host_key_fingerprint = server_key.get_fingerprint("sha256")
        self._channels = Channels(conn, target)

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

        async def talk(running: Running) -> None:
            if data:
                running.stdin.write(data)
            running.stdin.write_eof()
            await asyncio.gather(
                pump(running.stdout, "stdout", out, on_line),
                pump_stderr(running, err, on_line),
            )

        def result(status: int | None) -> RemoteResult:
            duration = time.monotonic() - started
            return RemoteResult(command, -1 if status is None else status, "".join(out),
                                "".join(err), duration)  # fmt: skip

        try:
            status = await self._channels.execute(
                _with_env(command, env), talk, timeout=timeout, shown=f"`{_short(command)}`"
            )
        except TimedOut as timed_out:
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

        async def talk(running: Running) -> None:
            running.stdin.write_eof()
            content, _ = await asyncio.gather(
                running.stdout.read(), pump_stderr(running, err, None)
            )
            chunks.append(content)

        command = f"cat -- {shlex.quote(remote)}"
        status = await self._channels.execute(
            command, talk, timeout=None, shown=f"reading {remote}"
        )
        if status != 0:
            done = RemoteResult(command, status, "", "".join(err), time.monotonic() - started)
            raise _command_failed(self.label, done, doing=f"read {remote}")
        return b"".join(chunks)

    async def close(self) -> None:
        """Close the connection, once commands cancelled on it have been killed."""
        await self._channels.close()

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

        async def talk(running: Running) -> None:
            readers = asyncio.gather(
                pump(running.stdout, "stdout", out, None), pump_stderr(running, err, None)
            )
            try:
                await send(running.stdin)
                running.stdin.write_eof()
            except BaseException:
                readers.cancel()
                raise
            await readers

        status = await self._channels.execute(command, talk, timeout=None, shown=shown)
        duration = time.monotonic() - started
        return RemoteResult(command, status, "".join(out), "".join(err), duration)

    async def _discard(self, path: str) -> None:
        with contextlib.suppress(SSHError, RemoteCommandError):
            await self.run(f"rm -f -- {shlex.quote(path)}", check=False)


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

"""The only code in slipway that talks SSH (asyncssh underneath; nothing else imports it).

A job opens one `SSHSession` per host with `connect(target)` and runs every command of the host
on it: one SSH channel per command over the one connection, so a command costs a round trip, not
a handshake. `connect` pins nothing itself: it reports the host key the host offered; the caller
stores it and passes it back as `SSHTarget.host_key`, after which any other key is refused.

    ExternalServiceError (502)
    ├── SSHError                 ssh_failed         the SSH handshake failed in another way
    │   ├── SSHUnreachableError  host_unreachable   refused, timed out, name not resolved
    │   ├── SSHAuthError         ssh_auth_failed    the host refused the credential
    │   ├── HostKeyChangedError  host_key_changed   not the pinned key; refused before any auth
    │   └── SSHConnectionLostError connection_lost  the connection died mid-command or mid-upload
    └── RemoteCommandError       remote_command_failed | timeout | checksum_mismatch |
                                 upload_incomplete; `result` is the RemoteResult

SSHAuthError is not an AuthError: a 401 would tell the API caller that *their* login failed.
Every message names the host and never holds a password, passphrase or key.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import posixpath
import re
import shlex
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncssh

from slipway.core.errors import ExternalServiceError, InputError, RemoteCommandError

log = logging.getLogger(__name__)

# AES-GCM runs on AES-NI on nearly every server; ChaCha20 is the fast one where there is none.
CIPHERS = (
    "aes128-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
)
KEEPALIVE_INTERVAL = 15.0
KEEPALIVE_COUNT_MAX = 3  # a host silent for about 45 s is taken for dead
MAX_CHANNELS = 8  # OpenSSH allows 10 channels per connection by default (MaxSessions)
CHUNK = 256 * 1024
KILL_GRACE = 5.0  # how long a killed command gets to report its end
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SAY_PID = "echo slipway-pid:$$ >&2"
_PID_LINE = re.compile(rb"slipway-pid:(\d+)\n")

T = TypeVar("T")
R = TypeVar("R")
OnLine = Callable[[str, str], None]
Process = asyncssh.SSHClientProcess[bytes]


@dataclass(frozen=True)
class SSHTarget:
    """How to reach and log in to one host; the secrets never show in its repr."""

    address: str
    port: int = 22
    user: str = "root"
    private_key: str | None = field(default=None, repr=False)  # OpenSSH or PEM text
    passphrase: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    host_key: str | None = None  # pinned OpenSSH public key line; None = accept and report
    connect_timeout: float = 10.0
    name: str = ""

    @property
    def label(self) -> str:
        """How messages name the host."""
        where = f"{self.address}:{self.port}"
        return f"{self.name} ({where})" if self.name else where


@dataclass(frozen=True)
class RemoteResult:
    """What a remote command did; `exit_status` is -N when signal N killed it."""

    command: str
    exit_status: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class SSHError(ExternalServiceError):
    """The SSH handshake with a host failed."""

    default_code = "ssh_failed"


class SSHUnreachableError(SSHError):
    """The host refused the TCP connection, did not answer in time, or its name is unknown."""

    default_code = "host_unreachable"


class SSHAuthError(SSHError):
    """The host refused the credential (or the private key could not be read)."""

    default_code = "ssh_auth_failed"


class HostKeyChangedError(SSHError):
    """The host offered another key than the pinned one; details hold both fingerprints."""

    default_code = "host_key_changed"


class SSHConnectionLostError(SSHError):
    """An open connection died while a command or an upload was under way."""

    default_code = "connection_lost"


class _HostKeyCheck(asyncssh.SSHClient):
    """Remembers the key a host offered when it is not the pinned one (asyncssh then refuses
    it during key exchange, before any credential is sent)."""

    def __init__(self) -> None:
        self.offered: asyncssh.SSHKey | None = None

    def validate_host_public_key(self, host: str, addr: str, port: int, key: Any) -> bool:
        self.offered = key
        return False


class SSHSession:
    """One open connection to a host; use as `async with await connect(target) as session`."""

    def __init__(self, conn: asyncssh.SSHClientConnection, target: SSHTarget) -> None:
        self._conn = conn
        self.target = target
        self.label = target.label
        server_key = conn.get_server_host_key()
        assert server_key is not None  # there is always one once the handshake is done
        self.host_key = _public_line(server_key)
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


async def connect(target: SSHTarget) -> SSHSession:
    """Open a connection to `target` and log in; the session reports the host key to pin."""
    pinned = _import_public_key(target.host_key) if target.host_key else None
    check = _HostKeyCheck()
    started = time.monotonic()
    try:
        conn = await asyncssh.connect(
            target.address,
            target.port,
            client_factory=lambda: check,
            **_options(target, pinned),
        )
    except asyncssh.HostKeyNotVerifiable:
        if pinned is None or check.offered is None:
            raise SSHError(f"{target.label}: the host key could not be verified") from None
        pin, offer = pinned.get_fingerprint("sha256"), check.offered.get_fingerprint("sha256")
        raise HostKeyChangedError(
            f"{target.label}: the host offered key {offer}, not the pinned {pin}; nothing was "
            "sent to it. If the host was reinstalled, check the new key and pin it again",
            details={"host": target.label, "pinned": pin, "offered": offer},
        ) from None
    except asyncssh.PermissionDenied:
        how = "password" if target.password and not target.private_key else "credential"
        raise SSHAuthError(
            f"{target.label}: the host refused the {how} for user {target.user}; check the "
            "credential and that it is authorised on the host"
        ) from None
    except asyncssh.ConnectionLost:
        raise SSHConnectionLostError(
            f"{target.label}: the host closed the connection during the handshake; it may be "
            "overloaded (sshd MaxStartups) or not an SSH server: retry, then check it"
        ) from None
    except asyncssh.DisconnectError as exc:
        raise SSHError(f"{target.label}: SSH handshake failed: {exc.reason}") from None
    except (OSError, TimeoutError) as exc:
        why = str(exc) or f"no answer within {target.connect_timeout:g} s"
        raise SSHUnreachableError(
            f"{target.label}: cannot connect ({why}); check the address, the port and that "
            "sshd runs and the firewall lets it through",
            details={"host": target.label},
        ) from None
    session = SSHSession(conn, target)
    log.debug("connected to %s in %.0f ms", target.label, (time.monotonic() - started) * 1000)
    return session


async def probe(target: SSHTarget, *, path: str | None = None) -> dict[str, Any]:
    """What slipway needs to know about a host: OS, kernel, user, sudo, free space at `path`
    (or $HOME), and its host key."""
    start = shlex.quote(path) if path else '"$HOME"'
    script = f"""
        ( . /etc/os-release && echo "os=$PRETTY_NAME" ) 2>/dev/null || echo "os=$(uname -s)"
        echo "kernel=$(uname -r)"; echo "user=$(id -un)"; echo "uid=$(id -u)"
        echo "groups=$(id -Gn)"
        if sudo -n true >/dev/null 2>&1; then echo sudo=yes; else echo sudo=no; fi
        p={start}; while [ ! -e "$p" ]; do p=$(dirname -- "$p"); done
        echo "free_kb=$(df -Pk -- "$p" 2>/dev/null | awk 'NR==2 {{print $4}}')"
    """
    async with await connect(target) as session:
        done = await session.run(script)
        facts = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
        free_kb = facts.get("free_kb", "")
        return {
            "os": facts.get("os", ""),
            "kernel": facts.get("kernel", ""),
            "user": facts.get("user", ""),
            "uid": int(facts.get("uid", "-1")),
            "groups": facts.get("groups", "").split(),
            "is_root": facts.get("uid") == "0",
            "sudo": facts.get("sudo") == "yes",
            "free_bytes": int(free_kb) * 1024 if free_kb.isdigit() else None,
            "host_key": session.host_key,
            "host_key_fingerprint": session.host_key_fingerprint,
        }


def key_fingerprint(public_key: str) -> str:
    """The "SHA256:..." fingerprint of an OpenSSH public key line."""
    return _import_public_key(public_key).get_fingerprint("sha256")


def public_key_of(private_key: str, passphrase: str | None = None) -> str:
    """The OpenSSH public key line of a private key, to show which key a credential is."""
    return _public_line(_import_private_key(private_key, passphrase))


async def fan_out(
    items: Iterable[T], fn: Callable[[T], Awaitable[R]], *, limit: int
) -> list[R | Exception]:
    """`fn(item)` for every item, at most `limit` at once; results (or the exception each
    raised) in item order. Cancelling the caller cancels them all."""
    if limit < 1:
        raise InputError(f"concurrency limit must be at least 1, not {limit}", field="limit")
    gate = asyncio.Semaphore(limit)

    async def one(item: T) -> R | Exception:
        async with gate:
            try:
                return await fn(item)
            except Exception as exc:
                return exc

    return list(await asyncio.gather(*(one(item) for item in items)))


# --- helpers -----------------------------------------------------------------------------------


def _options(target: SSHTarget, pinned: asyncssh.SSHKey | None) -> dict[str, Any]:
    """asyncssh options that depend on nothing of this machine (no ~/.ssh, agent or config)."""
    options: dict[str, Any] = {
        "username": target.user,
        "password": target.password,
        "client_keys": None,
        "agent_path": None,
        "config": [],
        "known_hosts": None,
        "gss_host": None,
        "host_based_auth": False,
        "x509_trusted_certs": None,
        "encryption_algs": list(CIPHERS),
        "compression_algs": None,
        "keepalive_interval": KEEPALIVE_INTERVAL,
        "keepalive_count_max": KEEPALIVE_COUNT_MAX,
        "connect_timeout": target.connect_timeout,
    }
    if target.private_key:
        options["client_keys"] = [_import_private_key(target.private_key, target.passphrase)]
    if pinned is not None:
        options["known_hosts"] = ([pinned], [], [])
        # The pinned key's algorithm first, so a host holding several keys shows the pinned
        # one; the others stay allowed so that a host which lost it gets HostKeyChangedError
        # instead of a bare "no matching host key algorithm".
        pinned_algs = [alg.decode() for alg in pinned.sig_algorithms]
        others = [alg.decode() for alg in asyncssh.public_key.get_default_public_key_algs()]
        options["server_host_key_algs"] = pinned_algs + [a for a in others if a not in pinned_algs]
    return options


def _import_private_key(text: str, passphrase: str | None) -> asyncssh.SSHKey:
    try:
        return asyncssh.import_private_key(text, passphrase)
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError, ValueError):
        raise SSHAuthError(
            "the private key could not be read: give an OpenSSH or PEM private key and, when it "
            "is encrypted, its passphrase",
            code="ssh_key_unreadable",
        ) from None


def _import_public_key(text: str) -> asyncssh.SSHKey:
    try:
        return asyncssh.import_public_key(text.strip())
    except (asyncssh.KeyImportError, ValueError):
        raise InputError(
            "not an OpenSSH public key line (like `ssh-ed25519 AAAA...`)", field="host_key"
        ) from None


def _public_line(key: asyncssh.SSHKey) -> str:
    """`algorithm base64` without the comment: what is pinned and compared."""
    return " ".join(key.export_public_key("openssh").decode().split()[:2])


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

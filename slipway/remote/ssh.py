"""Connecting to hosts over SSH: the way in to the only code in slipway that talks SSH.

asyncssh is underneath, and nothing outside remote/ imports it. A job opens one `SSHSession`
(remote/ssh_session.py) per host with `connect(target)` and runs every command of the host on
it. `connect` pins nothing itself: it reports the host key the host offered; the caller stores it
and passes it back as `SSHTarget.host_key`, after which any other key is refused.

The target, result and error types (remote/ssh_types.py, which draws the error tree), the key
helpers (remote/ssh_keys.py) and the session are importable from here. Modules the API imports
take the types and keys from ssh_types and ssh_keys instead, and this module only where they
connect: it loads asyncssh.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import asyncssh

from slipway.core.errors import InputError
from slipway.remote.ssh_keys import (
    import_private_key,
    import_public_key,
    key_fingerprint,
    public_key_of,
)
from slipway.remote.ssh_session import SSHSession, sha256_command
from slipway.remote.ssh_types import (
    HostKeyChangedError,
    RemoteResult,
    SSHAuthError,
    SSHConnectionLostError,
    SSHError,
    SSHTarget,
    SSHUnreachableError,
)

__all__ = [
    "CIPHERS",
    "HostKeyChangedError",
    "RemoteResult",
    "SSHAuthError",
    "SSHConnectionLostError",
    "SSHError",
    "SSHSession",
    "SSHTarget",
    "SSHUnreachableError",
    "connect",
    "fan_out",
    "key_fingerprint",
    "probe",
    "public_key_of",
    "sha256_command",
]

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

T = TypeVar("T")
R = TypeVar("R")


class _HostKeyCheck(asyncssh.SSHClient):
    """Remembers the key a host offered when it is not the pinned one (asyncssh then refuses
    it during key exchange, before any credential is sent)."""

    def __init__(self) -> None:
        self.offered: asyncssh.SSHKey | None = None

    def validate_host_public_key(self, host: str, addr: str, port: int, key: Any) -> bool:
        self.offered = key
        return False


async def connect(target: SSHTarget) -> SSHSession:
    """Open a connection to `target` and log in; the session reports the host key to pin."""
    pinned = import_public_key(target.host_key) if target.host_key else None
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
        options["client_keys"] = [import_private_key(target.private_key, target.passphrase)]
    if pinned is not None:
        options["known_hosts"] = ([pinned], [], [])
        # The pinned key's algorithm first, so a host holding several keys shows the pinned
        # one; the others stay allowed so that a host which lost it gets HostKeyChangedError
        # instead of a bare "no matching host key algorithm".
        pinned_algs = [alg.decode() for alg in pinned.sig_algorithms]
        others = [alg.decode() for alg in asyncssh.public_key.get_default_public_key_algs()]
        options["server_host_key_algs"] = pinned_algs + [a for a in others if a not in pinned_algs]
    return options

"""What slipway's SSH code takes and gives: the target, a command's result, and its errors.

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

from dataclasses import dataclass, field

from slipway.core.errors import ExternalServiceError


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

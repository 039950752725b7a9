"""SSH keys read and named: the part of SSH the API needs without connecting anywhere.

asyncssh parses the keys. It is imported at the first key read, not with this module: an API
process that never handles a key (most of them, most of the time) does not carry its 16 MB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slipway.core.errors import InputError
from slipway.remote.ssh_types import SSHAuthError

if TYPE_CHECKING:
    import asyncssh


def key_fingerprint(public_key: str) -> str:
    """The "SHA256:..." fingerprint of an OpenSSH public key line."""
    return import_public_key(public_key).get_fingerprint("sha256")


def public_key_of(private_key: str, passphrase: str | None = None) -> str:
    """The OpenSSH public key line of a private key, to show which key a credential is."""
    return public_line(import_private_key(private_key, passphrase))


def public_line(key: asyncssh.SSHKey) -> str:
    """`algorithm base64` without the comment: what is pinned and compared."""
    return " ".join(key.export_public_key("openssh").decode().split()[:2])


def import_private_key(text: str, passphrase: str | None) -> asyncssh.SSHKey:
    import asyncssh

    try:
        return asyncssh.import_private_key(text, passphrase)
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError, ValueError):
        raise SSHAuthError(
            "the private key could not be read: give an OpenSSH or PEM private key and, when it "
            "is encrypted, its passphrase",
            code="ssh_key_unreadable",
        ) from None


def import_public_key(text: str) -> asyncssh.SSHKey:
    import asyncssh

    try:
        return asyncssh.import_public_key(text.strip())
    except (asyncssh.KeyImportError, ValueError):
        raise InputError(
            "not an OpenSSH public key line (like `ssh-ed25519 AAAA...`)", field="host_key"
        ) from None

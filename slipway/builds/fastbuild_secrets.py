"""FastBuild's `webSSHSecret` / `jupyterLabSecret`: decrypting them, hashing what images get.

FastBuild sends each secret as base64 of AES-CBC (PKCS7) under the key and IV of its `[aes]`
section (`SLIPWAY_FASTBUILD_AES_KEY` / `SLIPWAY_FASTBUILD_AES_IV` here). An empty field, or one
that decrypts to the empty string, turns the feature off.

Only hashes reach an image: SHA-512-crypt (`$6$`, for `chpasswd -e`) of the root password and
jupyter_server's `argon2:` hash of the JupyterLab password. Their salts are derived from an HMAC
of the secret under `salt_key`, so an unchanged spec renders a byte-identical Dockerfile and
every layer can come from the cache; a different `salt_key` (another installation) gives
different hashes of the same password.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from argon2.low_level import Type, hash_secret
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from pydantic import SecretStr

from slipway.core.errors import InputError

KEY_SETTINGS = "SLIPWAY_FASTBUILD_AES_KEY and SLIPWAY_FASTBUILD_AES_IV"
MAX_SECRET_BYTES = 1024
# sha512-crypt rounds: glibc's default is 5000; more makes a pulled image's hash costlier to crack.
SSH_ROUNDS = 65536
# jupyter_server's own `passwd()` parameters, so its `passwd_check` treats ours like its own.
JUPYTER_ARGON2 = {"time_cost": 10, "memory_cost": 10240, "parallelism": 8, "hash_len": 32}

_CRYPT64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# The byte order of the final digest in the sha512-crypt encoding (Drepper's specification).
_SHA512_ORDER = [
    (0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26), (6, 27, 48),
    (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32), (12, 33, 54),
    (34, 55, 13), (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60),
    (40, 61, 19), (62, 20, 41),
]  # fmt: skip


@dataclass(frozen=True)
class SecretHashes:
    """What an image may hold of the build's secrets; None = that feature is off."""

    root_password_hash: str | None = None  # `$6$…` for `chpasswd -e`
    jupyter_password_hash: str | None = None  # `argon2:$argon2id$…` for jupyter_server

    @property
    def is_empty(self) -> bool:
        return self.root_password_hash is None and self.jupyter_password_hash is None


def decrypt_secret(
    value: object, *, field: str, key: bytes | None, iv: bytes | None
) -> SecretStr | None:
    """The plaintext of a FastBuild secret field, or None when the feature is off.

    Refusals name `field` and never echo the value.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InputError(f"{field} must be a string (base64 of the AES-encrypted secret)",
                         field=field)  # fmt: skip
    if not key or not iv:
        raise InputError(
            f"{field} is set but slipway has no FastBuild AES key to decrypt it: set "
            f"{KEY_SETTINGS} to FastBuild's [aes] key and iv, or send the field empty to leave "
            "the feature off",
            field=field,
            code="fastbuild_key_missing",
        )
    if len(key) not in (16, 24, 32) or len(iv) != 16:
        raise InputError(
            f"cannot decrypt {field}: the configured FastBuild AES key must be 16, 24 or 32 "
            f"bytes and the IV 16 bytes; fix {KEY_SETTINGS}",
            field=field,
            code="fastbuild_key_invalid",
        )
    try:
        ciphertext = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InputError(
            f"{field} is not base64; send base64 of the AES-CBC ciphertext as FastBuild does",
            field=field,
        ) from None
    if not ciphertext:
        return None
    plaintext = _decrypt(ciphertext, key, iv)
    if plaintext is None:
        raise InputError(
            f"{field} does not decrypt under the configured FastBuild key: check that "
            f"{KEY_SETTINGS} match FastBuild's [aes] section and the value is unchanged",
            field=field,
            code="fastbuild_secret_invalid",
        )
    if not plaintext:
        return None
    if len(plaintext) > MAX_SECRET_BYTES or "\x00" in plaintext or "\n" in plaintext:
        raise InputError(
            f"{field} decrypts to a password slipway cannot use: at most {MAX_SECRET_BYTES} "
            "bytes, no newlines or NUL characters",
            field=field,
            code="fastbuild_secret_invalid",
        )
    return SecretStr(plaintext)


def _decrypt(ciphertext: bytes, key: bytes, iv: bytes) -> str | None:
    """AES-CBC + PKCS7 + UTF-8, or None when any of the three does not hold."""
    if len(ciphertext) % 16:
        return None
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        data = unpadder.update(padded) + unpadder.finalize()
        return data.decode("utf-8")
    except ValueError:  # bad padding and bad UTF-8 are both ValueErrors
        return None


def encrypt_secret(plaintext: str, *, key: bytes, iv: bytes) -> str:
    """FastBuild's side: base64 of AES-CBC/PKCS7 (for tests and for clients that send secrets)."""
    padder = padding.PKCS7(128).padder()
    data = padder.update(plaintext.encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return base64.b64encode(encryptor.update(data) + encryptor.finalize()).decode()


# --- hashes for images ----------------------------------------------------------------------------


def _derived_salt(salt_key: bytes, purpose: bytes, secret: str) -> bytes:
    return hmac.new(salt_key, purpose + b"\x00" + secret.encode(), hashlib.sha256).digest()


def ssh_password_hash(password: str, *, salt_key: bytes) -> str:
    """`$6$rounds=…$salt$hash` of the root password, its salt derived from the password."""
    raw = _derived_salt(salt_key, b"slipway-ssh-salt", password)
    salt = "".join(_CRYPT64[byte % 64] for byte in raw[:16])
    return sha512_crypt(password, salt, rounds=SSH_ROUNDS)


def jupyter_password_hash(password: str, *, salt_key: bytes) -> str:
    """jupyter_server's `argon2:$argon2id$…` form, with a salt derived from the password."""
    salt = _derived_salt(salt_key, b"slipway-jupyter-salt", password)[:16]
    encoded = hash_secret(password.encode(), salt, type=Type.ID, **JUPYTER_ARGON2)
    return "argon2:" + encoded.decode("ascii")


def hash_secrets(
    *, web_ssh: SecretStr | None, jupyter_lab: SecretStr | None, salt_key: bytes
) -> SecretHashes:
    """The hashes `dockerfile.render` puts in an image, for whichever secrets are set."""
    if not salt_key:
        raise ValueError("salt_key must not be empty")
    return SecretHashes(
        root_password_hash=(
            ssh_password_hash(web_ssh.get_secret_value(), salt_key=salt_key) if web_ssh else None
        ),
        jupyter_password_hash=(
            jupyter_password_hash(jupyter_lab.get_secret_value(), salt_key=salt_key)
            if jupyter_lab
            else None
        ),
    )


def sha512_crypt(password: str, salt: str, *, rounds: int | None = None) -> str:
    """SHA-512-crypt as published by Ulrich Drepper (glibc/libxcrypt `$6$`, `openssl passwd -6`).

    `rounds=None` means the default 5000 with no `rounds=` in the result, as those tools do.
    No maintained library for it is a dependency (`crypt` left the standard library in 3.13).
    """
    key = password.encode()
    salt_bytes = salt.encode()[:16]
    if rounds is not None:
        rounds = min(max(rounds, 1000), 999_999_999)
    count = 5000 if rounds is None else rounds

    alternate = hashlib.sha512(key + salt_bytes + key).digest()
    context = hashlib.sha512(key + salt_bytes)
    context.update(_repeat(alternate, len(key)))
    length = len(key)
    while length:
        context.update(alternate if length & 1 else key)
        length >>= 1
    digest = context.digest()

    p_bytes = _repeat(hashlib.sha512(key * len(key)).digest(), len(key))
    s_bytes = _repeat(hashlib.sha512(salt_bytes * (16 + digest[0])).digest(), len(salt_bytes))
    for i in range(count):
        step = hashlib.sha512(p_bytes if i & 1 else digest)
        if i % 3:
            step.update(s_bytes)
        if i % 7:
            step.update(p_bytes)
        step.update(digest if i & 1 else p_bytes)
        digest = step.digest()

    encoded = "".join(_crypt64(digest[a], digest[b], digest[c], 4) for a, b, c in _SHA512_ORDER)
    encoded += _crypt64(0, 0, digest[63], 2)
    prefix = "$6$" if rounds is None else f"$6$rounds={rounds}$"
    return f"{prefix}{salt_bytes.decode()}${encoded}"


def _repeat(block: bytes, length: int) -> bytes:
    """`block` repeated to exactly `length` bytes."""
    return (block * (length // len(block) + 1))[:length]


def _crypt64(high: int, middle: int, low: int, count: int) -> str:
    value = (high << 16) | (middle << 8) | low
    out = []
    for _ in range(count):
        out.append(_CRYPT64[value & 0x3F])
        value >>= 6
    return "".join(out)

"""The secrets vault: AES-256-GCM under one master key, and the check that every process holds it.

The key comes from SLIPWAY_SECRET_KEY when set, else from the key file (created 0600 on first
start). Its fingerprint is stored in the database; a process holding another key refuses to start,
so two processes can never write secrets the other cannot read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from slipway.core.config import Settings
from slipway.core.db import hold_mutex, utcnow
from slipway.core.errors import ConflictError, InputError, NotFoundError, SlipwayError
from slipway.core.models import Meta, Secret

FORMAT_PREFIX = "v1:"
FINGERPRINT_KEY = "secret_key_fingerprint"
_NONCE_BYTES = 12


class SecretKeyMismatchError(SlipwayError):
    """This process holds a different master key than the one the database was written with."""

    default_code = "secret_key_mismatch"


def fingerprint(key: bytes) -> str:
    return hashlib.sha256(b"slipway-key-fingerprint:" + key).hexdigest()[:32]


def generate_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def decode_key(text: str, *, source: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode())
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise InputError(
            f"{source} does not hold a valid key: expected 32 bytes, URL-safe base64 "
            "(generate one with `slipway secrets generate-key`)",
            field=source,
            code="invalid_secret_key",
        )
    return key


def _write_temp_key(path: Path, key: bytes) -> Path:
    """The key in a 0600 file beside `path`, under a name no other process uses."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(encode_key(key) + "\n")
    return tmp


def _write_key_file(path: Path, key: bytes) -> None:
    os.replace(_write_temp_key(path, key), path)


def _create_key_file(path: Path, key: bytes) -> bytes:
    """Write `key` to `path` unless another process did first; returns the key the file holds.

    Processes started together on a fresh install (api and workers) must end up with one key:
    the link fails when the file exists, and the loser reads the winner's key.
    """
    tmp = _write_temp_key(path, key)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return decode_key(path.read_text(), source=str(path))
    finally:
        tmp.unlink(missing_ok=True)
    return key


def load_key(settings: Settings, *, create: bool = True) -> bytes:
    """The master key: the environment's, else the key file's (made on first start)."""
    if settings.secret_key is not None:
        return decode_key(settings.secret_key.get_secret_value(), source="SLIPWAY_SECRET_KEY")
    path = settings.key_file
    if path.exists():
        return decode_key(path.read_text(), source=str(path))
    if not create:
        raise NotFoundError(f"no key file at {path}; start `slipway api` once to create it")
    return _create_key_file(path, generate_key())


class Vault:
    """Encrypts and decrypts values under the master key; the secret id is bound as extra data."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self.fingerprint = fingerprint(key)

    def encrypt(self, plaintext: str, *, context: str = "") -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return FORMAT_PREFIX + base64.b64encode(nonce + sealed).decode()

    def decrypt(self, ciphertext: str, *, context: str = "") -> str:
        if not ciphertext.startswith(FORMAT_PREFIX):
            raise SecretKeyMismatchError("stored secret has an unknown format")
        try:
            raw = base64.b64decode(ciphertext[len(FORMAT_PREFIX) :], validate=True)
            if len(raw) <= _NONCE_BYTES:
                raise InvalidTag
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode())
        except (InvalidTag, binascii.Error) as exc:
            raise SecretKeyMismatchError(
                "a stored secret does not decrypt with this process's key"
            ) from exc
        return plain.decode()

    # --- the secrets table -------------------------------------------------------------------

    def store(
        self, session: Session, *, owner: str, value: str, secret_id: str | None = None
    ) -> str:
        """Save `value` (new, or replacing `secret_id`) and return the secret's id."""
        if secret_id is not None:
            row = session.get(Secret, secret_id)
            if row is None:
                raise NotFoundError(f"secret {secret_id} does not exist")
            row.ciphertext = self.encrypt(value, context=row.id)
            row.updated_at = utcnow()
            return row.id
        row = Secret(owner=owner, ciphertext="")
        session.add(row)
        session.flush()
        row.ciphertext = self.encrypt(value, context=row.id)
        return row.id

    def reveal(self, session: Session, secret_id: str) -> str:
        row = session.get(Secret, secret_id)
        if row is None:
            raise NotFoundError(f"secret {secret_id} does not exist")
        return self.decrypt(row.ciphertext, context=row.id)

    def forget(self, session: Session, secret_id: str) -> None:
        row = session.get(Secret, secret_id)
        if row is not None:
            session.delete(row)


def stored_fingerprint(session: Session) -> str | None:
    row = session.get(Meta, FINGERPRINT_KEY)
    return row.value if row else None


def verify_key(session: Session, vault: Vault) -> None:
    """Refuse to run with a key other than the database's; record it when the database has none."""
    stored = stored_fingerprint(session)
    if stored is None:
        # Processes starting together on a fresh database race to record their key: the first
        # insert wins and the others compare against it.
        session.execute(
            text('INSERT INTO meta ("key", value) VALUES (:key, :value) ON CONFLICT DO NOTHING'),
            {"key": FINGERPRINT_KEY, "value": vault.fingerprint},
        )
        stored = session.scalar(select(Meta.value).where(Meta.key == FINGERPRINT_KEY))
    if stored != vault.fingerprint:
        raise SecretKeyMismatchError(
            "this process's master key is not the one the database was written with "
            f"(database key {stored[:12]}…, this key {vault.fingerprint[:12]}…); give every "
            "slipway process the same SLIPWAY_SECRET_KEY or key file"
        )


def _backup_key_file(path: Path) -> None:
    if path.exists():
        os.replace(path, path.with_name(path.name + f".old-{utcnow():%Y%m%d%H%M%S%f}"))


def rotate_key(session: Session, settings: Settings) -> tuple[str, str, int]:
    """Re-encrypt every secret under a new key written to the key file; returns old/new prints.

    The old key file is kept as `<key file>.old-<time>`.
    """
    if settings.secret_key is not None:
        raise ConflictError(
            "the master key comes from SLIPWAY_SECRET_KEY; rotate it by unsetting that variable "
            "so the key file is used, or re-encrypt with a key file first",
            code="secret_key_from_environment",
        )
    # Two rotations at once would each re-encrypt under their own key; the second waits here.
    hold_mutex(session, "rotate-key")
    old = Vault(load_key(settings, create=False))
    verify_key(session, old)
    new_key = generate_key()
    new = Vault(new_key)
    # Write the new key beside the old one before the database changes, so a crash between the
    # commit and the rename leaves both keys on disk and nothing unreadable.
    pending = _pending_key_file(settings)
    _write_key_file(pending, new_key)
    rows = session.scalars(select(Secret)).all()
    for row in rows:
        row.ciphertext = new.encrypt(old.decrypt(row.ciphertext, context=row.id), context=row.id)
    meta = session.get(Meta, FINGERPRINT_KEY)
    assert meta is not None
    meta.value = new.fingerprint
    session.commit()
    _backup_key_file(settings.key_file)
    # From memory, not by renaming `pending`: a process starting meanwhile may have removed it.
    _write_key_file(settings.key_file, new_key)
    pending.unlink(missing_ok=True)
    return old.fingerprint, new.fingerprint, len(rows)


def _pending_key_file(settings: Settings) -> Path:
    return settings.key_file.with_name(settings.key_file.name + ".new")


def finish_interrupted_rotation(session: Session, settings: Settings) -> None:
    """If a rotation committed but crashed before replacing its key file, finish the job."""
    pending = _pending_key_file(settings)
    if settings.secret_key is not None or not pending.exists():
        return
    new_key = decode_key(pending.read_text(), source=str(pending))
    if stored_fingerprint(session) != fingerprint(new_key):
        # The rotation crashed before its commit: the database still uses the current key.
        pending.unlink()
        return
    key_file = settings.key_file
    is_in_place = key_file.exists() and key_file.read_text().strip() == encode_key(new_key)
    if not is_in_place:
        _backup_key_file(key_file)
    os.replace(pending, key_file)


def open_vault(session: Session, settings: Settings) -> Vault:
    """The vault for this process, after checking its key against the database."""
    finish_interrupted_rotation(session, settings)
    vault = Vault(load_key(settings))
    verify_key(session, vault)
    return vault

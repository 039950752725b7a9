"""SSH credentials: a private key (checked to parse with its passphrase) or a password.

The secret is one vault entry holding a JSON object (`private_key` and `passphrase`, or
`password`); the row keeps only what may be shown: the kind, the public key and its fingerprint.
Other target code reads the secret through `reveal`, for a connection about to be made.
"""

from __future__ import annotations

import base64
import binascii
import importlib.util
import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from slipway.core.config import Settings
from slipway.core.db import utcnow
from slipway.core.errors import ConflictError, InputError, NotFoundError
from slipway.core.lookup import by_name_or_id
from slipway.core.secrets import open_vault
from slipway.remote import ssh_keys
from slipway.remote.ssh_types import SSHAuthError
from slipway.targets.checks import check_description
from slipway.targets.host_checks import (
    check_password,
    check_private_key_text,
    check_target_name,
)
from slipway.targets.host_schemas import CredentialKind
from slipway.targets.models import Credential, CredentialRevision, Host

OPENSSH_HEADER = "-----BEGIN OPENSSH PRIVATE KEY-----"
# asyncssh opens passphrase-protected OpenSSH-format keys only with bcrypt's KDF; without it a
# right passphrase would be reported as a wrong one.
HAS_BCRYPT = importlib.util.find_spec("bcrypt") is not None
SECRET_FIELDS = {
    CredentialKind.ssh_key: ("private_key", "passphrase"),
    CredentialKind.password: ("password",),
}


@dataclass(frozen=True)
class CredentialSecret:
    """A credential's decrypted secret, for a connection about to be made."""

    private_key: str | None = None
    passphrase: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class CheckedSecret:
    """A secret that passed its checks, and what may be shown of it."""

    secret: CredentialSecret
    public_key: str | None
    fingerprint: str | None

    def as_json(self) -> str:
        values = {
            "private_key": self.secret.private_key,
            "passphrase": self.secret.passphrase,
            "password": self.secret.password,
        }
        return json.dumps({k: v for k, v in values.items() if v is not None})


# --- reading ------------------------------------------------------------------------------------


def get_credential(session: Session, ref: str) -> Credential | None:
    """The credential named `ref`, or with id `ref` when it is all digits (names never are)."""
    return by_name_or_id(session, Credential, ref)


def get_credential_or_raise(session: Session, ref: str, *, field: str | None = None) -> Credential:
    """The credential `ref` (name or id), or 404; `field` names the request field it came from."""
    credential = get_credential(session, ref)
    if credential is None:
        raise NotFoundError(
            f"credential {ref[:80]!r} does not exist; see GET /api/v1/credentials",
            code="credential_not_found",
            details={"field": field} if field else None,
        )
    return credential


def list_credentials(
    session: Session, *, limit: int | None = None, after: str | None = None
) -> list[Credential]:
    """Every credential by name; a page of `limit` after the name `after`."""
    query = select(Credential).order_by(Credential.name)
    if after is not None:
        query = query.where(Credential.name > after)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def credential_revisions(
    session: Session, ref: str, *, limit: int | None = None, before: int | None = None
) -> list[CredentialRevision]:
    """A credential's revisions, newest first; a page of `limit` older than `before`."""
    credential = get_credential_or_raise(session, ref)
    query = (
        select(CredentialRevision)
        .where(CredentialRevision.credential_id == credential.id)
        .order_by(CredentialRevision.revision.desc())
    )
    if before is not None:
        query = query.where(CredentialRevision.revision < before)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def reveal(session: Session, settings: Settings, credential: Credential) -> CredentialSecret:
    """The decrypted secret of `credential`, for a connection about to be made."""
    values = json.loads(open_vault(session, settings).reveal(session, credential.secret_id))
    return CredentialSecret(**values)


# --- checking -----------------------------------------------------------------------------------


def _refuse_strays(kind: CredentialKind, given: dict[str, str | None]) -> None:
    for field, value in given.items():
        if value is not None and field not in SECRET_FIELDS[kind]:
            raise InputError(
                f"{field} does not apply to a {kind} credential: send "
                f"{' and '.join(SECRET_FIELDS[kind])} only",
                field=field,
            )


def check_secret(
    kind: CredentialKind,
    *,
    private_key: str | None = None,
    passphrase: str | None = None,
    password: str | None = None,
) -> CheckedSecret:
    """Refuse a secret that cannot work: a key that does not parse or open with the passphrase."""
    _refuse_strays(
        kind, {"private_key": private_key, "passphrase": passphrase, "password": password}
    )
    if kind == CredentialKind.password:
        if password is None:
            raise InputError("a password credential needs a password", field="password")
        return CheckedSecret(CredentialSecret(password=check_password(password)), None, None)
    if private_key is None:
        raise InputError(
            "an ssh_key credential needs private_key (the OpenSSH or PEM text)", field="private_key"
        )
    key_text = check_private_key_text(private_key)
    public_key = _public_key(key_text, passphrase or None)
    return CheckedSecret(
        CredentialSecret(private_key=key_text, passphrase=passphrase or None),
        public_key=public_key,
        fingerprint=ssh_keys.key_fingerprint(public_key),
    )


def _public_key(key_text: str, passphrase: str | None) -> str:
    """The key's public line; a refusal naming `private_key` or `passphrase`, whichever is wrong."""
    is_encrypted = is_encrypted_key(key_text)
    if passphrase is not None and not is_encrypted:
        # Stored, it would suggest a protection the key does not have.
        raise InputError(
            "the private key is not encrypted: leave passphrase out", field="passphrase"
        )
    try:
        return ssh_keys.public_key_of(key_text, passphrase)
    except SSHAuthError:
        if is_encrypted and OPENSSH_HEADER in key_text and not HAS_BCRYPT:
            message, field = (
                "passphrase-protected OpenSSH keys need the bcrypt module, which this slipway "
                "lacks: install bcrypt, or send the key as encrypted PKCS#8 PEM",
                "private_key",
            )
        elif is_encrypted and passphrase is None:
            message, field = "the private key is encrypted: send its passphrase", "passphrase"
        elif is_encrypted:
            message, field = "the passphrase does not open the private key", "passphrase"
        else:
            message, field = (
                "private_key could not be read: paste an OpenSSH or PEM private key, e.g. the "
                "content of ~/.ssh/id_ed25519 (not the .pub file)",
                "private_key",
            )
        raise InputError(message, field=field, code="invalid_private_key") from None


def is_encrypted_key(key_text: str) -> bool:
    """Whether a private key's text says it is encrypted (OpenSSH, PKCS#1 or PKCS#8 PEM)."""
    if "-----BEGIN ENCRYPTED PRIVATE KEY-----" in key_text or "Proc-Type: 4,ENCRYPTED" in key_text:
        return True
    if OPENSSH_HEADER not in key_text:
        return False
    body = "".join(line for line in key_text.splitlines() if not line.startswith("-----"))
    try:
        raw = base64.b64decode(body, validate=False)
    except binascii.Error:
        return False
    # openssh-key-v1 NUL, then the cipher name as a length-prefixed string: "none" if plain.
    magic = b"openssh-key-v1\x00"
    if not raw.startswith(magic) or len(raw) < len(magic) + 4:
        return False
    size = int.from_bytes(raw[len(magic) : len(magic) + 4], "big")
    return raw[len(magic) + 4 : len(magic) + 4 + size] != b"none"


# --- writing ------------------------------------------------------------------------------------


def _add_revision(
    session: Session, credential: Credential, *, changes: list[str], actor: str | None
) -> None:
    session.add(
        CredentialRevision(
            credential_id=credential.id,
            revision=credential.revision,
            kind=credential.kind,
            description=credential.description,
            has_passphrase=credential.has_passphrase,
            fingerprint=credential.fingerprint,
            changes=changes,
            actor=actor,
            created_at=credential.updated_at,
        )
    )


def _exists_error(name: str) -> ConflictError:
    return ConflictError(
        f"credential {name!r} already exists: pick another name, or change it with "
        f"PATCH /api/v1/credentials/{name}",
        code="credential_exists",
        details={"field": "name"},
    )


def create_credential(
    session: Session,
    settings: Settings,
    *,
    name: str,
    kind: CredentialKind,
    private_key: str | None = None,
    passphrase: str | None = None,
    password: str | None = None,
    description: str = "",
    actor: str | None = None,
) -> Credential:
    """Check the secret, store it in the vault and save the credential with its revision 1."""
    check_target_name(name)
    description = check_description(description)
    checked = check_secret(kind, private_key=private_key, passphrase=passphrase, password=password)
    if get_credential(session, name) is not None:
        raise _exists_error(name)
    now = utcnow()
    secret_id = open_vault(session, settings).store(
        session, owner=f"credential:{name}", value=checked.as_json()
    )
    credential = Credential(
        name=name,
        kind=kind.value,
        description=description,
        secret_id=secret_id,
        has_passphrase=checked.secret.passphrase is not None,
        public_key=checked.public_key,
        fingerprint=checked.fingerprint,
        revision=1,
        created_at=now,
        updated_at=now,
    )
    session.add(credential)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise _exists_error(name) from None
    _add_revision(session, credential, changes=["created"], actor=actor)
    session.flush()
    return credential


def _locked(session: Session, ref: str) -> Credential:
    credential = get_credential_or_raise(session, ref)
    session.refresh(credential, with_for_update=True)
    return credential


def update_credential(
    session: Session,
    settings: Settings,
    *,
    ref: str,
    private_key: str | None = None,
    passphrase: str | None = None,
    password: str | None = None,
    description: str | None = None,
    actor: str | None = None,
) -> Credential:
    """Replace the secret (same kind; checked first) or the description; a revision if changed.

    Hosts using the credential are not logged in to again here: test them afterwards.
    """
    credential = _locked(session, ref)
    kind = CredentialKind(credential.kind)
    new_description = check_description(description) if description is not None else None
    given = {"private_key": private_key, "passphrase": passphrase, "password": password}
    has_secret = any(value is not None for value in given.values())
    _refuse_strays(kind, given)
    if has_secret and kind == CredentialKind.ssh_key and private_key is None:
        raise InputError(
            "a new passphrase comes with the key it opens: send private_key too",
            field="passphrase",
        )
    checked = (
        check_secret(kind, private_key=private_key, passphrase=passphrase, password=password)
        if has_secret
        else None
    )
    vault = open_vault(session, settings)
    changes = []
    if checked is not None and json.loads(checked.as_json()) != json.loads(
        vault.reveal(session, credential.secret_id)
    ):
        changes.append("secret")
    if new_description is not None and new_description != credential.description:
        changes.append("description")
    if not changes:
        return credential
    if checked is not None and "secret" in changes:
        vault.store(
            session,
            owner=f"credential:{credential.name}",
            value=checked.as_json(),
            secret_id=credential.secret_id,
        )
        credential.has_passphrase = checked.secret.passphrase is not None
        credential.public_key = checked.public_key
        credential.fingerprint = checked.fingerprint
    if new_description is not None:
        credential.description = new_description
    credential.revision += 1
    credential.updated_at = utcnow()
    _add_revision(session, credential, changes=changes, actor=actor)
    session.flush()
    return credential


def hosts_using(session: Session, credential: Credential) -> list[str]:
    return list(
        session.scalars(
            select(Host.name).where(Host.credential_id == credential.id).order_by(Host.name)
        )
    )


def delete_credential(session: Session, settings: Settings, *, ref: str) -> None:
    """Remove a credential, its revisions and its secret; refused while hosts use it."""
    credential = _locked(session, ref)
    users = hosts_using(session, credential)
    if users:
        shown = ", ".join(users[:10]) + (" and more" if len(users) > 10 else "")
        raise ConflictError(
            f"credential {credential.name!r} is used by the hosts {shown}; give them another "
            "credential (PATCH /api/v1/hosts/{name}) or delete them first",
            code="credential_in_use",
            details={"used_by": [f"host {name}" for name in users]},
        )
    secret_id = credential.secret_id
    session.delete(credential)
    session.flush()
    open_vault(session, settings).forget(session, secret_id)
    session.flush()

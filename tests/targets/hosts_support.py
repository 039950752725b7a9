"""What the credential, host and group tests share: URLs, keys, requests and the rows to compare."""

from __future__ import annotations

from typing import Any

import asyncssh
from sqlalchemy import select

from slipway.core.config import Settings
from slipway.core.db import session_factory
from slipway.core.models import Secret
from slipway.targets.models import (
    Credential,
    CredentialRevision,
    Host,
    HostGroup,
    HostGroupRevision,
    HostRevision,
)
from tests.support.sshd import FarmHost, SSHFarm

CREDENTIALS = "/api/v1/credentials"
HOSTS = "/api/v1/hosts"
GROUPS = "/api/v1/host-groups"
FARM_KEY = "farm-key"


def new_private_key(passphrase: str | None = None) -> str:
    """A fresh ed25519 private key: OpenSSH format, or encrypted PKCS#8 PEM with `passphrase`."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    if passphrase is None:
        return key.export_private_key("openssh").decode()
    return with_passphrase(key.export_private_key("openssh").decode(), passphrase)


def with_passphrase(private_key: str, passphrase: str) -> str:
    """The same key encrypted with `passphrase`, as PKCS#8 PEM (OpenSSH's own encrypted format
    needs bcrypt, which slipway does not require)."""
    key = asyncssh.import_private_key(private_key)
    return key.export_private_key("pkcs8-pem", passphrase=passphrase).decode()


def key_line(public_key: str) -> str:
    """`algorithm base64` of an OpenSSH public key line, without its comment."""
    return " ".join(public_key.split()[:2])


def key_body(private_key: str) -> str:
    """The base64 of a private key without its armour: what must never leak."""
    return "".join(line for line in private_key.splitlines() if not line.startswith("-----"))


def ok_json(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def add_farm_key(client: Any, admin: dict[str, str], farm: SSHFarm, name: str = FARM_KEY) -> Any:
    """The farm's client key as a credential: root on every farm host."""
    body = {"name": name, "kind": "ssh_key", "private_key": farm.client_private_key}
    return ok_json(client.post(CREDENTIALS, json=body, headers=admin), 201)


def host_body(farm_host: FarmHost, name: str, **extra: Any) -> dict[str, Any]:
    """A request adding `farm_host` as root with the farm key."""
    return {
        "name": name,
        "address": farm_host.address,
        "port": farm_host.port,
        "user": "root",
        "credential": FARM_KEY,
        **extra,
    }


def add_host(
    client: Any, admin: dict[str, str], farm_host: FarmHost, name: str, **extra: Any
) -> Any:
    return ok_json(client.post(HOSTS, json=host_body(farm_host, name, **extra), headers=admin), 201)


def add_unverified_host(
    client: Any, admin: dict[str, str], name: str, *, labels: dict[str, str] | None = None
) -> Any:
    """A host saved without a login (no farm needed): for group and bookkeeping tests."""
    body = {
        "name": name,
        "address": "192.0.2.10",  # TEST-NET-1: never answers
        "credential": FARM_KEY,
        "labels": labels or {},
        "verify": False,
    }
    return ok_json(client.post(HOSTS, json=body, headers=admin), 201)


def add_password_credential(client: Any, admin: dict[str, str], name: str, password: str) -> Any:
    body = {"name": name, "kind": "password", "password": password}
    return ok_json(client.post(CREDENTIALS, json=body, headers=admin), 201)


def targets_state(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    """What a refused request must not change: credentials, hosts, groups, revisions, secrets."""
    columns = {
        "credentials": (
            Credential.name,
            Credential.kind,
            Credential.revision,
            Credential.secret_id,
            Credential.fingerprint,
            Credential.description,
        ),
        "credential_revisions": (
            CredentialRevision.credential_id,
            CredentialRevision.revision,
            CredentialRevision.fingerprint,
            CredentialRevision.changes,
        ),
        "hosts": (
            Host.name,
            Host.address,
            Host.port,
            Host.user,
            Host.credential_id,
            Host.labels,
            Host.deploy_root,
            Host.description,
            Host.host_key,
            Host.host_key_fingerprint,
            Host.revision,
        ),
        "host_revisions": (
            HostRevision.host_id,
            HostRevision.revision,
            HostRevision.address,
            HostRevision.host_key_fingerprint,
            HostRevision.changes,
        ),
        "groups": (
            HostGroup.name,
            HostGroup.host_ids,
            HostGroup.selector,
            HostGroup.description,
            HostGroup.revision,
        ),
        "group_revisions": (
            HostGroupRevision.group_id,
            HostGroupRevision.revision,
            HostGroupRevision.hosts,
            HostGroupRevision.selector,
        ),
        "secrets": (Secret.id, Secret.ciphertext),
    }
    with session_factory(settings)() as session:
        return {
            name: sorted((tuple(row) for row in session.execute(select(*cols))), key=repr)
            for name, cols in columns.items()
        }


def revision_rows(settings: Settings, model: Any) -> list[tuple[Any, ...]]:
    """Every column of every revision row of `model`, to show that old ones never change."""
    with session_factory(settings)() as session:
        rows = session.scalars(select(model).order_by(model.id)).all()
        return [
            tuple(getattr(row, column.key) for column in model.__table__.columns) for row in rows
        ]

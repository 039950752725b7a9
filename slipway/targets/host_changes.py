"""Creating, changing and deleting hosts: a login is tried before a save, every change a revision.

A host's key pin belongs to its address and port (as a known_hosts line does): moving a host to
another address pins what the new address offers; changing only the user or the credential logs
in against the pinned key, so a changed key is refused before anything is saved.
"""

from __future__ import annotations

from enum import Enum
from typing import Final, Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from slipway.core.config import Settings
from slipway.core.db import utcnow
from slipway.core.errors import ConflictError
from slipway.remote.ssh_types import SSHTarget
from slipway.targets import credentials, hosts
from slipway.targets.checks import check_description, check_labels
from slipway.targets.host_checks import (
    check_address,
    check_deploy_root,
    check_target_name,
    check_user,
)
from slipway.targets.host_probe import Probe, record_success, verify_for_save
from slipway.targets.models import Credential, Host


class _Keep(Enum):
    KEEP = "keep"


# Leave a nullable field as it is (None means "clear it").
KEEP: Final = _Keep.KEEP
LOGIN_FIELDS = ("address", "port", "user", "credential")


def _target(
    session: Session,
    settings: Settings,
    *,
    name: str,
    address: str,
    port: int,
    user: str,
    credential: Credential,
    host_key: str | None,
) -> SSHTarget:
    secret = credentials.reveal(session, settings, credential)
    return SSHTarget(
        address=address,
        port=port,
        user=user,
        private_key=secret.private_key,
        passphrase=secret.passphrase,
        password=secret.password,
        host_key=host_key,
        name=name,
    )


def _exists_error(name: str) -> ConflictError:
    return ConflictError(
        f"host {name!r} already exists: pick another name, or change it with "
        f"PATCH /api/v1/hosts/{name}",
        code="host_exists",
        details={"field": "name"},
    )


def create_host(
    session: Session,
    settings: Settings,
    *,
    name: str,
    address: str,
    credential: str,
    port: int = 22,
    user: str = "root",
    labels: dict[str, str] | None = None,
    deploy_root: str | None = None,
    description: str = "",
    verify: bool = True,
    actor: str | None = None,
) -> Host:
    """Check the fields, log in (unless `verify` is false), then save the host, key pinned.

    Nothing is written unless the login succeeded; a host saved without `verify` gets its key
    pinned on its first successful connect.
    """
    check_target_name(name)
    address = check_address(address)
    user = check_user(user)
    labels = check_labels(labels or {})
    deploy_root = check_deploy_root(deploy_root) if deploy_root is not None else None
    description = check_description(description)
    login = credentials.get_credential_or_raise(session, credential, field="credential")
    if hosts.get_host(session, name) is not None:
        raise _exists_error(name)
    probe = None
    if verify:
        target = _target(
            session,
            settings,
            name=name,
            address=address,
            port=port,
            user=user,
            credential=login,
            host_key=None,
        )
        probe = verify_for_save(target, path=deploy_root)

    now = utcnow()
    host = Host(
        name=name,
        address=address,
        port=port,
        user=user,
        credential_id=login.id,
        labels=labels,
        deploy_root=deploy_root,
        description=description,
        revision=1,
        created_at=now,
        updated_at=now,
    )
    if probe is not None:
        hosts.set_pin(host, probe.host_key)
        record_success(host, probe)
    session.add(host)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise _exists_error(name) from None
    hosts.add_host_revision(session, host, changes=["created"], actor=actor)
    session.flush()
    return host


def _locked(session: Session, ref: str) -> Host:
    """The host, row-locked until the transaction ends (PostgreSQL; SQLite locks on write)."""
    host = hosts.get_host_or_raise(session, ref)
    session.refresh(host, with_for_update=True)
    return host


def update_host(
    session: Session,
    settings: Settings,
    *,
    ref: str,
    address: str | None = None,
    port: int | None = None,
    user: str | None = None,
    credential: str | None = None,
    labels: dict[str, str] | None = None,
    deploy_root: str | None | Literal[_Keep.KEEP] = KEEP,
    description: str | None = None,
    verify: bool = True,
    actor: str | None = None,
) -> Host:
    """Change a host; a new revision when something changed, none otherwise.

    A new address, port, user or credential is logged in with first (unless `verify` is false)
    and nothing is saved if that fails; other fields change without asking the host.
    """
    host = _locked(session, ref)
    new_address = check_address(address) if address is not None else host.address
    new_port = port if port is not None else host.port
    new_user = check_user(user) if user is not None else host.user
    new_labels = check_labels(labels) if labels is not None else host.labels
    if deploy_root is KEEP:
        new_root = host.deploy_root
    else:
        new_root = check_deploy_root(deploy_root) if deploy_root is not None else None
    new_description = check_description(description) if description is not None else None
    login = (
        credentials.get_credential_or_raise(session, credential, field="credential")
        if credential is not None
        else session.get(Credential, host.credential_id)
    )
    assert login is not None

    new_values = {
        "address": new_address,
        "port": new_port,
        "user": new_user,
        "credential": login.id,
        "labels": new_labels,
        "deploy_root": new_root,
        "description": new_description if new_description is not None else host.description,
    }
    old_values = {
        "address": host.address,
        "port": host.port,
        "user": host.user,
        "credential": host.credential_id,
        "labels": host.labels,
        "deploy_root": host.deploy_root,
        "description": host.description,
    }
    changes = [field for field in new_values if new_values[field] != old_values[field]]
    if not changes:
        return host
    is_moved = "address" in changes or "port" in changes
    probe: Probe | None = None
    if verify and any(field in changes for field in LOGIN_FIELDS):
        target = _target(
            session,
            settings,
            name=host.name,
            address=new_address,
            port=new_port,
            user=new_user,
            credential=login,
            host_key=None if is_moved else host.host_key,
        )
        probe = verify_for_save(target, path=new_root)

    old_fingerprint = host.host_key_fingerprint
    host.address, host.port, host.user = new_address, new_port, new_user
    host.credential_id = login.id
    host.labels = new_labels
    host.deploy_root = new_root
    if new_description is not None:
        host.description = new_description
    if is_moved or (probe is not None and host.host_key is None):
        hosts.set_pin(host, probe.host_key if probe is not None else None)
    if host.host_key_fingerprint != old_fingerprint:
        changes.append("host_key")
    if probe is not None:
        record_success(host, probe)
    host.revision += 1
    host.updated_at = utcnow()
    hosts.add_host_revision(session, host, changes=changes, actor=actor)
    session.flush()
    return host


def forget_host_key(session: Session, *, ref: str, actor: str | None = None) -> Host:
    """Clear the host's pin (after a legitimate reinstall); the next login pins again."""
    host = _locked(session, ref)
    if host.host_key is None:
        return host
    hosts.set_pin(host, None)
    host.revision += 1
    host.updated_at = utcnow()
    hosts.add_host_revision(session, host, changes=["host_key"], actor=actor)
    session.flush()
    return host


def delete_host(session: Session, *, ref: str) -> None:
    """Remove a host and its revisions; refused while a group lists it or another domain uses it."""
    host = _locked(session, ref)
    users = hosts.host_users(session, host)
    if users:
        shown = ", ".join(users[:10]) + (" and more" if len(users) > 10 else "")
        raise ConflictError(
            f"host {host.name!r} is used by {shown}; take it out of those first",
            code="host_in_use",
            details={"used_by": users},
        )
    session.delete(host)
    session.flush()

"""SSH hosts and host groups as every domain sees them: lookup, members, targets and key pins.

This is the surface other domains (releases) code against:

    get_host_or_raise(session, ref) -> Host              name or id; 404 host_not_found
    get_group_or_raise(session, ref) -> HostGroup
    group_members(session, group) -> list[Host]          in deploy order; selectors resolved now
    ssh_target(session, settings, host) -> SSHTarget     decrypted credential + pinned key
    pin_host_key(session, host_id, public_key)           first successful connect; caller commits
    register_host_usage_check / register_group_usage_check

Changing hosts lives in `host_changes`, testing them in `host_probe`, groups in `host_groups`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.core.config import Settings
from slipway.core.db import utcnow
from slipway.core.errors import NotFoundError
from slipway.core.lookup import by_name_or_id
from slipway.remote.ssh_keys import key_fingerprint
from slipway.remote.ssh_types import HostKeyChangedError, SSHTarget
from slipway.targets import credentials
from slipway.targets.models import Credential, Host, HostGroup, HostRevision

SYSTEM_ACTOR = "system"

# Other domains say what uses a host or group (targets may not import them): each check returns
# who uses it ("environment shop/prod"), and a host or group in use cannot be deleted.
HostUsageCheck = Callable[[Session, Host], list[str]]
GroupUsageCheck = Callable[[Session, HostGroup], list[str]]
_host_checks: list[HostUsageCheck] = []
_group_checks: list[GroupUsageCheck] = []


def register_host_usage_check(check: HostUsageCheck) -> None:
    if check not in _host_checks:
        _host_checks.append(check)


def register_group_usage_check(check: GroupUsageCheck) -> None:
    if check not in _group_checks:
        _group_checks.append(check)


def host_users(session: Session, host: Host) -> list[str]:
    """Who uses `host`: groups that list it by name, then what other domains registered."""
    groups = [
        f"group {group.name}"
        for group in session.scalars(select(HostGroup).order_by(HostGroup.name))
        if group.host_ids is not None and host.id in group.host_ids
    ]
    return groups + [user for check in _host_checks for user in check(session, host)]


def group_users(session: Session, group: HostGroup) -> list[str]:
    return [user for check in _group_checks for user in check(session, group)]


# --- hosts ----------------------------------------------------------------------------------------


def get_host(session: Session, ref: str) -> Host | None:
    """The host named `ref`, or with id `ref` when it is all digits (names never are)."""
    return by_name_or_id(session, Host, ref)


def get_host_or_raise(session: Session, ref: str, *, field: str | None = None) -> Host:
    """The host `ref` (name or id), or 404; `field` names the request field it came from."""
    host = get_host(session, ref)
    if host is None:
        details: dict[str, Any] | None = {"field": field, "host": ref} if field else None
        raise NotFoundError(
            f"host {ref[:80]!r} does not exist; see GET /api/v1/hosts",
            code="host_not_found",
            details=details,
        )
    return host


def matches(labels: dict[str, str], selector: dict[str, str]) -> bool:
    """Whether `labels` hold every pair of `selector`."""
    return all(labels.get(key) == value for key, value in selector.items())


def list_hosts(
    session: Session,
    *,
    selector: dict[str, str] | None = None,
    limit: int | None = None,
    after: str | None = None,
) -> list[Host]:
    """Hosts by name whose labels hold `selector`; a page of `limit` after the name `after`."""
    query = select(Host).order_by(Host.name)
    if after is not None:
        query = query.where(Host.name > after)
    if not selector:
        return list(session.scalars(query.limit(limit) if limit is not None else query))
    # Labels are JSON, compared here rather than in SQL so SQLite and PostgreSQL agree.
    found = [host for host in session.scalars(query) if matches(host.labels, selector)]
    return found[:limit] if limit is not None else found


def host_revisions(
    session: Session, ref: str, *, limit: int | None = None, before: int | None = None
) -> list[HostRevision]:
    """A host's revisions, newest first; a page of `limit` older than `before`."""
    host = get_host_or_raise(session, ref)
    query = (
        select(HostRevision)
        .where(HostRevision.host_id == host.id)
        .order_by(HostRevision.revision.desc())
    )
    if before is not None:
        query = query.where(HostRevision.revision < before)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def credential_names(session: Session, hosts: Iterable[Host]) -> dict[int, str]:
    """Credential id -> name for these hosts, in one query."""
    ids = {host.credential_id for host in hosts}
    if not ids:
        return {}
    rows = session.execute(select(Credential.id, Credential.name).where(Credential.id.in_(ids)))
    return {row.id: row.name for row in rows}


def add_host_revision(
    session: Session, host: Host, *, changes: list[str], actor: str | None
) -> None:
    """Append the host's current state as revision `host.revision`."""
    credential = session.get(Credential, host.credential_id)
    assert credential is not None
    session.add(
        HostRevision(
            host_id=host.id,
            revision=host.revision,
            address=host.address,
            port=host.port,
            user=host.user,
            credential=credential.name,
            labels=dict(host.labels),
            deploy_root=host.deploy_root,
            description=host.description,
            host_key_fingerprint=host.host_key_fingerprint,
            changes=changes,
            actor=actor,
            created_at=host.updated_at,
        )
    )


# --- connecting -----------------------------------------------------------------------------------


def ssh_target(
    session: Session, settings: Settings, host: Host, *, connect_timeout: float = 10.0
) -> SSHTarget:
    """How to reach `host`, credential decrypted and key pinned: for a connection about to start.

    An unpinned host gives `host_key=None` (accept and report); the caller pins what it saw with
    `pin_host_key` after its first successful connect.
    """
    credential = session.get(Credential, host.credential_id)
    assert credential is not None
    secret = credentials.reveal(session, settings, credential)
    return SSHTarget(
        address=host.address,
        port=host.port,
        user=host.user,
        private_key=secret.private_key,
        passphrase=secret.passphrase,
        password=secret.password,
        host_key=host.host_key,
        connect_timeout=connect_timeout,
        name=host.name,
    )


def key_changed_error(host: Host, offered_key: str) -> HostKeyChangedError:
    """The refusal of a host whose pinned key is not the one it offers now (as `connect` words
    it, for a key seen on another connection)."""
    label = f"{host.name} ({host.address}:{host.port})"
    pinned = host.host_key_fingerprint or ""
    offered = key_fingerprint(offered_key)
    return HostKeyChangedError(
        f"{label}: the host offered key {offered}, not the pinned {pinned}. If the host was "
        f"reinstalled, check the new key and POST /api/v1/hosts/{host.name}/forget-host-key",
        details={"host": label, "pinned": pinned, "offered": offered},
    )


def set_pin(host: Host, public_key: str | None) -> None:
    """Pin `public_key` on `host` (None clears the pin); no revision, no flush."""
    host.host_key = public_key.strip() if public_key else None
    host.host_key_fingerprint = key_fingerprint(public_key) if public_key else None
    host.host_key_pinned_at = utcnow() if public_key else None


def pin_host_key(
    session: Session, host_id: int, public_key: str, *, actor: str | None = None
) -> None:
    """Pin the key a first successful connect saw, with a revision; the caller commits.

    Nothing happens when this key is already pinned; another pinned key is refused with
    `host_key_changed` (a second connect saw a different key than the first one pinned).
    """
    host = session.get(Host, host_id)
    if host is None:
        raise NotFoundError(f"host {host_id} does not exist", code="host_not_found")
    session.refresh(host, with_for_update=True)
    if host.host_key is not None:
        if key_fingerprint(host.host_key) != key_fingerprint(public_key):
            raise key_changed_error(host, public_key)
        return
    set_pin(host, public_key)
    host.revision += 1
    host.updated_at = utcnow()
    add_host_revision(session, host, changes=["host_key"], actor=actor or SYSTEM_ACTOR)
    session.flush()


# --- groups ---------------------------------------------------------------------------------------


def get_group(session: Session, ref: str) -> HostGroup | None:
    """The group named `ref`, or with id `ref` when it is all digits (names never are)."""
    return by_name_or_id(session, HostGroup, ref)


def get_group_or_raise(session: Session, ref: str) -> HostGroup:
    """The group `ref` (name or id), or 404."""
    group = get_group(session, ref)
    if group is None:
        raise NotFoundError(
            f"host group {ref[:80]!r} does not exist; see GET /api/v1/host-groups",
            code="host_group_not_found",
        )
    return group


def group_members(session: Session, group: HostGroup) -> list[Host]:
    """The hosts `group` stands for now: its list in order, or its selector's hosts by name."""
    if group.selector is not None:
        return list_hosts(session, selector=group.selector)
    ids = list(group.host_ids or [])
    by_id = {host.id: host for host in session.scalars(select(Host).where(Host.id.in_(ids)))}
    return [by_id[host_id] for host_id in ids if host_id in by_id]


def listed_names(session: Session, group: HostGroup) -> list[str] | None:
    """The names a list group holds, in order; None for a selector group."""
    if group.host_ids is None:
        return None
    return [host.name for host in group_members(session, group)]

"""/api/v1/credentials, /hosts and /host-groups: admins write, viewers read, operators test.

Paths take a name or an id (`/hosts/h0`, `/hosts/7`). No response holds a secret: credentials
show `has_private_key` / `has_password`, the public key and its fingerprint. Deletes answer 204
with no body and no content type.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from sqlalchemy.orm import Session

from slipway.api.deps import Admin, Operator, SessionDep, SettingsDep, Viewer
from slipway.api.pagination import decode_cursor, next_cursor
from slipway.core.errors import InputError
from slipway.targets import credentials, host_changes, host_groups, host_probe, hosts
from slipway.targets.host_schemas import (
    CredentialCreate,
    CredentialList,
    CredentialRead,
    CredentialRevisionList,
    CredentialRevisionRead,
    CredentialUpdate,
    HostCreate,
    HostFacts,
    HostGroupCreate,
    HostGroupList,
    HostGroupRead,
    HostGroupRevisionList,
    HostGroupRevisionRead,
    HostGroupUpdate,
    HostList,
    HostRead,
    HostRevisionList,
    HostRevisionRead,
    HostTestResult,
    HostUpdate,
)
from slipway.targets.models import Host, HostGroup

router = APIRouter(tags=["hosts"])

Limit = Annotated[int, Query(ge=1, le=500)]
Ref = Annotated[str, Path(description="a name or an id")]


# --- credentials ----------------------------------------------------------------------------------


@router.get("/credentials", response_model=CredentialList)
def list_credentials(
    _: Viewer, session: SessionDep, limit: Limit = 100, cursor: str | None = None
) -> CredentialList:
    items = credentials.list_credentials(session, limit=limit + 1, after=decode_cursor(cursor, str))
    return CredentialList(
        items=[CredentialRead.of(item) for item in items[:limit]],
        next_cursor=next_cursor(items, limit, "name"),
    )


@router.post("/credentials", response_model=CredentialRead, status_code=status.HTTP_201_CREATED)
def create_credential(
    principal: Admin, session: SessionDep, settings: SettingsDep, body: CredentialCreate
) -> CredentialRead:
    """Add a private key (checked to open with its passphrase) or a password; stored encrypted."""
    credential = credentials.create_credential(
        session,
        settings,
        name=body.name,
        kind=body.kind,
        private_key=body.private_key,
        passphrase=body.passphrase,
        password=body.password,
        description=body.description,
        actor=principal.name,
    )
    session.commit()
    return CredentialRead.of(credential)


@router.get("/credentials/{name}", response_model=CredentialRead)
def get_credential(_: Viewer, session: SessionDep, name: Ref) -> CredentialRead:
    return CredentialRead.of(credentials.get_credential_or_raise(session, name))


@router.patch("/credentials/{name}", response_model=CredentialRead)
def update_credential(
    principal: Admin,
    session: SessionDep,
    settings: SettingsDep,
    name: Ref,
    body: CredentialUpdate,
) -> CredentialRead:
    """Replace the secret (same kind) or the description: a new revision."""
    credential = credentials.update_credential(
        session,
        settings,
        ref=name,
        private_key=body.private_key,
        passphrase=body.passphrase,
        password=body.password,
        description=body.description,
        actor=principal.name,
    )
    session.commit()
    return CredentialRead.of(credential)


@router.delete(
    "/credentials/{name}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response
)
def delete_credential(_: Admin, session: SessionDep, settings: SettingsDep, name: Ref) -> None:
    """Remove a credential and its secret; refused (409) while hosts use it."""
    credentials.delete_credential(session, settings, ref=name)
    session.commit()


@router.get("/credentials/{name}/revisions", response_model=CredentialRevisionList)
def list_credential_revisions(
    _: Viewer, session: SessionDep, name: Ref, limit: Limit = 100, cursor: str | None = None
) -> CredentialRevisionList:
    """Every saved state of the credential (fingerprints, never the secret), newest first."""
    items = credentials.credential_revisions(
        session, name, limit=limit + 1, before=decode_cursor(cursor, int)
    )
    return CredentialRevisionList(
        items=[CredentialRevisionRead.of(item) for item in items[:limit]],
        next_cursor=next_cursor(items, limit, "revision"),
    )


# --- hosts ----------------------------------------------------------------------------------------


def _host_reads(session: Session, items: list[Host]) -> list[HostRead]:
    names = hosts.credential_names(session, items)
    return [HostRead.of(host, names[host.credential_id]) for host in items]


def _selector(labels: list[str]) -> dict[str, str]:
    selector = {}
    for pair in labels:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise InputError(f"label {pair[:80]!r} is not KEY=VALUE", field="label")
        selector[key] = value
    return selector


@router.get("/hosts", response_model=HostList)
def list_hosts(
    _: Viewer,
    session: SessionDep,
    label: Annotated[
        list[str] | None, Query(description="KEY=VALUE; repeat to require several")
    ] = None,
    limit: Limit = 100,
    cursor: str | None = None,
) -> HostList:
    items = hosts.list_hosts(
        session, selector=_selector(label or []), limit=limit + 1, after=decode_cursor(cursor, str)
    )
    return HostList(
        items=_host_reads(session, items[:limit]), next_cursor=next_cursor(items, limit, "name")
    )


@router.post("/hosts", response_model=HostRead, status_code=status.HTTP_201_CREATED)
def create_host(
    principal: Admin, session: SessionDep, settings: SettingsDep, body: HostCreate
) -> HostRead:
    """Add a host: it is logged in to first and its host key pinned (unless `verify` is false)."""
    host = host_changes.create_host(
        session,
        settings,
        name=body.name,
        address=body.address,
        port=body.port,
        user=body.user,
        credential=body.credential,
        labels=body.labels,
        deploy_root=body.deploy_root,
        description=body.description,
        verify=body.verify,
        actor=principal.name,
    )
    session.commit()
    return _host_reads(session, [host])[0]


@router.get("/hosts/{name}", response_model=HostRead)
def get_host(_: Viewer, session: SessionDep, name: Ref) -> HostRead:
    return _host_reads(session, [hosts.get_host_or_raise(session, name)])[0]


@router.patch("/hosts/{name}", response_model=HostRead)
def update_host(
    principal: Admin, session: SessionDep, settings: SettingsDep, name: Ref, body: HostUpdate
) -> HostRead:
    """Change a host: a new revision; a new address, port, user or credential is logged in
    with first."""
    deploy_root = body.deploy_root if "deploy_root" in body.model_fields_set else host_changes.KEEP
    host = host_changes.update_host(
        session,
        settings,
        ref=name,
        address=body.address,
        port=body.port,
        user=body.user,
        credential=body.credential,
        labels=body.labels,
        deploy_root=deploy_root,
        description=body.description,
        verify=body.verify,
        actor=principal.name,
    )
    session.commit()
    return _host_reads(session, [host])[0]


@router.delete("/hosts/{name}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_host(_: Admin, session: SessionDep, name: Ref) -> None:
    """Remove a host; refused (409) while a group lists it or an environment uses it."""
    host_changes.delete_host(session, ref=name)
    session.commit()


@router.post("/hosts/{name}/test", response_model=HostTestResult)
def test_host(
    principal: Operator, session: SessionDep, settings: SettingsDep, name: Ref
) -> HostTestResult:
    """Log in now and report the OS, free disk and the user's rights (recorded on the host).

    The pinned key is enforced; a host without one gets the key it offers pinned.
    """
    check = host_probe.probe_host(session, settings, ref=name, actor=principal.name)
    session.commit()
    if check.error is not None:
        raise check.error
    assert check.probe is not None and check.host.last_checked_at is not None
    return HostTestResult(
        name=check.host.name,
        checked_at=check.host.last_checked_at,
        facts=HostFacts.model_validate(check.probe.facts),
        host_key_fingerprint=check.probe.host_key_fingerprint,
        pinned_now=check.pinned_now,
    )


@router.post("/hosts/{name}/forget-host-key", response_model=HostRead)
def forget_host_key(principal: Admin, session: SessionDep, name: Ref) -> HostRead:
    """Clear the pinned host key after a legitimate reinstall; the next login pins again."""
    host = host_changes.forget_host_key(session, ref=name, actor=principal.name)
    session.commit()
    return _host_reads(session, [host])[0]


@router.get("/hosts/{name}/revisions", response_model=HostRevisionList)
def list_host_revisions(
    _: Viewer, session: SessionDep, name: Ref, limit: Limit = 100, cursor: str | None = None
) -> HostRevisionList:
    """Every saved state of the host, newest (the one in effect) first."""
    items = hosts.host_revisions(session, name, limit=limit + 1, before=decode_cursor(cursor, int))
    return HostRevisionList(
        items=[HostRevisionRead.of(item) for item in items[:limit]],
        next_cursor=next_cursor(items, limit, "revision"),
    )


# --- host groups ----------------------------------------------------------------------------------


def _group_read(session: Session, group: HostGroup) -> HostGroupRead:
    view = host_groups.read_view(session, group)
    return HostGroupRead.of(group, listed=view["listed"], members=view["members"])


@router.get("/host-groups", response_model=HostGroupList)
def list_host_groups(
    _: Viewer, session: SessionDep, limit: Limit = 100, cursor: str | None = None
) -> HostGroupList:
    items = host_groups.list_groups(session, limit=limit + 1, after=decode_cursor(cursor, str))
    return HostGroupList(
        items=[_group_read(session, item) for item in items[:limit]],
        next_cursor=next_cursor(items, limit, "name"),
    )


@router.post("/host-groups", response_model=HostGroupRead, status_code=status.HTTP_201_CREATED)
def create_host_group(
    principal: Admin, session: SessionDep, body: HostGroupCreate
) -> HostGroupRead:
    """Add a group: `hosts` in deploy order, or a label `selector`."""
    group = host_groups.create_group(
        session,
        name=body.name,
        host_refs=body.hosts,
        selector=body.selector,
        description=body.description,
        actor=principal.name,
    )
    session.commit()
    return _group_read(session, group)


@router.get("/host-groups/{name}", response_model=HostGroupRead)
def get_host_group(_: Viewer, session: SessionDep, name: Ref) -> HostGroupRead:
    return _group_read(session, hosts.get_group_or_raise(session, name))


@router.patch("/host-groups/{name}", response_model=HostGroupRead)
def update_host_group(
    principal: Admin, session: SessionDep, name: Ref, body: HostGroupUpdate
) -> HostGroupRead:
    """Replace the hosts or the selector (switching kind), or the description."""
    group = host_groups.update_group(
        session,
        ref=name,
        host_refs=body.hosts,
        selector=body.selector,
        description=body.description,
        actor=principal.name,
    )
    session.commit()
    return _group_read(session, group)


@router.delete(
    "/host-groups/{name}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response
)
def delete_host_group(_: Admin, session: SessionDep, name: Ref) -> None:
    """Remove a group (its hosts stay); refused (409) while an environment uses it."""
    host_groups.delete_group(session, ref=name)
    session.commit()


@router.get("/host-groups/{name}/revisions", response_model=HostGroupRevisionList)
def list_host_group_revisions(
    _: Viewer, session: SessionDep, name: Ref, limit: Limit = 100, cursor: str | None = None
) -> HostGroupRevisionList:
    """Every saved state of the group, newest first."""
    items = host_groups.group_revisions(
        session, name, limit=limit + 1, before=decode_cursor(cursor, int)
    )
    return HostGroupRevisionList(
        items=[HostGroupRevisionRead.of(item) for item in items[:limit]],
        next_cursor=next_cursor(items, limit, "revision"),
    )

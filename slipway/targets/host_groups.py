"""Host groups: an ordered list of hosts (deploy order) or a label selector, never both.

A list group keeps host ids, so its order is the order given and a host in it cannot be deleted;
a selector group is resolved whenever it is read (hosts holding every pair, by name), so hosts
join and leave it by their labels.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from slipway.core.db import utcnow
from slipway.core.errors import ConflictError, InputError
from slipway.targets import hosts
from slipway.targets.checks import check_description
from slipway.targets.host_checks import check_group_refs, check_selector, check_target_name
from slipway.targets.models import HostGroup, HostGroupRevision


def list_groups(
    session: Session, *, limit: int | None = None, after: str | None = None
) -> list[HostGroup]:
    """Every group by name; a page of `limit` after the name `after`."""
    query = select(HostGroup).order_by(HostGroup.name)
    if after is not None:
        query = query.where(HostGroup.name > after)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def group_revisions(
    session: Session, ref: str, *, limit: int | None = None, before: int | None = None
) -> list[HostGroupRevision]:
    """A group's revisions, newest first; a page of `limit` older than `before`."""
    group = hosts.get_group_or_raise(session, ref)
    query = (
        select(HostGroupRevision)
        .where(HostGroupRevision.group_id == group.id)
        .order_by(HostGroupRevision.revision.desc())
    )
    if before is not None:
        query = query.where(HostGroupRevision.revision < before)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def _membership(
    session: Session, host_refs: list[str] | None, selector: dict[str, str] | None
) -> tuple[list[int] | None, dict[str, str] | None]:
    """(host ids in order, None) or (None, selector), checked; exactly one must be given."""
    if host_refs is not None and selector is not None:
        raise InputError(
            "give either hosts (an ordered list) or selector (labels), not both", field="selector"
        )
    if selector is not None:
        return None, check_selector(selector)
    if host_refs is None:
        raise InputError(
            'a group needs hosts (e.g. ["h0", "h1"]) or a selector (e.g. {"role": "web"})',
            field="hosts",
        )
    ids: list[int] = []
    for ref in check_group_refs(host_refs):
        host = hosts.get_host_or_raise(session, ref, field="hosts")
        if host.id in ids:
            raise InputError(f"host {host.name!r} is listed twice in hosts", field="hosts")
        ids.append(host.id)
    return ids, None


def _add_revision(
    session: Session, group: HostGroup, *, changes: list[str], actor: str | None
) -> None:
    session.add(
        HostGroupRevision(
            group_id=group.id,
            revision=group.revision,
            description=group.description,
            hosts=hosts.listed_names(session, group),
            selector=group.selector,
            changes=changes,
            actor=actor,
            created_at=group.updated_at,
        )
    )


def _exists_error(name: str) -> ConflictError:
    return ConflictError(
        f"host group {name!r} already exists: pick another name, or change it with "
        f"PATCH /api/v1/host-groups/{name}",
        code="host_group_exists",
        details={"field": "name"},
    )


def create_group(
    session: Session,
    *,
    name: str,
    host_refs: list[str] | None = None,
    selector: dict[str, str] | None = None,
    description: str = "",
    actor: str | None = None,
) -> HostGroup:
    """Save a group of listed hosts (each must exist) or a selector, with its revision 1."""
    check_target_name(name)
    description = check_description(description)
    host_ids, selector = _membership(session, host_refs, selector)
    if hosts.get_group(session, name) is not None:
        raise _exists_error(name)
    now = utcnow()
    group = HostGroup(
        name=name,
        description=description,
        host_ids=host_ids,
        selector=selector,
        revision=1,
        created_at=now,
        updated_at=now,
    )
    session.add(group)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise _exists_error(name) from None
    _add_revision(session, group, changes=["created"], actor=actor)
    session.flush()
    return group


def _locked(session: Session, ref: str) -> HostGroup:
    group = hosts.get_group_or_raise(session, ref)
    session.refresh(group, with_for_update=True)
    return group


def update_group(
    session: Session,
    *,
    ref: str,
    host_refs: list[str] | None = None,
    selector: dict[str, str] | None = None,
    description: str | None = None,
    actor: str | None = None,
) -> HostGroup:
    """Replace the membership (`host_refs` or `selector`, switching kind) or the description."""
    group = _locked(session, ref)
    new_description = check_description(description) if description is not None else None
    changes: list[str] = []
    host_ids, new_selector = group.host_ids, group.selector
    if host_refs is not None or selector is not None:
        host_ids, new_selector = _membership(session, host_refs, selector)
        if host_ids != group.host_ids:
            changes.append("hosts")
        if new_selector != group.selector:
            changes.append("selector")
    if new_description is not None and new_description != group.description:
        changes.append("description")
    if not changes:
        return group
    if "hosts" in changes or "selector" in changes:
        group.host_ids, group.selector = host_ids, new_selector
    if new_description is not None:
        group.description = new_description
    group.revision += 1
    group.updated_at = utcnow()
    _add_revision(session, group, changes=changes, actor=actor)
    session.flush()
    return group


def delete_group(session: Session, *, ref: str) -> None:
    """Remove a group and its revisions (its hosts stay); refused while another domain uses it."""
    group = _locked(session, ref)
    users = hosts.group_users(session, group)
    if users:
        shown = ", ".join(users[:10]) + (" and more" if len(users) > 10 else "")
        raise ConflictError(
            f"host group {group.name!r} is used by {shown}; point those at another group first",
            code="host_group_in_use",
            details={"used_by": users},
        )
    session.delete(group)
    session.flush()


def read_view(session: Session, group: HostGroup) -> dict[str, Any]:
    """What a group reads as: its listed hosts by name and its members now."""
    return {
        "listed": hosts.listed_names(session, group),
        "members": [host.name for host in hosts.group_members(session, group)],
    }

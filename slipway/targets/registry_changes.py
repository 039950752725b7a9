"""Creating, changing and deleting registries: a real login before a save, every change a revision.

The password is stored (in the vault) only after the registry took it; a refused login, an
unreachable registry or a bad field leaves everything as it was.
"""

from __future__ import annotations

from enum import Enum
from typing import Final, Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from slipway.core.config import Settings
from slipway.core.db import utcnow
from slipway.core.errors import ConflictError
from slipway.core.secrets import open_vault
from slipway.targets import registries
from slipway.targets.checks import check_description, check_name
from slipway.targets.models import Registry, RegistryRevision
from slipway.targets.registry_checks import (
    check_fits,
    check_password,
    check_username,
    parse_address,
)

# A change of one of these logs in again before anything is saved.
LOGIN_FIELDS = ("url", "username", "password", "insecure")


class _Keep(Enum):
    KEEP = "keep"


# Leave the DNS alias as it is (None clears it).
KEEP: Final = _Keep.KEEP


# --- writing --------------------------------------------------------------------------------------


def _add_revision(
    session: Session, registry: Registry, *, changes: list[str], actor: str | None
) -> None:
    session.add(
        RegistryRevision(
            registry_id=registry.id,
            revision=registry.revision,
            url=registry.url,
            username=registry.username,
            dns_alias=registry.dns_alias,
            is_insecure=registry.is_insecure,
            description=registry.description,
            changes=changes,
            actor=actor,
            created_at=registry.updated_at,
        )
    )


def _exists_error(name: str) -> ConflictError:
    return ConflictError(
        f"registry {name!r} already exists: pick another name, or change it with "
        f"PATCH /api/v1/registries/{name}",
        code="registry_exists",
        details={"field": "name"},
    )


def _check_hosts_free(
    session: Session, *, server: str, alias: str | None, own_id: int | None = None
) -> None:
    """One registry per host: an image's host must name exactly one registry."""
    for other in registries.list_registries(session):
        if other.id == own_id:
            continue
        taken = registries.hosts_of(other)
        for field, host in (("url", server), ("dns_alias", alias)):
            if host is not None and host in taken:
                raise ConflictError(
                    f"{host} is already the host of registry {other.name!r}: images named "
                    f"{host}/… must point at one registry; change or remove that one first",
                    code="registry_host_taken",
                    details={"field": field, "registry": other.name},
                )


def _alias(dns_alias: str | None) -> str | None:
    if dns_alias is None or dns_alias == "":
        return None
    return parse_address(dns_alias, field="dns_alias", allow_scheme=False).server


def create_registry(
    session: Session,
    settings: Settings,
    *,
    name: str,
    url: str,
    username: str,
    password: str,
    dns_alias: str | None = None,
    insecure: bool = False,
    description: str = "",
    actor: str | None = None,
) -> Registry:
    """Check the fields, log in for real, then save the registry and its revision 1.

    Nothing is written (not even the password) unless the registry took the login.
    """
    check_name(name)
    address = parse_address(url)
    check_fits(address, insecure=insecure)
    alias = _alias(dns_alias)
    username = check_username(username)
    password = check_password(password)
    description = check_description(description)
    if registries.get_registry(session, name) is not None:
        raise _exists_error(name)
    _check_hosts_free(session, server=address.server, alias=alias)
    _, found = registries.log_in(address, insecure=insecure, username=username, password=password)

    now = utcnow()
    secret_id = open_vault(session, settings).store(
        session, owner=f"registry:{name}", value=password
    )
    registry = Registry(
        name=name,
        url=address.url,
        username=username,
        secret_id=secret_id,
        dns_alias=alias,
        is_insecure=insecure,
        description=description,
        revision=1,
        created_at=now,
        updated_at=now,
    )
    registries.record_success(registry, found)
    session.add(registry)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise _exists_error(name) from None
    _add_revision(session, registry, changes=["created"], actor=actor)
    session.flush()
    return registry


def _locked(session: Session, name: str) -> Registry:
    """The registry, row-locked until the transaction ends (PostgreSQL; SQLite locks on write)."""
    registry = registries.get_registry_or_raise(session, name)
    session.refresh(registry, with_for_update=True)
    return registry


def update_registry(
    session: Session,
    settings: Settings,
    *,
    name: str,
    url: str | None = None,
    username: str | None = None,
    password: str | None = None,
    dns_alias: str | None | Literal[_Keep.KEEP] = KEEP,
    insecure: bool | None = None,
    description: str | None = None,
    actor: str | None = None,
) -> Registry:
    """Change a registry; a new revision when something changed, none otherwise.

    A new url, username, password or insecure flag is logged in with first and nothing is saved
    if that fails; the DNS alias and the description change without asking the registry.
    """
    registry = _locked(session, name)
    address = parse_address(url) if url is not None else registries.address_of(registry)
    new_insecure = insecure if insecure is not None else registry.is_insecure
    check_fits(address, insecure=new_insecure)
    alias = registry.dns_alias if dns_alias is KEEP else _alias(dns_alias)
    new_username = check_username(username) if username is not None else registry.username
    new_password = check_password(password) if password is not None else None
    new_description = check_description(description) if description is not None else None
    vault = open_vault(session, settings)
    old_password = vault.reveal(session, registry.secret_id)

    new_values = {
        "url": address.url,
        "username": new_username,
        "password": new_password if new_password is not None else old_password,
        "insecure": new_insecure,
        "dns_alias": alias,
        "description": new_description if new_description is not None else registry.description,
    }
    old_values = {
        "url": registry.url,
        "username": registry.username,
        "password": old_password,
        "insecure": registry.is_insecure,
        "dns_alias": registry.dns_alias,
        "description": registry.description,
    }
    changes = [field for field in new_values if new_values[field] != old_values[field]]
    if not changes:
        return registry
    _check_hosts_free(session, server=address.server, alias=alias, own_id=registry.id)
    found = None
    if any(field in changes for field in LOGIN_FIELDS):
        _, found = registries.log_in(
            address, insecure=new_insecure, username=new_username, password=new_values["password"]
        )

    registry.url = address.url
    registry.username = new_username
    registry.is_insecure = new_insecure
    registry.dns_alias = alias
    if new_description is not None:
        registry.description = new_description
    if "password" in changes:
        vault.store(
            session,
            owner=f"registry:{registry.name}",
            value=new_values["password"],
            secret_id=registry.secret_id,
        )
    if found is not None:
        registries.record_success(registry, found)
    registry.revision += 1
    registry.updated_at = utcnow()
    _add_revision(session, registry, changes=changes, actor=actor)
    session.flush()
    return registry


def delete_registry(session: Session, settings: Settings, *, name: str) -> None:
    """Remove a registry, its revisions and its password; refused while something uses it."""
    registry = _locked(session, name)
    users = registries.registry_users(session, registry)
    if users:
        shown = ", ".join(users[:10]) + (" and more" if len(users) > 10 else "")
        raise ConflictError(
            f"registry {registry.name!r} is used by {shown}; let them finish or remove them first",
            code="registry_in_use",
            details={"used_by": users},
        )
    secret_id = registry.secret_id
    session.delete(registry)
    session.flush()
    open_vault(session, settings).forget(session, secret_id)
    session.flush()

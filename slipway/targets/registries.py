"""Container registries: validated by a real login when saved, password in the vault, every
change a revision (the newest wins).

This is the surface other domains (builds) code against:

    get_registry_or_raise(session, name) -> Registry       404 registry_not_found
    registry_for_image(session, image) -> Registry | None  by the image's host, or a DNS alias
    registry_login(session, settings, registry) -> RegistryLogin   password decrypted (workers)
    probe_registry(session, settings, name=…) -> RegistryTest     log in now, record it
    check_registries(session, settings) -> list[dict]      system.check's results
    register_registry_usage_check(check)                   what uses a registry (no delete then)

Changing registries lives in `registry_changes`, the HTTP side (login, manifests, tags) in
`registry_client`, field checks in `registry_checks`.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.core.config import Settings
from slipway.core.db import utcnow
from slipway.core.errors import NotFoundError, SlipwayError
from slipway.core.secrets import open_vault
from slipway.targets.models import Registry, RegistryRevision
from slipway.targets.registry_checks import RegistryAddress, image_host, parse_address
from slipway.targets.registry_client import RegistryCheck, RegistryLogin, discover

LOGIN_TIMEOUT = 10.0
CHECK_PARALLELISM = 8

# Other domains say what uses a registry (targets may not import them): each check returns who
# uses it ("build 12"), and a registry in use cannot be deleted.
RegistryUsageCheck = Callable[[Session, Registry], list[str]]
_usage_checks: list[RegistryUsageCheck] = []


def register_registry_usage_check(check: RegistryUsageCheck) -> None:
    if check not in _usage_checks:
        _usage_checks.append(check)


# --- reading --------------------------------------------------------------------------------------


def get_registry(session: Session, name: str) -> Registry | None:
    return session.scalar(select(Registry).where(Registry.name == name))


def get_registry_or_raise(session: Session, name: str, *, field: str | None = None) -> Registry:
    """The registry `name`, or 404; `field` names the request field it came from."""
    registry = get_registry(session, name)
    if registry is None:
        raise NotFoundError(
            f"registry {name[:80]!r} does not exist; see GET /api/v1/registries",
            code="registry_not_found",
            details={"field": field} if field else None,
        )
    return registry


def list_registries(
    session: Session, *, limit: int | None = None, after: str | None = None
) -> list[Registry]:
    """Every registry by name; a page of `limit` after the name `after`."""
    query = select(Registry).order_by(Registry.name)
    if after is not None:
        query = query.where(Registry.name > after)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def registry_revisions(
    session: Session, name: str, *, limit: int | None = None, before: int | None = None
) -> list[RegistryRevision]:
    """A registry's revisions, newest first; a page of `limit` older than `before`."""
    registry = get_registry_or_raise(session, name)
    query = (
        select(RegistryRevision)
        .where(RegistryRevision.registry_id == registry.id)
        .order_by(RegistryRevision.revision.desc())
    )
    if before is not None:
        query = query.where(RegistryRevision.revision < before)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def address_of(registry: Registry) -> RegistryAddress:
    return parse_address(registry.url)


def hosts_of(registry: Registry) -> set[str]:
    """The hosts image references use for this registry: its server and its DNS alias."""
    hosts = {address_of(registry).server}
    if registry.dns_alias:
        hosts.add(registry.dns_alias)
    return hosts


def registry_for_image(session: Session, image: str) -> Registry | None:
    """The registry whose host[:port] or DNS alias is the host of `image`
    (`10.101.12.128/ns/app:1`); None for a Docker Hub name or a host nobody configured."""
    host = image_host(image)
    if host is None:
        return None
    # A handful of rows; parsed here so that SQLite and PostgreSQL agree on matching.
    for registry in list_registries(session):
        if host in hosts_of(registry):
            return registry
    return None


# --- logging in -----------------------------------------------------------------------------------


def reveal_password(session: Session, settings: Settings, registry: Registry) -> str:
    return open_vault(session, settings).reveal(session, registry.secret_id)


def registry_login(session: Session, settings: Settings, registry: Registry) -> RegistryLogin:
    """How to log in to `registry`, password decrypted: for a worker about to push or read.

    The address is the one that answered the last successful login (https or http).
    """
    address = address_of(registry)
    base_url, verify = address.candidates(insecure=registry.is_insecure)[0]
    if registry.base_url:
        base_url = registry.base_url
        verify = base_url.startswith("https://") and not address.is_insecure(registry.is_insecure)
    return RegistryLogin(
        server=address.server,
        username=registry.username,
        password=reveal_password(session, settings, registry),
        base_url=base_url,
        verify=verify,
    )


def log_in(
    address: RegistryAddress, *, insecure: bool, username: str, password: str
) -> tuple[RegistryLogin, RegistryCheck]:
    """A real login at `address` (https first, then http where Docker would try it)."""
    return discover(
        address.candidates(insecure=insecure),
        server=address.server,
        username=username,
        password=password,
        timeout=LOGIN_TIMEOUT,
    )


def record_success(registry: Registry, found: RegistryCheck) -> None:
    registry.base_url = found.base_url
    registry.auth_scheme = found.auth_scheme
    registry.last_checked_at = utcnow()
    registry.last_error = None


def record_failure(registry: Registry, error: SlipwayError) -> None:
    registry.last_checked_at = utcnow()
    registry.last_error = {"code": error.code, "message": error.message}


@dataclass(frozen=True)
class RegistryTest:
    """What a test of a registry found: the login's outcome, or why it failed."""

    registry: Registry
    found: RegistryCheck | None
    error: SlipwayError | None


def _log_in_quietly(
    address: RegistryAddress, insecure: bool, username: str, password: str
) -> RegistryCheck | SlipwayError:
    try:
        return log_in(address, insecure=insecure, username=username, password=password)[1]
    except SlipwayError as error:
        return error


def _settle(registry: Registry, outcome: RegistryCheck | SlipwayError) -> RegistryTest:
    if isinstance(outcome, SlipwayError):
        record_failure(registry, outcome)
        return RegistryTest(registry, None, outcome)
    record_success(registry, outcome)
    return RegistryTest(registry, outcome, None)


def probe_registry(session: Session, settings: Settings, *, name: str) -> RegistryTest:
    """Log in now with the saved password and record the outcome (the caller commits)."""
    registry = get_registry_or_raise(session, name)
    password = reveal_password(session, settings, registry)
    outcome = _log_in_quietly(
        address_of(registry), registry.is_insecure, registry.username, password
    )
    tested = _settle(registry, outcome)
    session.flush()
    return tested


def check_registries(session: Session, settings: Settings) -> list[dict[str, Any]]:
    """Log in to every registry at once; one result per registry, recorded on it (the caller
    commits). Each result is `{"name": "registry:<name>", "ok", "message", "details"}`, the
    shape of system.check's results."""
    every = list_registries(session)
    if not every:
        return []
    vault = open_vault(session, settings)
    logins = [
        (
            address_of(registry),
            registry.is_insecure,
            registry.username,
            vault.reveal(session, registry.secret_id),
        )
        for registry in every
    ]
    with ThreadPoolExecutor(max_workers=min(CHECK_PARALLELISM, len(logins))) as pool:
        outcomes = list(pool.map(lambda login: _log_in_quietly(*login), logins))
    results = []
    for registry, outcome in zip(every, outcomes, strict=True):
        tested = _settle(registry, outcome)
        details: dict[str, Any] = {"registry": registry.name, "url": registry.url}
        if tested.error is not None:
            details["code"] = tested.error.code
            message = tested.error.message
        else:
            assert tested.found is not None
            details.update(base_url=tested.found.base_url, auth=tested.found.auth_scheme)
            message = (
                f"{registry.username} logs in at {tested.found.base_url} "
                f"({tested.found.auth_scheme} auth)"
            )
        results.append(
            {
                "name": f"registry:{registry.name}",
                "ok": tested.error is None,
                "message": message,
                "details": details,
            }
        )
    session.flush()
    return results


def registry_users(session: Session, registry: Registry) -> list[str]:
    """Who uses `registry`, as other domains registered it."""
    return [user for check in _usage_checks for user in check(session, registry)]

"""Docker endpoints: validated by a real ping when saved, key in the vault, every change a revision.

The built-in endpoint `local` (this machine's engine, `SLIPWAY_DOCKER_HOST`) exists without anyone
creating it: it is written on first use by `ensure_local`. Other domains reach an engine through
`engine_spec`, which decrypts the key for the worker that is about to connect.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from slipway.core.config import Settings, get_settings
from slipway.core.db import utcnow
from slipway.core.errors import ConflictError, InputError, NotFoundError, SlipwayError
from slipway.core.secrets import Vault, open_vault
from slipway.remote import docker as remote_docker
from slipway.remote.docker import EngineSpec, TLSMaterial
from slipway.targets import tls as tls_files
from slipway.targets.checks import (
    check_description,
    check_labels,
    check_name,
    check_tls_fits,
    check_url,
    tls_field,
)
from slipway.targets.models import DockerEndpoint, DockerEndpointRevision
from slipway.targets.tls import CheckedTLS, TLSUpload

LOCAL_NAME = "local"
# Other domains say what stands on an endpoint (targets may not import them): each check returns
# the names of the things using it, and an endpoint in use cannot be deleted.
UsageCheck = Callable[[Session, str], list[str]]
_usage_checks: list[UsageCheck] = []


def register_usage_check(check: UsageCheck) -> None:
    if check not in _usage_checks:
        _usage_checks.append(check)


LOCAL_DESCRIPTION = (
    "this machine's Docker engine (built in; its first address is SLIPWAY_DOCKER_HOST)"
)
SYSTEM_ACTOR = "system"
CHECK_PARALLELISM = 8


# --- reading ------------------------------------------------------------------------------------


def get(session: Session, name: str) -> DockerEndpoint | None:
    return session.scalar(select(DockerEndpoint).where(DockerEndpoint.name == name))


def get_or_raise(
    session: Session, name: str, *, settings: Settings | None = None
) -> DockerEndpoint:
    """The endpoint named `name` (the built-in `local` is created on first use), or 404."""
    if name == LOCAL_NAME:
        return ensure_local(session, settings or get_settings())
    endpoint = get(session, name)
    if endpoint is None:
        raise NotFoundError(
            f"Docker endpoint {name!r} does not exist; see GET /api/v1/docker-endpoints",
            code="endpoint_not_found",
        )
    return endpoint


def list_(
    session: Session,
    *,
    settings: Settings | None = None,
    limit: int | None = None,
    after: str | None = None,
) -> list[DockerEndpoint]:
    """Every endpoint by name, `local` included; a page of `limit` after the name `after`."""
    ensure_local(session, settings or get_settings())
    query = select(DockerEndpoint).order_by(DockerEndpoint.name)
    if after is not None:
        query = query.where(DockerEndpoint.name > after)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def revisions(
    session: Session,
    *,
    name: str,
    settings: Settings | None = None,
    limit: int | None = None,
    before: int | None = None,
) -> list[DockerEndpointRevision]:
    """An endpoint's revisions, newest first; a page of `limit` older than `before`."""
    endpoint = get_or_raise(session, name, settings=settings)
    query = (
        select(DockerEndpointRevision)
        .where(DockerEndpointRevision.endpoint_id == endpoint.id)
        .order_by(DockerEndpointRevision.revision.desc())
    )
    if before is not None:
        query = query.where(DockerEndpointRevision.revision < before)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def ensure_local(session: Session, settings: Settings) -> DockerEndpoint:
    """The built-in endpoint `local`, written on first use from SLIPWAY_DOCKER_HOST (no ping)."""
    endpoint = get(session, LOCAL_NAME)
    if endpoint is not None:
        return endpoint
    url = check_url(settings.docker_host, field="SLIPWAY_DOCKER_HOST")
    now = utcnow()
    values = {
        "name": LOCAL_NAME,
        "url": url,
        "is_builtin": True,
        "description": LOCAL_DESCRIPTION,
        "labels": {},
        "revision": 1,
        "created_at": now,
        "updated_at": now,
    }
    # Two first requests may race; the loser's insert does nothing and it reads the winner's row.
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    table = DockerEndpoint.__table__
    inserted = session.execute(
        dialect.insert(table).values(**values).on_conflict_do_nothing().returning(table.c.id)
    ).first()
    endpoint = get(session, LOCAL_NAME)
    assert endpoint is not None
    if inserted is not None:
        _add_revision(session, endpoint, changes=["created"], actor=SYSTEM_ACTOR)
        session.flush()
    return endpoint


# --- connecting ---------------------------------------------------------------------------------


def _material(session: Session, vault: Vault, endpoint: DockerEndpoint) -> TLSMaterial | None:
    if endpoint.key_secret_id is None:
        return None
    assert endpoint.ca_pem is not None and endpoint.cert_pem is not None
    return TLSMaterial(
        ca_pem=endpoint.ca_pem,
        cert_pem=endpoint.cert_pem,
        key_pem=vault.reveal(session, endpoint.key_secret_id),
    )


def _spec(session: Session, settings: Settings, endpoint: DockerEndpoint) -> EngineSpec:
    vault = open_vault(session, settings) if endpoint.has_tls else None
    tls = _material(session, vault, endpoint) if vault is not None else None
    return EngineSpec(name=endpoint.name, url=endpoint.url, tls=tls)


def engine_spec(session: Session, settings: Settings, name: str) -> EngineSpec:
    """How to reach the engine `name`, key decrypted: for a worker about to connect."""
    return _spec(session, settings, get_or_raise(session, name, settings=settings))


def _record_check(
    endpoint: DockerEndpoint, *, engine: dict[str, str] | None, error: SlipwayError | None
) -> None:
    endpoint.last_checked_at = utcnow()
    if error is None:
        endpoint.engine = engine
        endpoint.last_error = None
    else:
        endpoint.last_error = {"code": error.code, "message": error.message}


@dataclass(frozen=True)
class EndpointCheck:
    """What a test of an endpoint found: the engine's description, or why it failed."""

    endpoint: DockerEndpoint
    engine: dict[str, str] | None
    error: SlipwayError | None


def probe(session: Session, settings: Settings, *, name: str) -> EndpointCheck:
    """Ping the engine now and record the outcome on the endpoint (the caller commits)."""
    endpoint = get_or_raise(session, name, settings=settings)
    engine, error = _ping_quietly(_spec(session, settings, endpoint))
    _record_check(endpoint, engine=engine, error=error)
    session.flush()
    return EndpointCheck(endpoint=endpoint, engine=engine, error=error)


def _ping_quietly(spec: EngineSpec) -> tuple[dict[str, str] | None, SlipwayError | None]:
    try:
        return remote_docker.ping(spec), None
    except SlipwayError as exc:
        return None, exc


def check_endpoints(session: Session, settings: Settings) -> list[dict[str, Any]]:
    """Ping every endpoint at once; one check result per endpoint, recorded on it (caller commits).

    Each result is `{"name": "docker_endpoint:<name>", "ok", "message", "details"}`, the shape
    of system.check's results.
    """
    endpoints = list_(session, settings=settings)
    vault = open_vault(session, settings) if any(e.has_tls for e in endpoints) else None
    specs = [
        EngineSpec(
            name=e.name,
            url=e.url,
            tls=_material(session, vault, e) if vault is not None else None,
        )
        for e in endpoints
    ]
    if not specs:
        return []
    with ThreadPoolExecutor(max_workers=min(CHECK_PARALLELISM, len(specs))) as pool:
        outcomes = list(pool.map(_ping_quietly, specs))
    results = []
    for endpoint, (engine, error) in zip(endpoints, outcomes, strict=True):
        _record_check(endpoint, engine=engine, error=error)
        details: dict[str, Any] = {"endpoint": endpoint.name, "url": endpoint.url}
        if error is None:
            assert engine is not None
            message = f"Docker {engine['version']} ({engine['os']}/{engine['arch']}) answers"
            details.update(engine)
        else:
            message = error.message
            details["code"] = error.code
        results.append(
            {
                "name": f"docker_endpoint:{endpoint.name}",
                "ok": error is None,
                "message": message,
                "details": details,
            }
        )
    session.flush()
    return results


# --- writing ------------------------------------------------------------------------------------


def _add_revision(
    session: Session, endpoint: DockerEndpoint, *, changes: list[str], actor: str | None
) -> DockerEndpointRevision:
    revision = DockerEndpointRevision(
        endpoint_id=endpoint.id,
        revision=endpoint.revision,
        url=endpoint.url,
        has_tls=endpoint.has_tls,
        ca_fingerprint=endpoint.ca_fingerprint,
        cert_fingerprint=endpoint.cert_fingerprint,
        tls_expires_at=endpoint.tls_expires_at,
        labels=dict(endpoint.labels),
        description=endpoint.description,
        changes=changes,
        actor=actor,
        created_at=endpoint.updated_at,
    )
    session.add(revision)
    return revision


def _set_tls(endpoint: DockerEndpoint, checked: CheckedTLS | None) -> None:
    material = checked.material if checked else None
    endpoint.ca_pem = material.ca_pem if material else None
    endpoint.cert_pem = material.cert_pem if material else None
    endpoint.ca_fingerprint = checked.ca_fingerprint if checked else None
    endpoint.cert_fingerprint = checked.cert_fingerprint if checked else None
    endpoint.tls_expires_at = checked.expires_at if checked else None


def _is_same_tls(endpoint: DockerEndpoint, checked: CheckedTLS) -> bool:
    """The same CA and certificate; then the key is the same too, as it belongs to the cert."""
    return (
        endpoint.has_tls
        and endpoint.ca_pem == checked.material.ca_pem
        and endpoint.cert_pem == checked.material.cert_pem
    )


def _exists_error(name: str) -> ConflictError:
    return ConflictError(
        f"Docker endpoint {name!r} already exists: pick another name, or change it with "
        f"PATCH /api/v1/docker-endpoints/{name}",
        code="endpoint_exists",
    )


def create(
    session: Session,
    settings: Settings,
    *,
    name: str,
    url: str,
    labels: dict[str, str] | None = None,
    description: str = "",
    tls: TLSUpload | None = None,
    actor: str | None = None,
) -> DockerEndpoint:
    """Check everything, ping the engine, then save the endpoint and its revision 1.

    Nothing is written unless the engine answered with this exact address and TLS material.
    """
    check_name(name)
    url = check_url(url)
    labels = check_labels(labels or {})
    description = check_description(description)
    checked = tls_files.read_upload(tls) if tls is not None else None
    check_tls_fits(url, checked is not None, field=tls_field(tls))
    if name == LOCAL_NAME or get(session, name) is not None:
        raise _exists_error(name)
    spec = EngineSpec(name=name, url=url, tls=checked.material if checked else None)
    engine = remote_docker.ping(spec)

    now = utcnow()
    endpoint = DockerEndpoint(
        name=name,
        url=url,
        labels=labels,
        description=description,
        revision=1,
        created_at=now,
        updated_at=now,
    )
    _set_tls(endpoint, checked)
    if checked is not None:
        vault = open_vault(session, settings)
        endpoint.key_secret_id = vault.store(
            session, owner=f"docker-endpoint:{name}", value=checked.material.key_pem
        )
    _record_check(endpoint, engine=engine, error=None)
    session.add(endpoint)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise _exists_error(name) from None
    _add_revision(session, endpoint, changes=["created"], actor=actor)
    session.flush()
    return endpoint


def _locked(session: Session, settings: Settings, name: str) -> DockerEndpoint:
    """The endpoint, row-locked until the transaction ends (PostgreSQL; SQLite locks on write)."""
    endpoint = get_or_raise(session, name, settings=settings)
    session.refresh(endpoint, with_for_update=True)
    return endpoint


def update(
    session: Session,
    settings: Settings,
    *,
    name: str,
    url: str | None = None,
    labels: dict[str, str] | None = None,
    description: str | None = None,
    tls: TLSUpload | None = None,
    remove_tls: bool = False,
    actor: str | None = None,
) -> DockerEndpoint:
    """Change an endpoint; a new revision when something changed, none otherwise.

    A new address or new TLS material is pinged first and nothing is saved if the engine does
    not answer; labels and the description change without asking the engine.
    """
    endpoint = _locked(session, settings, name)
    new_url = check_url(url) if url is not None else endpoint.url
    new_labels = check_labels(labels) if labels is not None else endpoint.labels
    new_description = check_description(description) if description is not None else None
    checked = tls_files.read_upload(tls) if tls is not None else None
    if checked is not None and remove_tls:
        raise InputError("send either new TLS material or remove_tls, not both", field="remove_tls")
    keeps_tls = endpoint.has_tls and not remove_tls
    field = "url" if checked is None else tls_field(tls)
    check_tls_fits(new_url, checked is not None or keeps_tls, field=field)

    changes = []
    if new_url != endpoint.url:
        changes.append("url")
    if (checked is not None and not _is_same_tls(endpoint, checked)) or (
        remove_tls and endpoint.has_tls
    ):
        changes.append("tls")
    if new_labels != endpoint.labels:
        changes.append("labels")
    if new_description is not None and new_description != endpoint.description:
        changes.append("description")
    if not changes:
        return endpoint

    vault = open_vault(session, settings) if (checked or endpoint.has_tls) else None
    engine = None
    if "url" in changes or "tls" in changes:
        if checked is not None:
            material = checked.material
        elif keeps_tls:
            assert vault is not None
            material = _material(session, vault, endpoint)
        else:
            material = None
        engine = remote_docker.ping(EngineSpec(name=name, url=new_url, tls=material))

    endpoint.url = new_url
    endpoint.labels = new_labels
    if new_description is not None:
        endpoint.description = new_description
    old_secret = None
    if "tls" in changes and checked is not None:
        assert vault is not None
        _set_tls(endpoint, checked)
        endpoint.key_secret_id = vault.store(
            session,
            owner=f"docker-endpoint:{name}",
            value=checked.material.key_pem,
            secret_id=endpoint.key_secret_id,
        )
    elif remove_tls and endpoint.has_tls:
        old_secret = endpoint.key_secret_id
        _set_tls(endpoint, None)
        endpoint.key_secret_id = None
    if engine is not None:
        _record_check(endpoint, engine=engine, error=None)
    endpoint.revision += 1
    endpoint.updated_at = utcnow()
    _add_revision(session, endpoint, changes=changes, actor=actor)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise ConflictError(
            f"Docker endpoint {name!r} was changed by someone else meanwhile: read it again and "
            "retry",
            code="endpoint_changed",
        ) from None
    if old_secret is not None:
        assert vault is not None
        vault.forget(session, old_secret)
        session.flush()
    return endpoint


def delete(session: Session, settings: Settings, *, name: str) -> None:
    """Remove an endpoint, its revisions and its key; the built-in `local` stays."""
    endpoint = _locked(session, settings, name)
    if endpoint.is_builtin:
        raise ConflictError(
            f"{name!r} is the built-in endpoint of this machine's engine and cannot be deleted; "
            f"change its url with PATCH /api/v1/docker-endpoints/{name} instead",
            code="endpoint_builtin",
        )
    users = [user for check in _usage_checks for user in check(session, name)]
    if users:
        raise ConflictError(
            f"endpoint {name!r} is in use by {', '.join(users[:10])}"
            f"{' and more' if len(users) > 10 else ''}; uninstall them first",
            code="endpoint_in_use",
            details={"used_by": users},
        )
    secret_id = endpoint.key_secret_id
    session.delete(endpoint)
    session.flush()
    if secret_id is not None:
        open_vault(session, settings).forget(session, secret_id)
        session.flush()

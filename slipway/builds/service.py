"""Builds: accept a spec (FastBuild's request or slipway's own), render it, queue it, read it.

Everything that can be refused is refused here, before anything is saved: the spec, its mirror
profile, the callback address, the endpoint, and the registry the image will be pushed to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.builds import callbacks, dockerfile, mirrors
from slipway.builds import spec as specs
from slipway.builds.models import Build, BuildStatus
from slipway.core import outbound, runtime_settings
from slipway.core.config import Settings
from slipway.core.errors import ConflictError, InputError, NotFoundError
from slipway.core.outbound_allow import allow_list
from slipway.core.secrets import load_key
from slipway.jobs import service as jobs
from slipway.jobs.models import Operation, Trigger
from slipway.targets import registries
from slipway.targets import service as targets
from slipway.targets.models import Registry
from slipway.targets.registry_checks import image_host

# Builds on one engine share this lock key; its capacity is the engine's build concurrency.
LOCK_PREFIX = "endpoint-builds:"


def lock_key(endpoint: str, settings: Settings) -> dict[str, Any]:
    return {"key": f"{LOCK_PREFIX}{endpoint}", "capacity": settings.build_concurrency}


@dataclass(frozen=True)
class Accepted:
    build: Build
    operation: Operation


def _registry_for(session: Session, spec: specs.BuildSpec, field: str) -> str | None:
    """The registry the image is pushed to, matched by the image name's host (or DNS alias)."""
    if not spec.push:
        return None
    registry = registries.registry_for_image(session, spec.target_image)
    if registry is not None:
        return registry.name
    host = image_host(spec.target_image)
    where = f"host {host!r}" if host else "Docker Hub"
    raise InputError(
        f"no registry is configured for {where} of {spec.target_image!r}; add it with "
        "POST /api/v1/registries (its url or dns_alias must be that host), or set push to false",
        field=field,
        code="registry_not_configured",
    )


def _check_callback(session: Session, settings: Settings, url: str, field: str) -> None:
    """Refuse a callback to a forbidden address now, not after the build.

    A name that does not resolve yet is let through: DNS may answer by the time the build ends,
    and the delivery checks the address again (and records why when it cannot send).
    """
    callbacks.check_callback_url(url, field=field)
    try:
        outbound.check_url(url, allow_list(session, settings), field=field)
    except InputError as exc:
        if exc.code != "outbound_unresolved":
            raise


def default_endpoint(session: Session, settings: Settings) -> str:
    """Where a build runs when its request does not say: FastBuild's docker server, else local."""
    name = runtime_settings.get(session, "builds.default_endpoint", None)
    if isinstance(name, str) and targets.get(session, name) is not None:
        return name
    return targets.ensure_local(session, settings).name


def submit(
    session: Session,
    settings: Settings,
    *,
    body: dict[str, Any],
    actor: str,
    trigger: Trigger | str = Trigger.api,
    endpoint: str | None = None,
) -> Accepted:
    """Check and render a build request, save it and queue its `build.image` operation."""
    spec = specs.parse_build_request(
        body,
        fastbuild_key=settings.fastbuild_aes_key,
        fastbuild_iv=settings.fastbuild_aes_iv,
    )
    source_format = spec.source_format
    mirror = mirrors.check_mirrors(session, spec)
    endpoint_name = endpoint or spec.endpoint or default_endpoint(session, settings)
    targets.get_or_raise(session, endpoint_name, settings=settings)
    registry = _registry_for(session, spec, spec.request_field("target_image"))
    if spec.callback_url:
        _check_callback(session, settings, spec.callback_url, spec.request_field("callback_url"))
    context = dockerfile.render(spec, mirror=mirror, salt_key=load_key(settings))
    build = Build(
        task_name=spec.task_name,
        source_format=source_format,
        base_image=spec.base_image,
        target_image=spec.target_image,
        endpoint=endpoint_name,
        registry_name=registry,
        push=spec.push,
        callback_url=spec.callback_url,
        spec=specs.public_dict(spec),
        spec_hash=specs.spec_hash(spec),
        dockerfile=context.dockerfile,
        context_files={name: data.decode() for name, data in context.files.items()},
        status=BuildStatus.queued,
        actor=actor,
    )
    session.add(build)
    session.flush()
    operation = jobs.submit(
        session,
        settings,
        kind="build.image",
        subject=f"build:{build.id}",
        params={"build_id": build.id},
        actor=actor,
        trigger=trigger,
        lock_keys=[lock_key(endpoint_name, settings)],
        timeout=settings.build_timeout,
    )
    # The job reads the build by id, so the row may learn its operation's id after the enqueue.
    build.operation_id = operation.id
    session.commit()
    return Accepted(build=build, operation=operation)


def get_or_raise(session: Session, build_id: int | str) -> Build:
    try:
        key = int(build_id)
    except (TypeError, ValueError):
        key = -1
    build = session.get(Build, key) if key > 0 else None
    if build is None:
        raise NotFoundError(
            f"no build {build_id!r}; GET /api/v1/builds lists them", code="build_not_found"
        )
    return build


def list_(
    session: Session,
    *,
    limit: int,
    before: int | None = None,
    status: str | None = None,
    task_name: str | None = None,
) -> list[Build]:
    """Builds, newest first; a page of `limit` older than the build id `before`."""
    query = select(Build).order_by(Build.id.desc()).limit(limit)
    if before is not None:
        query = query.where(Build.id < before)
    if status is not None:
        query = query.where(Build.status == status)
    if task_name is not None:
        query = query.where(Build.task_name == task_name)
    return list(session.scalars(query))


def cancel(session: Session, settings: Settings, build: Build, *, actor: str) -> Operation:
    if build.operation_id is None or BuildStatus(build.status).is_final:
        raise ConflictError(
            f"build {build.id} is {build.status}; only a queued or running build can be canceled",
            code="build_finished",
            details={"status": build.status},
        )
    return jobs.cancel(session, settings, build.operation_id, actor=actor)


def operations_of(session: Session, builds: list[Build]) -> dict[str, Operation]:
    """The operations of `builds`, by id, in one query."""
    ids = [build.operation_id for build in builds if build.operation_id]
    if not ids:
        return {}
    return {op.id: op for op in session.scalars(select(Operation).where(Operation.id.in_(ids)))}


def operation_of(session: Session, build: Build) -> Operation | None:
    return session.get(Operation, build.operation_id) if build.operation_id else None


def _active(session: Session, *conditions: Any) -> list[str]:
    final = [str(status) for status in BuildStatus if status.is_final]
    query = select(Build.id).where(Build.status.not_in(final), *conditions).order_by(Build.id)
    return [f"build {build_id}" for build_id in session.scalars(query)]


def builds_on_endpoint(session: Session, endpoint: str) -> list[str]:
    return _active(session, Build.endpoint == endpoint)


def builds_pushing_to(session: Session, registry: Registry) -> list[str]:
    return _active(session, Build.registry_name == registry.name)


# A Docker endpoint or registry that a queued or running build uses cannot be deleted.
targets.register_usage_check(builds_on_endpoint)
registries.register_registry_usage_check(builds_pushing_to)

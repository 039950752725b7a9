"""Single-image actions FastBuild's clients call directly: pull onto the build engine, check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import docker.errors
from sqlalchemy.orm import Session

from slipway.builds.imageref import registry_path, split_image
from slipway.builds.service import default_endpoint
from slipway.builds.streams import stream_error
from slipway.core.config import Settings
from slipway.core.errors import ExternalServiceError, InputError
from slipway.remote.docker import describe_failure, docker_client
from slipway.targets import registries
from slipway.targets import service as targets
from slipway.targets.registry_checks import image_host
from slipway.targets.registry_client import RegistryClient

PULL_TIMEOUT = 600


def _parts(
    image: str, field: str, split: Callable[[str], tuple[str, str]] = split_image
) -> tuple[str, str]:
    """`split(image)`, or an InputError naming `field`."""
    try:
        return split(image)
    except ValueError as exc:
        raise InputError(f"{field}: {exc}", field=field) from None


def pull(session: Session, settings: Settings, image: str, *, field: str) -> dict[str, Any]:
    """Pull `image` onto the default build endpoint; the registry's login when one matches."""
    repository, tag = _parts(image, field)
    registry = registries.registry_for_image(session, image)
    auth = None
    if registry is not None:
        login = registries.registry_login(session, settings, registry)
        auth = {"username": login.username, "password": login.password}
    spec = targets.engine_spec(session, settings, default_endpoint(session, settings))
    try:
        with docker_client(spec, timeout=PULL_TIMEOUT) as client:
            for chunk in client.api.pull(
                repository, tag=tag, auth_config=auth, stream=True, decode=True
            ):
                error = stream_error(chunk)
                if error:
                    raise ExternalServiceError(
                        f"pulling {image} failed: {error}", code="pull_failed"
                    )
            image_id = client.images.get(f"{repository}:{tag}").id
    except docker.errors.DockerException as exc:
        raise describe_failure(spec, exc) from None
    return {"image": image, "id": image_id, "endpoint": spec.name}


def check(session: Session, settings: Settings, image: str, *, field: str) -> dict[str, Any]:
    """Whether the registry `image` names holds it, by asking the registry for its manifest."""
    path, tag = _parts(image, field, registry_path)
    registry = registries.registry_for_image(session, image)
    if registry is None:
        host = image_host(image)
        raise InputError(
            f"no registry is configured for {host or 'Docker Hub'}; add it with "
            "POST /api/v1/registries",
            field=field,
            code="registry_not_configured",
        )
    login = registries.registry_login(session, settings, registry)
    with RegistryClient(login) as client:
        manifest = client.manifest(path, tag)
    if manifest is None:
        return {"image": image, "exists": False, "digest": None, "size": None}
    return {"image": image, "exists": True, "digest": manifest.digest, "size": manifest.size}

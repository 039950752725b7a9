"""PEM uploads, tar bundles and what the database holds, for the Docker endpoint tests."""

from __future__ import annotations

import io
import tarfile
from typing import Any

from sqlalchemy import select

from slipway.core.config import Settings
from slipway.core.db import session_factory
from slipway.core.models import Secret
from slipway.targets.models import DockerEndpoint, DockerEndpointRevision
from tests.targets.pki import Pair


def pem_files(ca: str, pair: Pair) -> dict[str, tuple[str, bytes, str]]:
    """The three PEM uploads of a multipart request."""
    return {
        "ca": ("ca.pem", ca.encode(), "application/x-pem-file"),
        "cert": ("cert.pem", pair.cert_pem.encode(), "application/x-pem-file"),
        "key": ("key.pem", pair.key_pem.encode(), "application/x-pem-file"),
    }


def tar_bundle(
    members: dict[str, bytes] | list[tarfile.TarInfo | tuple[str, bytes]], *, gzip: bool = False
) -> bytes:
    """A tar of `members` (name -> content, or a list that may repeat names or hold special
    TarInfo entries such as links and devices), as FastBuild's clients send it."""
    entries = list(members.items()) if isinstance(members, dict) else members
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gzip else "w") as archive:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                archive.addfile(entry)
                continue
            name, content = entry
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o600
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def bundle_of(ca: str, pair: Pair, *, gzip: bool = False) -> bytes:
    return tar_bundle(
        {
            "ca.pem": ca.encode(),
            "cert.pem": pair.cert_pem.encode(),
            "key.pem": pair.key_pem.encode(),
        },
        gzip=gzip,
    )


def key_body(pair: Pair) -> str:
    """The base64 of a private key without its PEM armour: what must never leak."""
    return "".join(line for line in pair.key_pem.splitlines() if not line.startswith("-----"))


def endpoint_state(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    """What a refused request must not change: endpoints, revisions and secrets."""
    with session_factory(settings)() as session:
        return {
            "endpoints": sorted(
                session.execute(
                    select(
                        DockerEndpoint.name,
                        DockerEndpoint.url,
                        DockerEndpoint.revision,
                        DockerEndpoint.labels,
                        DockerEndpoint.description,
                        DockerEndpoint.key_secret_id,
                        DockerEndpoint.cert_fingerprint,
                    )
                ).all()
            ),
            "revisions": sorted(
                session.execute(
                    select(
                        DockerEndpointRevision.endpoint_id,
                        DockerEndpointRevision.revision,
                        DockerEndpointRevision.url,
                    )
                ).all()
            ),
            "secrets": sorted(session.execute(select(Secret.id, Secret.ciphertext)).all()),
        }


ENDPOINTS = "/api/v1/docker-endpoints"


def names(client: Any, headers: dict[str, str]) -> list[str]:
    response = client.get(ENDPOINTS, headers=headers)
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()["items"]]

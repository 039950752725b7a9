"""What the registry tests share: the URL, request bodies and the rows a refusal must not change."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from slipway.core.config import Settings
from slipway.core.db import session_factory
from slipway.core.models import Secret
from slipway.targets.models import Registry, RegistryRevision
from tests.support.registry import RegistryServer

REGISTRIES = "/api/v1/registries"
# What is not under test here is the SQL: most registry tests run on SQLite alone.
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def ok_json(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def registry_body(server: RegistryServer, name: str = "local", **extra: Any) -> dict[str, Any]:
    """A request adding `server` with its robot account."""
    return {
        "name": name,
        "url": server.address,
        "username": server.username,
        "password": server.password,
        **extra,
    }


def add_registry(
    client: Any, admin: dict[str, str], server: RegistryServer, name: str = "local", **extra: Any
) -> Any:
    body = registry_body(server, name, **extra)
    return ok_json(client.post(REGISTRIES, json=body, headers=admin), 201)


def registry_state(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    """What a refused request must not change: registries, revisions and secrets."""
    with session_factory(settings)() as session:
        return {
            "registries": sorted(
                session.execute(
                    select(
                        Registry.name,
                        Registry.url,
                        Registry.username,
                        Registry.dns_alias,
                        Registry.is_insecure,
                        Registry.description,
                        Registry.revision,
                        Registry.secret_id,
                    )
                ).all()
            ),
            "revisions": sorted(
                session.execute(
                    select(
                        RegistryRevision.registry_id,
                        RegistryRevision.revision,
                        RegistryRevision.changes,
                    )
                ).all(),
                key=repr,
            ),
            "secrets": sorted(session.execute(select(Secret.id, Secret.ciphertext)).all()),
        }


def history(client: Any, headers: dict[str, str], name: str) -> list[tuple[int, list[str]]]:
    page = ok_json(client.get(f"{REGISTRIES}/{name}/revisions", headers=headers))
    return [(item["revision"], item["changes"]) for item in page["items"]]

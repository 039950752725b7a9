"""GET /api/v1/catalog and /catalog/{key}, SLIPWAY_CATALOG_DIRS, and load_catalog for installs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from slipway.api.app import create_app
from slipway.apps.catalog import load_catalog
from slipway.apps.models import CatalogSource
from slipway.core.config import Settings
from slipway.core.db import session_factory
from tests.api.fixtures import cheap_hashes
from tests.api.helpers import assert_error, assert_invalid
from tests.apps.catalog_helpers import write_app
from tests.conftest import bearer

__all__ = ["cheap_hashes"]
pytestmark = pytest.mark.usefixtures("cheap_hashes")
BUILTIN_KEYS = ["gitea", "nginx", "postgres", "redis", "uptime-kuma", "wordpress"]


@pytest.fixture
def viewer(tokens: dict[str, str]) -> dict[str, str]:
    return bearer(tokens["viewer"])


def client_with(settings: Settings, **overrides: Any) -> TestClient:
    changed = Settings(**{**settings.model_dump(), **overrides})
    return TestClient(create_app(changed, run_maintenance=False))


@pytest.fixture
def env_dirs(tmp_path: Path) -> list[Path]:
    first = tmp_path / "library" / "apps"
    write_app(first, "nginx", version="1.99")  # shadows the built-in nginx
    write_app(first, "ghost", version="5.0", notes="# ghost notes\n")
    write_app(first, "broken").joinpath(".env").write_text("W9_ID='oops\n")
    second = tmp_path / "team-apps"
    write_app(second, "metabase")
    return [first, second]


@pytest.fixture
def dirs_client(settings: Settings, env_dirs: list[Path]) -> Iterator[TestClient]:
    with client_with(settings, catalog_dirs=env_dirs) as client:
        yield client


def test_the_built_in_catalog_is_listed_with_its_version(client, viewer):
    body = client.get("/api/v1/catalog", headers=viewer).json()
    assert [item["key"] for item in body["items"]] == BUILTIN_KEYS
    assert body["next_cursor"] is None
    wordpress = next(item for item in body["items"] if item["key"] == "wordpress")
    assert wordpress == {
        "key": "wordpress",
        "name": "wordpress",
        "trademark": "WordPress",
        "source": "builtin",
        "catalog_version": "1.0.0",
        "editions": [{"dist": "community", "versions": ["6.8", "6.7", "latest"]}],
        "default_edition": "community",
        "default_version": "6.8",
        "requirements": {
            "cpu": 1.0,
            "memory_gb": 1.0,
            "disk_gb": 2.0,
            "url": "https://wordpress.org/about/requirements/",
        },
    }


def test_search_and_pages(client, viewer):
    found = client.get("/api/v1/catalog", params={"q": "SQL"}, headers=viewer).json()["items"]
    assert [item["key"] for item in found] == ["postgres"]  # trademark PostgreSQL
    first = client.get("/api/v1/catalog", params={"limit": 4}, headers=viewer).json()
    assert [item["key"] for item in first["items"]] == BUILTIN_KEYS[:4]
    second = client.get(
        "/api/v1/catalog", params={"limit": 4, "cursor": first["next_cursor"]}, headers=viewer
    ).json()
    assert [item["key"] for item in second["items"]] == BUILTIN_KEYS[4:]
    assert second["next_cursor"] is None
    bad = client.get("/api/v1/catalog", params={"cursor": "bm90LWFuLWludA"}, headers=viewer)
    assert_invalid(bad, "cursor")
    assert_invalid(client.get("/api/v1/catalog?limit=0", headers=viewer), "limit")


def test_an_app_in_detail_never_shows_a_password(client, viewer):
    body = client.get("/api/v1/catalog/postgres", headers=viewer).json()
    settings = {s["name"]: s for s in body["settings"]}
    assert settings["W9_POWER_PASSWORD"] == {
        "name": "W9_POWER_PASSWORD",
        "default": None,
        "is_secret": True,
        "is_required": False,
        "is_settable": True,
        "is_generated": True,
    }
    assert settings["W9_LOGIN_PASSWORD"]["default"] is None
    assert not settings["W9_LOGIN_PASSWORD"]["is_generated"]  # it follows W9_POWER_PASSWORD
    assert (
        settings["W9_DB_PORT_SET"]["default"] == "5433"
        and settings["W9_DB_PORT_SET"]["is_settable"]
    )
    assert body["password_settings"] == ["W9_POWER_PASSWORD"]
    assert body["network"] == "slipway" and body["also_in"] == ["builtin"]
    assert body["readme"].startswith("# PostgreSQL") and "pg_upgrade" in body["notes"]
    assert body["allow_privileged"] is False


def test_an_unknown_app_is_404_with_suggestions(client, viewer):
    error = assert_error(client.get("/api/v1/catalog/wordpres", headers=viewer), 404, "unknown_app")
    assert error["details"]["suggestions"] == ["wordpress"]
    assert "did you mean wordpress" in error["message"]
    error = assert_error(
        client.get("/api/v1/catalog/nginx?source=nowhere", headers=viewer),
        404,
        "unknown_catalog_source",
    )
    assert error["details"]["field"] == "source"


def test_catalog_dirs_are_added_once_and_their_apps_win(settings, dirs_client, tokens, env_dirs):
    viewer = bearer(tokens["viewer"])
    keys = [i["key"] for i in dirs_client.get("/api/v1/catalog", headers=viewer).json()["items"]]
    assert keys == sorted([*BUILTIN_KEYS, "ghost", "metabase"])
    nginx = dirs_client.get("/api/v1/catalog/nginx", headers=viewer).json()
    assert nginx["source"] == "library" and nginx["default_version"] == "1.99"
    assert nginx["also_in"] == ["builtin", "library"]
    builtin = dirs_client.get("/api/v1/catalog/nginx?source=builtin", headers=viewer).json()
    assert builtin["default_version"] == "1.28"
    ghost = dirs_client.get("/api/v1/catalog/ghost", headers=viewer).json()
    assert ghost["notes"] == "# ghost notes\n" and ghost["catalog_version"]

    sources = dirs_client.get("/api/v1/catalog-sources", headers=viewer).json()["items"]
    assert [(s["name"], s["kind"], s["origin"]) for s in sources] == [
        ("builtin", "builtin", "builtin"),
        ("library", "dir", "env"),
        ("team-apps", "dir", "env"),
    ]
    library = sources[1]
    assert library["location"] == str(env_dirs[0]) and library["apps"] == ["ghost", "nginx"]
    assert library["skipped"] == [
        {"folder": "broken", "reason": 'line 1 of .env cannot be read: "W9_ID=\'oops"'}
    ]
    # What an admin does to a first-start source sticks, also after a restart.
    admin = bearer(tokens["admin"])
    assert dirs_client.delete("/api/v1/catalog-sources/team-apps", headers=admin).status_code == 204
    with client_with(settings, catalog_dirs=env_dirs) as restarted:
        names = [
            s["name"]
            for s in restarted.get("/api/v1/catalog-sources", headers=viewer).json()["items"]
        ]
    assert names == ["builtin", "library"]


def test_a_missing_catalog_dir_is_a_source_that_says_why(settings, tokens, tmp_path):
    viewer = bearer(tokens["viewer"])
    with client_with(settings, catalog_dirs=[tmp_path / "nowhere"]) as client:
        source = client.get("/api/v1/catalog-sources/nowhere", headers=viewer).json()
        keys = [i["key"] for i in client.get("/api/v1/catalog", headers=viewer).json()["items"]]
    assert source["snapshot"] is None and source["apps"] == []
    assert source["last_refresh_error"]["code"] == "not_a_directory"
    assert keys == BUILTIN_KEYS


def test_load_catalog_gives_the_install_code_what_it_needs(settings, env_dirs):
    changed = Settings(**{**settings.model_dump(), "catalog_dirs": env_dirs})
    with session_factory(changed)() as session:
        catalog = load_catalog(session, changed)
        session.commit()
        ghost = catalog.get("ghost")
        assert ghost.source == "library" and not ghost.allow_privileged
        assert ghost.path.is_relative_to(changed.data_dir / "catalogs" / "library")
        assert ghost.version_ok("community", "5.0")
        copy = ghost.copy_to(changed.data_dir / "apps" / "blog")
        assert (copy / ".env").read_text() == (env_dirs[0] / "ghost" / ".env").read_text()
        assert catalog.versions["builtin"] == "1.0.0"
        # Loading again adds nothing: each first-start source is added once.
        load_catalog(session, changed)
        session.commit()
        assert len(session.scalars(select(CatalogSource)).all()) == 3

"""/api/v1/catalog-sources: adding dir and archive sources, refreshing them, and every refusal."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slipway.apps import catalog_fetch
from slipway.core.config import get_settings
from tests.api.fixtures import cheap_hashes
from tests.api.helpers import assert_error, assert_invalid, audit_rows
from tests.apps.catalog_helpers import (
    StaticServer,
    add_member,
    serve,
    tar_directory,
    write_app,
    zip_directory,
)
from tests.conftest import bearer, free_port

__all__ = ["cheap_hashes"]
pytestmark = pytest.mark.usefixtures("cheap_hashes")
SOURCES = "/api/v1/catalog-sources"


@pytest.fixture(autouse=True)
def allow_local(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The archives are served from 127.0.0.1, which the outbound policy refuses by default."""
    monkeypatch.setenv("SLIPWAY_OUTBOUND_ALLOW", "127.0.0.1/32")
    get_settings.cache_clear()


@pytest.fixture
def admin(tokens: dict[str, str]) -> dict[str, str]:
    return bearer(tokens["admin"])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StaticServer]:
    with serve(tmp_path / "www") as static:
        yield static


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """A catalog in the docker-library layout: <repo>/apps/<key>/ and a declared version."""
    root = tmp_path / "work" / "docker-library-main"
    write_app(root / "apps", "ghost", version="5.0")
    write_app(root / "apps", "matomo", version="4.1")
    write_app(root / "apps", "odoo", version="16")
    (root / "catalog.json").write_text(json.dumps({"version": "1.0.0"}))
    return root


def publish(library: Path, server: StaticServer, name: str = "library.tar.gz") -> str:
    tar_directory(library.parent, server.root / name)
    return f"{server.url}/{name}"


def snapshots(settings: Any, name: str) -> list[str]:
    base = settings.data_dir / "catalogs" / name
    return (
        sorted(p.name for p in base.iterdir() if not p.name.startswith("."))
        if base.exists()
        else []
    )


def catalog_keys(client: Any, headers: dict[str, str]) -> list[str]:
    return [item["key"] for item in client.get("/api/v1/catalog", headers=headers).json()["items"]]


def test_an_archive_source_is_fetched_over_http_and_refreshed_with_what_changed(
    settings, client, admin, library, server
):
    url = publish(library, server)
    response = client.post(
        SOURCES, json={"name": "w9", "kind": "archive", "location": url}, headers=admin
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["added"] == ["ghost", "matomo", "odoo"] and created["is_changed"]
    assert created["version"] == "1.0.0" and created["source"]["snapshot"].startswith("1.0.0-")
    assert {"ghost", "matomo", "odoo"} <= set(catalog_keys(client, admin))
    assert client.get("/api/v1/catalog/ghost", headers=admin).json()["catalog_version"] == "1.0.0"

    unchanged = client.post(f"{SOURCES}/w9/refresh", headers=admin).json()
    assert not unchanged["is_changed"]
    assert (unchanged["added"], unchanged["removed"], unchanged["updated"]) == ([], [], [])

    # The library moves on: one app added, one removed, one updated to a new version.
    write_app(library / "apps", "wikijs", version="2.5")
    shutil.rmtree(library / "apps" / "odoo")
    write_app(library / "apps", "ghost", version="5.1")
    (library / "catalog.json").write_text(json.dumps({"version": "1.1.0"}))
    publish(library, server)
    refreshed = client.post(f"{SOURCES}/w9/refresh", headers=admin).json()

    assert refreshed["is_changed"] and refreshed["version_before"] == "1.0.0"
    assert refreshed["version"] == "1.1.0"
    assert refreshed["added"] == ["wikijs"] and refreshed["removed"] == ["odoo"]
    assert refreshed["updated"] == [
        {
            "key": "ghost",
            "default_version_before": "5.0",
            "default_version": "5.1",
            "versions_added": ["5.1"],
            "versions_removed": ["5.0"],
        }
    ]
    assert refreshed["source"]["last_changes"] == {
        "added": ["wikijs"],
        "removed": ["odoo"],
        "updated": ["ghost"],
    }
    keys = catalog_keys(client, admin)
    assert "wikijs" in keys and "odoo" not in keys
    assert client.get("/api/v1/catalog/ghost", headers=admin).json()["default_version"] == "5.1"
    # The snapshot in use and the one before it are kept, for installs still copying from it.
    assert [s.split("-")[0] for s in snapshots(settings, "w9")] == ["1.0.0", "1.1.0"]


def test_a_failed_refresh_keeps_the_catalog_and_says_why(
    settings, client, admin, library, tmp_path
):
    with serve(tmp_path / "www") as static:
        url = publish(library, static)
        assert (
            client.post(
                SOURCES, json={"name": "w9", "kind": "archive", "location": url}, headers=admin
            ).status_code
            == 201
        )
    before = snapshots(settings, "w9")

    # The server is gone.
    error = assert_error(
        client.post(f"{SOURCES}/w9/refresh", headers=admin), 502, "catalog_fetch_failed"
    )
    assert "cannot fetch" in error["message"] and error["details"]["field"] == "location"
    source = client.get(f"{SOURCES}/w9", headers=admin).json()
    assert source["last_refresh_error"]["code"] == "catalog_fetch_failed"
    assert source["apps"] == ["ghost", "matomo", "odoo"] and source["version"] == "1.0.0"
    assert {"ghost", "matomo", "odoo"} <= set(catalog_keys(client, admin))
    assert snapshots(settings, "w9") == before

    # A good refresh clears the error.
    with serve(tmp_path / "www") as static:
        client.patch(
            f"{SOURCES}/w9", json={"location": f"{static.url}/library.tar.gz"}, headers=admin
        )
        assert client.post(f"{SOURCES}/w9/refresh", headers=admin).status_code == 200
    assert client.get(f"{SOURCES}/w9", headers=admin).json()["last_refresh_error"] is None


def test_an_unreachable_or_missing_archive_is_refused_and_nothing_is_saved(
    settings, client, admin, server
):
    for url, status in (
        (f"http://127.0.0.1:{free_port()}/library.tar.gz", None),
        (f"{server.url}/missing.tar.gz", 404),
    ):
        body = {"name": "w9", "kind": "archive", "location": url}
        error = assert_error(
            client.post(SOURCES, json=body, headers=admin), 502, "catalog_fetch_failed"
        )
        assert error["details"].get("status") == status
        assert client.get(f"{SOURCES}/w9", headers=admin).status_code == 404
    assert not (settings.data_dir / "catalogs" / "w9").exists()


def test_an_archive_at_an_address_outside_the_allow_list_is_refused(
    settings, client, admin, library, server
):
    # An allow-list saved through the API wins over SLIPWAY_OUTBOUND_ALLOW, even an empty one.
    allow = {"entries": []}
    assert client.put("/api/v1/settings/outbound-allow", json=allow, headers=admin).is_success
    body = {"name": "w9", "kind": "archive", "location": publish(library, server)}
    error = assert_error(client.post(SOURCES, json=body, headers=admin), 422, "outbound_forbidden")
    assert error["details"]["field"] == "location"
    assert "127.0.0.1 is a loopback address" in error["message"]
    assert client.get(f"{SOURCES}/w9", headers=admin).status_code == 404
    assert not (settings.data_dir / "catalogs" / "w9").exists()


def test_credentials_in_a_url_are_never_shown(client, admin, library, server):
    url = publish(library, server).replace("http://", "http://robot:s3cret@")
    created = client.post(
        SOURCES, json={"name": "w9", "kind": "archive", "location": url}, headers=admin
    )
    assert created.status_code == 201
    assert "s3cret" not in created.text
    assert created.json()["source"]["location"].startswith("http://***@127.0.0.1")
    assert "s3cret" not in client.get(SOURCES, headers=admin).text


def _evil(info_name: str, **fields: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo(info_name)
    for name, value in fields.items():
        setattr(info, name, value)
    return info


@pytest.mark.parametrize(
    ("member", "data", "problem"),
    [
        (_evil("/etc/cron.d/evil"), b"* * * * * root sh\n", "absolute path"),
        (_evil("docker-library-main/../../escape.txt"), b"x", "'..'"),
        (
            _evil(
                "docker-library-main/apps/ghost/src/passwd",
                type=tarfile.SYMTYPE,
                linkname="/etc/passwd",
            ),
            b"",
            "link out of the tree",
        ),
        (
            _evil(
                "docker-library-main/apps/ghost/up", type=tarfile.SYMTYPE, linkname="../../../.."
            ),
            b"",
            "link out of the tree",
        ),
        (
            _evil(
                "docker-library-main/apps/ghost/hard", type=tarfile.LNKTYPE, linkname="../outside"
            ),
            b"",
            "hard link out",
        ),
        (
            _evil(
                "docker-library-main/apps/ghost/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3
            ),
            b"",
            "device",
        ),
        (
            _evil("docker-library-main/apps/ghost/pipe", type=tarfile.FIFOTYPE),
            b"",
            "device or FIFO",
        ),
    ],
    ids=["absolute", "dotdot", "symlink-absolute", "symlink-up", "hardlink", "device", "fifo"],
)
def test_an_unsafe_archive_member_is_refused_by_name(
    settings, client, admin, library, server, member, data, problem
):
    archive = server.root / "evil.tar.gz"
    tar_directory(library.parent, archive)
    add_member(archive, member, data)
    body = {"name": "evil", "kind": "archive", "location": f"{server.url}/evil.tar.gz"}
    error = assert_invalid(
        client.post(SOURCES, json=body, headers=admin), "location", "unsafe_archive"
    )
    assert error["details"]["member"] == member.name
    assert problem in error["message"] and member.name in error["message"]
    assert client.get(f"{SOURCES}/evil", headers=admin).status_code == 404
    assert not (settings.data_dir / "catalogs" / "evil").exists()
    assert not (settings.data_dir.parent / "escape.txt").exists()


def test_an_unsafe_refresh_keeps_the_source_as_it_was(settings, client, admin, library, server):
    url = publish(library, server)
    client.post(SOURCES, json={"name": "w9", "kind": "archive", "location": url}, headers=admin)
    add_member(server.root / "library.tar.gz", _evil("docker-library-main/apps/x/../../../../y"))
    error = assert_invalid(
        client.post(f"{SOURCES}/w9/refresh", headers=admin), "location", "unsafe_archive"
    )
    assert "'..'" in error["message"]
    source = client.get(f"{SOURCES}/w9", headers=admin).json()
    assert source["apps"] == ["ghost", "matomo", "odoo"]
    assert source["last_refresh_error"]["code"] == "unsafe_archive"


def test_an_archive_over_the_size_limit_is_refused(client, admin, library, server, monkeypatch):
    url = publish(library, server)
    monkeypatch.setattr(catalog_fetch, "MAX_DOWNLOAD_BYTES", 256)
    body = {"name": "w9", "kind": "archive", "location": url}
    error = assert_invalid(
        client.post(SOURCES, json=body, headers=admin), "location", "archive_too_large"
    )
    assert "larger than the limit" in error["message"]
    monkeypatch.setattr(catalog_fetch, "MAX_DOWNLOAD_BYTES", 1 << 20)
    monkeypatch.setattr(catalog_fetch, "MAX_CONTENT_BYTES", 1024)
    assert_invalid(client.post(SOURCES, json=body, headers=admin), "location", "archive_too_large")


def test_a_zip_file_on_disk_and_something_that_is_no_archive(client, admin, library, tmp_path):
    archive = zip_directory(library, tmp_path / "library.zip")
    body = {"name": "zipped", "kind": "archive", "location": str(archive)}
    created = client.post(SOURCES, json=body, headers=admin)
    assert created.status_code == 201 and created.json()["added"] == ["ghost", "matomo", "odoo"]
    (tmp_path / "notes.txt").write_text("not an archive")
    body = {"name": "text", "kind": "archive", "location": str(tmp_path / "notes.txt")}
    assert_invalid(client.post(SOURCES, json=body, headers=admin), "location", "bad_archive")
    body["location"] = str(tmp_path / "absent.tar.gz")
    assert_invalid(client.post(SOURCES, json=body, headers=admin), "location", "not_a_file")


def test_a_dir_source_is_a_snapshot_until_refreshed(settings, client, admin, library):
    apps = library / "apps"
    created = client.post(
        SOURCES, json={"name": "local", "kind": "dir", "location": str(apps)}, headers=admin
    )
    assert created.status_code == 201, created.text
    assert created.json()["source"]["origin"] == "api"
    write_app(apps, "nextcloud")
    assert "nextcloud" not in catalog_keys(client, admin)  # the snapshot does not move by itself
    refreshed = client.post(f"{SOURCES}/local/refresh", headers=admin).json()
    assert refreshed["added"] == ["nextcloud"] and "nextcloud" in catalog_keys(client, admin)


def test_a_link_out_of_a_dir_source_is_refused(client, admin, library):
    (library / "apps" / "ghost" / "src" / "shadow").symlink_to("/etc/shadow")
    body = {"name": "local", "kind": "dir", "location": str(library / "apps")}
    error = assert_invalid(
        client.post(SOURCES, json=body, headers=admin), "location", "unsafe_archive"
    )
    assert error["details"]["member"] == "ghost/src/shadow"


def test_broken_apps_of_a_source_are_listed_with_reasons(client, admin, library):
    write_app(library / "apps", "broken").joinpath("variables.json").write_text("[1, 2")
    body = {"name": "local", "kind": "dir", "location": str(library / "apps")}
    created = client.post(SOURCES, json=body, headers=admin).json()
    assert created["added"] == ["ghost", "matomo", "odoo"]
    assert created["source"]["skipped"][0]["folder"] == "broken"
    assert "variables.json is not valid JSON" in created["source"]["skipped"][0]["reason"]


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"name": "Bad Name", "kind": "dir", "location": "/tmp"}, 422, "invalid_input", "name"),
        ({"name": "x", "kind": "git", "location": "/tmp"}, 422, "invalid_input", "kind"),
        (
            {"name": "x", "kind": "dir", "location": "relative/apps"},
            422,
            "invalid_input",
            "location",
        ),
        (
            {"name": "x", "kind": "archive", "location": "ftp://host/a.tgz"},
            422,
            "invalid_input",
            "location",
        ),
        (
            {"name": "x", "kind": "dir", "location": "/tmp", "extra": 1},
            422,
            "invalid_input",
            "extra",
        ),
    ],
    ids=["name", "kind", "relative", "scheme", "unknown-field"],
)
def test_bad_source_requests_name_the_field(client, admin, body, status, code, field):
    assert_invalid(client.post(SOURCES, json=body, headers=admin), field, code)


def test_a_path_that_is_not_a_directory_and_an_empty_one(client, admin, tmp_path):
    (tmp_path / "file").write_text("x")
    body = {"name": "x", "kind": "dir", "location": str(tmp_path / "file")}
    error = assert_invalid(
        client.post(SOURCES, json=body, headers=admin), "location", "not_a_directory"
    )
    assert "is not a directory" in error["message"]
    (tmp_path / "empty").mkdir()
    body["location"] = str(tmp_path / "empty")
    assert_invalid(client.post(SOURCES, json=body, headers=admin), "location", "empty_catalog")
    assert [s["name"] for s in client.get(SOURCES, headers=admin).json()["items"]] == ["builtin"]


def test_a_duplicate_name_is_409(client, admin, library):
    body = {"name": "local", "kind": "dir", "location": str(library / "apps")}
    assert client.post(SOURCES, json=body, headers=admin).status_code == 201
    error = assert_error(
        client.post(SOURCES, json=body, headers=admin), 409, "catalog_source_exists"
    )
    assert error["details"]["field"] == "name"
    assert_error(
        client.post(SOURCES, json={**body, "name": "builtin"}, headers=admin),
        409,
        "catalog_source_exists",
    )


def test_update_allow_privileged_and_location(client, admin, library, tmp_path):
    body = {"name": "local", "kind": "dir", "location": str(library / "apps")}
    client.post(SOURCES, json=body, headers=admin)
    patched = client.patch(
        f"{SOURCES}/local", json={"allow_privileged": True}, headers=admin
    ).json()
    assert patched["allow_privileged"] is True
    assert client.get("/api/v1/catalog/ghost", headers=admin).json()["allow_privileged"] is True

    (tmp_path / "file").write_text("x")
    bad = client.patch(f"{SOURCES}/local", json={"location": str(tmp_path / "file")}, headers=admin)
    assert_invalid(bad, "location", "not_a_directory")
    assert client.get(f"{SOURCES}/local", headers=admin).json()["location"] == str(library / "apps")

    other = tmp_path / "other"
    write_app(other, "wekan")
    moved = client.patch(f"{SOURCES}/local", json={"location": str(other)}, headers=admin).json()
    assert moved["apps"] == ["wekan"] and moved["location"] == str(other)
    builtin = client.patch(f"{SOURCES}/builtin", json={"location": str(other)}, headers=admin)
    assert_invalid(builtin, "location")


def test_delete_removes_the_apps_and_the_files(settings, client, admin, library):
    body = {"name": "local", "kind": "dir", "location": str(library / "apps")}
    client.post(SOURCES, json=body, headers=admin)
    assert client.delete(f"{SOURCES}/local", headers=admin).status_code == 204
    assert "ghost" not in catalog_keys(client, admin)
    assert not (settings.data_dir / "catalogs" / "local").exists()
    assert_error(client.delete(f"{SOURCES}/local", headers=admin), 404, "unknown_catalog_source")
    assert_error(
        client.post(f"{SOURCES}/local/refresh", headers=admin), 404, "unknown_catalog_source"
    )


def test_the_built_in_source_refreshes_to_itself(client, admin):
    body = client.post(f"{SOURCES}/builtin/refresh", headers=admin).json()
    assert not body["is_changed"] and body["version"] == "1.0.0"
    assert body["source"]["kind"] == "builtin" and len(body["source"]["apps"]) == 6


@pytest.mark.parametrize("kind", ["dir", "zip", "tar"])
def test_a_chain_of_links_that_leaves_the_tree_is_refused(settings, client, admin, library, kind):
    ghost = library / "apps" / "ghost"
    (ghost / "here").symlink_to(".")
    # Each link looks harmless by its text; followed, "escape" lands above the app folder twice.
    (ghost / "escape").symlink_to("here/here/../../..")
    location = library / "apps"
    if kind == "zip":
        location = library.parent / "chain.zip"
        with zipfile.ZipFile(location, "w") as zf:
            for path in sorted((library / "apps").rglob("*")):
                name = path.relative_to(library / "apps").as_posix()
                if path.is_symlink():
                    info = zipfile.ZipInfo(name)
                    info.external_attr = (stat.S_IFLNK | 0o777) << 16
                    zf.writestr(info, os.readlink(path))
                elif path.is_file():
                    zf.write(path, name)
    elif kind == "tar":
        location = tar_directory(library / "apps", library.parent / "chain.tar.gz")
    body = {
        "name": "chain",
        "kind": "dir" if kind == "dir" else "archive",
        "location": str(location),
    }
    response = client.post(SOURCES, json=body, headers=admin)
    error = assert_invalid(response, "location", "unsafe_archive")
    assert error["details"]["member"] == "ghost/escape"
    assert "link out of the tree" in error["message"]
    assert client.get(f"{SOURCES}/chain", headers=admin).status_code == 404
    assert not (settings.data_dir / "catalogs" / "chain").exists()
    # The refusal is audited although the request's session had begun writing (on SQLite that
    # session must let go of the write lock before the audit row is stored).
    refused = [row for row in audit_rows(settings) if row.action == f"POST {SOURCES}"]
    assert [row.status_code for row in refused] == [422]

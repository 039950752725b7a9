"""Packages through the API: upload, refusals (each names what is wrong), download, delete."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from slipway.core.config import get_settings
from tests.conftest import bearer
from tests.releases.archives import (
    file,
    make_app_package,
    make_db_package,
    package_filename,
    symlink,
    write_archive,
)
from tests.releases.conftest import SQLITE_ONLY


@pytest.fixture
def project(client, tokens) -> dict[str, str]:
    headers = bearer(tokens["admin"])
    answer = client.post(
        "/api/v1/projects", headers=headers, json={"name": "shop", "kind": "wecube"}
    )
    assert answer.status_code == 201, answer.text
    return headers


def upload(client, headers, path: Path, name: str | None = None):
    with path.open("rb") as handle:
        return client.post(
            "/api/v1/projects/shop/packages",
            headers=headers,
            files={"file": (name or path.name, handle, "application/gzip")},
        )


def artifacts(settings) -> list[str]:
    root = settings.artifacts_path
    return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_upload_inspects_and_lists_the_package(client, project, tmp_path, settings) -> None:
    path = make_app_package(tmp_path, "shop", "1.2.3", layout="versioned")

    answer = upload(client, project, path)

    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["version"], body["kind"], body["layout"]) == ("1.2.3", "app", "versioned")
    assert body["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert body["size"] == path.stat().st_size
    assert body["config_files"] == ["conf/app.properties"]
    listed = client.get("/api/v1/projects/shop/packages", headers=project).json()["items"]
    assert [p["filename"] for p in listed] == [path.name]
    download = client.get("/api/v1/projects/shop/packages/1.2.3/download", headers=project)
    assert download.content == path.read_bytes()
    assert artifacts(settings) == [path.name]


@SQLITE_ONLY
def test_db_packages_are_told_apart_by_name(client, project, tmp_path) -> None:
    path = make_db_package(tmp_path, "shop", "1.0.1")
    body = upload(client, project, path).json()
    assert body["kind"] == "db"
    assert [v["version"] for v in body["db_versions"]] == ["1.0"]


@pytest.mark.parametrize(
    "name",
    ["shop_1.0_1.tar.gz", "shop-1.0.0-1.tar.gz", "shop_1.0.0.tar.gz", "shop_1.0.0_1.zip", "x.tgz"],
)
@SQLITE_ONLY
def test_bad_package_names_are_refused(client, project, tmp_path, settings, name) -> None:
    path = make_app_package(tmp_path, "shop", "1.0.0")

    answer = upload(client, project, path, name=name)

    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "bad_package_name"
    assert error["details"]["field"] == "file"
    assert "wecube-core_1.0.0_20191101001.tar.gz" in error["message"]
    assert artifacts(settings) == []


@pytest.mark.parametrize(
    ("member", "word"),
    [
        (file("/etc/passwd", "x"), "/etc/passwd"),
        (file("../escape", "x"), "../escape"),
        (symlink("conf/evil", "/etc"), "conf/evil"),
    ],
)
@SQLITE_ONLY
def test_unsafe_archives_are_refused_naming_the_member(
    client, project, tmp_path, settings, member, word
) -> None:
    path = write_archive(
        tmp_path / package_filename("shop", "1.0.0"), [file("bin/start.sh", "x"), member]
    )

    answer = upload(client, project, path)

    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "unsafe_archive"
    assert word in error["message"]
    assert client.get("/api/v1/projects/shop/packages", headers=project).json()["items"] == []
    assert artifacts(settings) == []


@SQLITE_ONLY
def test_a_second_upload_of_a_version_is_refused(client, project, tmp_path) -> None:
    path = make_app_package(tmp_path, "shop", "1.0.0")
    assert upload(client, project, path).status_code == 201
    answer = upload(client, project, path)
    assert answer.status_code == 409
    assert "delete it first" in answer.json()["error"]["message"]


@SQLITE_ONLY
def test_an_upload_over_the_size_limit_is_refused(
    client, tokens, tmp_path, settings, monkeypatch
) -> None:
    headers = bearer(tokens["admin"])
    client.post("/api/v1/projects", headers=headers, json={"name": "shop", "kind": "wecube"})
    monkeypatch.setattr(settings, "release_max_package_bytes", 1000)
    path = make_app_package(tmp_path, "shop", "1.0.0", {"lib/big.bin": os.urandom(50_000)})

    answer = upload(client, headers, path)

    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["code"] == "too_large"
    assert artifacts(settings) == []


@SQLITE_ONLY
def test_an_upload_without_a_file_is_refused(client, project) -> None:
    answer = client.post(
        "/api/v1/projects/shop/packages",
        headers=project,
        data={"other": "x"},
        files={"x": ("a", b"")},
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["details"]["field"] == "file"


@SQLITE_ONLY
def test_raw_body_upload_with_a_filename(client, project, tmp_path) -> None:
    path = make_app_package(tmp_path, "shop", "2.0.0")
    answer = client.post(
        f"/api/v1/projects/shop/packages?filename={path.name}",
        headers={**project, "Content-Type": "application/octet-stream"},
        content=path.read_bytes(),
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["version"] == "2.0.0"


@pytest.fixture
def allow_local(env, monkeypatch) -> None:
    """The outbound policy refuses 127.0.0.1 by default; request this before `settings`."""
    monkeypatch.setenv("SLIPWAY_OUTBOUND_ALLOW", "127.0.0.1/32")
    get_settings.cache_clear()


@pytest.fixture
def file_server(tmp_path) -> Iterator[str]:
    directory = tmp_path / "served"
    directory.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(directory), **kwargs)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@SQLITE_ONLY
def test_register_by_url_checks_the_sha256(
    allow_local, client, project, tmp_path, file_server
) -> None:
    path = make_app_package(tmp_path / "served", "shop", "3.0.0")
    url = f"{file_server}/{path.name}"

    wrong = client.post(
        "/api/v1/projects/shop/packages/from-url",
        headers=project,
        json={"url": url, "sha256": "0" * 64},
    )
    assert wrong.status_code == 422
    assert wrong.json()["error"]["code"] == "checksum_mismatch"

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    answer = client.post(
        "/api/v1/projects/shop/packages/from-url",
        headers=project,
        json={"url": url, "sha256": digest},
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["source_url"] == url

    missing = client.post(
        "/api/v1/projects/shop/packages/from-url",
        headers=project,
        json={"url": f"{file_server}/shop_9.9.9_1.tar.gz"},
    )
    assert missing.status_code == 502
    assert missing.json()["error"]["code"] == "fetch_failed"


@SQLITE_ONLY
def test_register_by_url_refuses_an_internal_address(
    client, project, tmp_path, file_server
) -> None:
    path = make_app_package(tmp_path / "served", "shop", "3.0.0")
    answer = client.post(
        "/api/v1/projects/shop/packages/from-url",
        headers=project,
        json={"url": f"{file_server}/{path.name}"},
    )
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "outbound_forbidden" and error["details"]["field"] == "url"
    assert client.get("/api/v1/projects/shop/packages", headers=project).json()["items"] == []


def test_delete_removes_the_file(client, project, tmp_path, settings) -> None:
    path = make_app_package(tmp_path, "shop", "1.0.0")
    upload(client, project, path)
    answer = client.delete("/api/v1/projects/shop/packages/1.0.0", headers=project)
    assert answer.status_code == 204
    assert artifacts(settings) == []
    assert client.get("/api/v1/projects/shop/packages/1.0.0", headers=project).status_code == 404

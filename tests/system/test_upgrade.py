"""GET /api/v1/upgrade: core and catalog upgrades against a release manifest (version.json)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from slipway import __version__
from slipway.api.app import create_app
from slipway.core.config import Settings
from slipway.system import upgrade
from tests.api.fixtures import cheap_hashes
from tests.api.helpers import assert_error
from tests.apps.catalog_helpers import serve
from tests.conftest import bearer, free_port

__all__ = ["cheap_hashes"]
pytestmark = pytest.mark.usefixtures("cheap_hashes")

UBUNTU = 'NAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\nID_LIKE=debian\n'
RHEL = 'NAME="Red Hat Enterprise Linux"\nVERSION_ID="9.2"\nID="rhel"\nID_LIKE="fedora"\n'
MANIFEST = {
    "SERVICES": {"API": "0.9.0", "REDIS": "7.4"},
    "LIBRARY": {"VERSION": "1.1.0"},
    "OS_SUPPORT": {"CentOS": ["7.9"], "Ubuntu": ["20.04", "22.04"], "RedHat": ["9.2"]},
    "VERSION": "0.9.0",
}


@pytest.fixture
def os_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "os-release"
    path.write_text(UBUNTU)
    monkeypatch.setattr(upgrade, "OS_RELEASE_PATH", path)
    return path


@pytest.fixture
def call(settings: Settings, tokens: dict[str, str], os_release: Path) -> Iterator[Any]:
    """GET /api/v1/upgrade as a viewer, with SLIPWAY_RELEASE_MANIFEST set to `manifest`."""
    with ExitStack() as stack:

        def get(manifest: str = "") -> Any:
            changed = Settings(**{**settings.model_dump(), "release_manifest": manifest})
            client = stack.enter_context(TestClient(create_app(changed, run_maintenance=False)))
            return client.get("/api/v1/upgrade", headers=bearer(tokens["viewer"]))

        yield get


def write_manifest(tmp_path: Path, **changes: Any) -> Path:
    path = tmp_path / "version.json"
    path.write_text(json.dumps({**MANIFEST, **changes}))
    return path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Any]:
    with serve(tmp_path / "www") as static:
        yield static


def test_without_a_manifest_it_says_so(call):
    response = call("")
    assert response.status_code == 200
    body = response.json()
    assert body["is_configured"] is False and body["manifest"] is None
    assert "SLIPWAY_RELEASE_MANIFEST" in body["message"]
    assert body["core"]["current"] == __version__ and body["core"]["available"] is None
    assert not body["core"]["is_available"] and not body["core"]["may_upgrade"]
    assert body["catalog"]["sources"] == [
        {"name": "builtin", "current": "1.0.0", "is_available": None}
    ]


def test_a_newer_release_on_a_supported_system(call, tmp_path):
    body = call(str(write_manifest(tmp_path))).json()
    assert body["is_configured"] and body["manifest"] == str(tmp_path / "version.json")
    assert body["core"] == {
        "current": __version__,
        "available": "0.9.0",
        "is_available": True,
        "may_upgrade": True,
        "os": {"name": "Ubuntu", "version": "22.04", "system": "Ubuntu", "is_supported": True},
    }
    assert body["catalog"] == {
        "available": "1.1.0",
        "is_available": True,
        "sources": [{"name": "builtin", "current": "1.0.0", "is_available": True}],
    }
    assert body["services"] == MANIFEST["SERVICES"]
    assert "0.9.0 is available and this system may take it" in body["message"]
    assert "catalog 1.1.0 is available" in body["message"]


def test_an_unsupported_system_may_not_take_the_core_upgrade(call, tmp_path, os_release):
    os_release.write_text(UBUNTU.replace("22.04", "18.04"))
    body = call(str(write_manifest(tmp_path))).json()
    assert body["core"]["is_available"] and not body["core"]["may_upgrade"]
    assert body["core"]["os"]["is_supported"] is False
    assert "Ubuntu 18.04 is not among the systems it supports" in body["message"]
    os_release.write_text('NAME="Arch Linux"\nID=arch\n')
    body = call(str(write_manifest(tmp_path))).json()
    assert body["core"]["os"] == {
        "name": "Arch Linux",
        "version": "",
        "system": None,
        "is_supported": False,
    }


def test_red_hat_matches_its_short_name(call, tmp_path, os_release):
    os_release.write_text(RHEL)
    body = call(str(write_manifest(tmp_path))).json()
    assert body["core"]["os"]["system"] == "RedHat" and body["core"]["may_upgrade"]


def test_nothing_newer(call, tmp_path):
    path = write_manifest(tmp_path, VERSION=__version__, LIBRARY={"VERSION": "1.0.0"})
    body = call(str(path)).json()
    assert not body["core"]["is_available"] and not body["core"]["may_upgrade"]
    assert not body["catalog"]["is_available"]
    assert f"slipway {__version__} is the newest release" in body["message"]
    older = write_manifest(tmp_path, VERSION="0.0.9", LIBRARY={"VERSION": "0.9.0-rc.1"})
    body = call(str(older)).json()
    assert not body["core"]["is_available"] and not body["catalog"]["is_available"]


def test_a_manifest_over_http(call, server):
    (server.root / "version.json").write_text(json.dumps(MANIFEST))
    body = call(f"{server.url}/version.json").json()
    assert body["core"]["available"] == "0.9.0" and body["core"]["may_upgrade"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("not json", "it is not JSON"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({"LIBRARY": {}}), "VERSION is None"),
        (json.dumps({"VERSION": "latest"}), "VERSION is 'latest'"),
        (json.dumps({"VERSION": "1.0.0", "OS_SUPPORT": {"Ubuntu": "22.04"}}), "OS_SUPPORT"),
        (json.dumps({"VERSION": "1.0.0", "LIBRARY": "1.1"}), "LIBRARY"),
    ],
    ids=["not-json", "list", "no-version", "bad-version", "os-support", "library"],
)
def test_an_invalid_manifest_is_502_saying_what_is_wrong(call, tmp_path, content, problem):
    path = tmp_path / "version.json"
    path.write_text(content)
    error = assert_error(call(str(path)), 502, "release_manifest_invalid")
    assert problem in error["message"] and str(path) in error["message"]


def test_an_unreachable_manifest_is_502(call, tmp_path, server):
    error = assert_error(call(str(tmp_path / "absent.json")), 502, "release_manifest_unreachable")
    assert "cannot read the release manifest" in error["message"]
    error = assert_error(
        call(f"http://127.0.0.1:{free_port()}/version.json"), 502, "release_manifest_unreachable"
    )
    assert "cannot fetch the release manifest" in error["message"]
    error = assert_error(call(f"{server.url}/missing.json"), 502, "release_manifest_unreachable")
    assert error["details"]["status"] == 404


@pytest.mark.parametrize(
    ("available", "current", "newer"),
    [
        ("0.2.0", "0.1.0", True),
        ("0.10.0", "0.9.9", True),
        ("1.0", "0.9.9", True),
        ("1.0.0", "1.0.0-rc.2", True),
        ("1.0.0-rc.10", "1.0.0-rc.2", True),
        ("1.0.0", "1.0.0", False),
        ("v1.2.3", "1.2.4", False),
        ("latest", "1.0.0", None),
    ],
)
def test_versions_compare_as_semantic_versions(available, current, newer):
    assert upgrade.is_newer(available, current) is newer

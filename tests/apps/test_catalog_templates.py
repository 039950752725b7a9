"""App templates in the docker-library layout: reading them, skipping broken ones, copying."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from slipway.apps import catalog_template
from slipway.apps.catalog import Catalog, Edition
from slipway.apps.catalog_env import EnvFileError, is_reference, parse_env, render_env
from slipway.apps.catalog_snapshots import LIBRARY_DIR
from slipway.apps.catalog_template import parse_app, scan
from slipway.core.errors import ConflictError, NotFoundError
from tests.apps.catalog_helpers import write_app

# --- .env ------------------------------------------------------------------------------------


def test_env_is_read_with_dotenv_semantics_keeping_references_raw():
    text = (
        "# comment\n"
        "W9_REPO=wordpress\n"
        "W9_DIST='community'\n"
        'W9_URL=""\n'
        "export W9_ID=wp\n"
        "W9_PLAIN=value # trailing comment\n"
        "W9_HASH='a#b'\n"
        "W9_LITERAL='$NOT_EXPANDED'\n"
        'W9_MULTI="line one\\nline two"\n'
        "W9_REF=$W9_POWER_PASSWORD\n"
        "W9_BRACED=http://${W9_URL}/x\n"
        "\n"
        "W9_REPO=nginx\n"
    )
    values = parse_env(text)
    assert values == {
        "W9_DIST": "community",
        "W9_URL": "",
        "W9_ID": "wp",
        "W9_PLAIN": "value",
        "W9_HASH": "a#b",
        "W9_LITERAL": "$NOT_EXPANDED",
        "W9_MULTI": "line one\nline two",
        "W9_REF": "$W9_POWER_PASSWORD",
        "W9_BRACED": "http://${W9_URL}/x",
        "W9_REPO": "nginx",  # a repeated name keeps its last value, at its last place
    }
    assert is_reference("$W9_POWER_PASSWORD") and is_reference("${W9_X}")
    assert not is_reference("http://$W9_URL") and not is_reference("plain")


@pytest.mark.parametrize("line", ["W9_BROKEN='no end\n", "this is not an assignment\n"])
def test_an_unreadable_env_line_is_an_error_naming_its_line(line):
    with pytest.raises(EnvFileError) as caught:
        parse_env(f"W9_OK=1\n{line}W9_AFTER=2\n")
    assert caught.value.line == 2
    assert "line 2 of .env" in str(caught.value)


def test_render_env_rewrites_in_place_and_reads_back_the_same_values():
    text = "# keep me\nW9_HTTP_PORT_SET='9001'\nW9_ID=app # the id\nOTHER=$W9_ID\n"
    values = {
        "W9_HTTP_PORT_SET": "9100",
        "W9_ID": "my app",
        "W9_POWER_PASSWORD": "p'a$s\"s",
        "W9_NEW": "x$y",
    }
    rendered = render_env(text, values)
    assert rendered.startswith("# keep me\nW9_HTTP_PORT_SET=9100\nW9_ID='my app'\nOTHER=$W9_ID\n")
    read = parse_env(rendered)
    assert read["W9_HTTP_PORT_SET"] == "9100" and read["W9_ID"] == "my app"
    assert read["W9_NEW"] == "x$y"  # single-quoted: compose takes it literally
    # Double quotes are needed for a value with a single quote; `$$` is compose's literal `$`.
    assert read["W9_POWER_PASSWORD"] == "p'a$$s\"s"
    assert read["OTHER"] == "$W9_ID"


# --- one template ----------------------------------------------------------------------------


def test_a_websoft9_template_is_read_whole(tmp_path):
    folder = write_app(tmp_path, "wordpress", version="6.2", notes="# notes\n")
    app = parse_app(folder)

    assert (app.key, app.name, app.trademark) == ("wordpress", "wordpress", "Wordpress")
    assert app.path == folder and app.compose_file == folder / "docker-compose.yml"
    assert app.editions == [Edition(dist="community", versions=["6.2", "latest"])]
    assert (app.default_edition, app.default_version) == ("community", "6.2")
    assert (app.requirements.cpu, app.requirements.memory_gb, app.requirements.disk_gb) == (
        1.0,
        2.0,
        1.0,
    )
    assert list(app.env_defaults)[:4] == ["W9_REPO", "W9_DIST", "W9_VERSION", "W9_POWER_PASSWORD"]
    assert app.env_defaults["W9_POWER_PASSWORD"] == "Sample-wordpress-Pass!"
    assert app.env_defaults["APP_DB_HOST"] == "$W9_ID-db"
    assert app.env_defaults["APP_GREETING"] == "hello\nworld"
    # W9_LOGIN_PASSWORD only names W9_POWER_PASSWORD: it follows it, it is not generated apart.
    assert app.password_settings == ["W9_POWER_PASSWORD"]
    assert app.required_settings == ["W9_DOMAIN_SET"]
    assert app.http_port_setting == "W9_HTTP_PORT_SET"
    assert app.network == "websoft9"
    assert app.readme == "# readme\n" and app.notes == "# notes\n" and app.changelog is None
    settings = {s.name: s for s in app.settings}
    assert settings["W9_HTTP_PORT_SET"].is_settable and not settings["W9_HTTP_PORT_SET"].is_required
    assert settings["W9_DOMAIN_SET"].is_required
    assert settings["W9_LOGIN_PASSWORD"].is_reference and settings["W9_LOGIN_PASSWORD"].is_password
    assert "APP_DB_HOST" not in settings  # only the W9_* variables are settings


def test_version_ok_and_the_w9_version_joins_its_edition(tmp_path):
    folder = write_app(
        tmp_path,
        "shop",
        version="2.1",
        dist="enterprise",
        editions=[
            {"dist": "community", "version": ["1.0", "1.1"]},
            {"dist": "enterprise", "version": "2.0"},  # a plain string is one version
        ],
    )
    app = parse_app(folder)
    assert app.default_edition == "enterprise" and app.default_version == "2.1"
    assert app.edition("enterprise") == Edition("enterprise", ["2.1", "2.0"])
    assert app.version_ok("community", "1.1") and app.version_ok("enterprise", "2.1")
    assert not app.version_ok("community", "2.0") and not app.version_ok("gold", "1.0")


def test_an_older_template_without_editions_has_one_from_w9_dist(tmp_path):
    folder = write_app(
        tmp_path,
        "legacy",
        version="5.0",
        variables={
            "name": "legacy",
            "trademark": "Legacy",
            "version": "4.9",
            "requirements": {"cpu": "2", "memory": "4", "disk": "10", "url": "https://x"},
        },
    )
    app = parse_app(folder)
    assert app.editions == [Edition("community", ["5.0", "4.9"])]
    assert app.default_version == "5.0" and app.requirements.url == "https://x"


def test_an_empty_top_level_version_falls_back_to_w9_version(tmp_path):
    folder = write_app(tmp_path, "bare", version="1.25", variables={"name": "bare", "version": ""})
    app = parse_app(folder)
    assert app.editions == [Edition("community", ["1.25"])] and app.trademark == "bare"
    assert app.requirements.memory_gb == 0


def test_copy_to_copies_everything_at_once_and_leaves_nothing_on_failure(tmp_path, monkeypatch):
    app = parse_app(write_app(tmp_path / "src", "web"))
    dest = tmp_path / "apps" / "web"
    assert app.copy_to(dest) == dest
    copied = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*"))
    assert copied == [
        ".env",
        "README.md",
        "docker-compose.yml",
        "src",
        "src/site.conf",
        "variables.json",
    ]
    with pytest.raises(ConflictError):
        app.copy_to(dest)

    def broken_copy(src, dst, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", broken_copy)
    with pytest.raises(OSError):
        app.copy_to(tmp_path / "apps" / "other")
    assert sorted(p.name for p in (tmp_path / "apps").iterdir()) == ["web"]


# --- a directory of templates ----------------------------------------------------------------


def _broken(root: Path) -> dict[str, str]:
    """One broken app folder per way a template can be broken; key -> part of the reason."""
    write_app(root, "no-compose").joinpath("docker-compose.yml").unlink()
    write_app(root, "no-env").joinpath(".env").unlink()
    write_app(root, "bad-json").joinpath("variables.json").write_text("{not json")
    write_app(root, "bad-env").joinpath(".env").write_text("W9_ID='unterminated\n")
    write_app(root, "bad-yaml").joinpath("docker-compose.yml").write_text("services: [\n")
    write_app(root, "no-services").joinpath("docker-compose.yml").write_text("volumes: {}\n")
    write_app(root, "Bad_Key")
    write_app(root, "no-version", variables={"name": "x", "version": ""}).joinpath(
        ".env"
    ).write_text("W9_ID=x\n")
    write_app(root, "bad-req", requirements={"cpu": "1", "memory": "lots"})
    write_app(root, "bad-edition", editions=[{"version": ["1"]}])
    write_app(
        root, "twice", editions=[{"dist": "a", "version": "1"}, {"dist": "a", "version": "2"}]
    )
    return {
        "no-compose": "no docker-compose.yml",
        "no-env": "no .env",
        "bad-json": "variables.json is not valid JSON",
        "bad-env": "line 1 of .env",
        "bad-yaml": "not valid YAML",
        "no-services": "has no services",
        "Bad_Key": "not a valid app key",
        "no-version": "has no version",
        "bad-req": 'requirements "memory"',
        "bad-edition": '"dist"',
        "twice": "listed twice",
    }


def test_broken_folders_are_skipped_with_their_reason_and_the_rest_loads(tmp_path):
    expected = _broken(tmp_path)
    write_app(tmp_path, "good")
    (tmp_path / "docs").mkdir()  # not an app folder at all: ignored, not skipped
    (tmp_path / ".git").mkdir()
    result = scan(tmp_path)
    assert list(result.apps) == ["good"]
    assert set(result.skipped) == set(expected)
    for folder, reason in expected.items():
        assert reason in result.skipped[folder], (folder, result.skipped[folder])


def test_the_docker_library_layout_is_found_inside_an_archive_wrapper(tmp_path):
    root = tmp_path / "docker-library-main"
    write_app(root / "apps", "nginx")
    write_app(root / "apps", "redis")
    (root / "docs").mkdir()
    # The library's own version.json is a list of apps, not a catalog version.
    (root / "version.json").write_text(json.dumps([{"name": "nginx", "libraryVersion": "1"}]))
    result = scan(tmp_path)
    assert result.root == root / "apps" and sorted(result.apps) == ["nginx", "redis"]
    assert result.declared_version is None and result.version == result.content_hash[:12]


@pytest.mark.parametrize(
    ("name", "document"),
    [
        ("catalog.json", {"version": "1.2.0"}),
        ("version.json", {"VERSION": "1.2.0"}),
        ("version.json", {"LIBRARY": {"VERSION": "1.2.0"}}),
    ],
)
def test_the_catalog_version_is_declared_at_the_root_or_a_content_hash(tmp_path, name, document):
    write_app(tmp_path / "src", "nginx")
    first = scan(tmp_path / "src")
    (tmp_path / "src" / "nginx" / "README.md").write_text("changed\n")
    second = scan(tmp_path / "src")
    assert first.declared_version is None and first.content_hash != second.content_hash
    (tmp_path / "src" / name).write_text(json.dumps(document))
    assert scan(tmp_path / "src").version == "1.2.0"


def test_the_built_in_catalog_is_complete_and_valid():
    result = scan(LIBRARY_DIR)
    assert result.skipped == {}
    assert {"nginx", "wordpress", "redis", "postgres", "gitea", "uptime-kuma"} <= set(result.apps)
    assert result.declared_version == "1.0.0"
    images = {
        "wordpress": "wordpress",
        "gitea": "gitea/gitea",
        "uptime-kuma": "louislam/uptime-kuma",
    }
    for key, app in result.apps.items():
        assert app.env_defaults["W9_ID"] == key
        assert app.network == "slipway", key
        assert app.default_version in app.edition(app.default_edition).versions
        assert app.readme, key
        assert not app.required_settings, key  # installable with no settings at all
        for name in app.password_settings:
            assert app.env_defaults[name] == "", (key, name)  # generated at install, never shipped
        if key in images:
            assert app.env_defaults["W9_REPO"] == images[key]
    wordpress = result.apps["wordpress"]
    assert "mysql:$W9_DB_VERSION" in wordpress.compose_file.read_text()
    assert (result.apps["nginx"].path / "src" / "default.conf").is_file()


def test_a_scan_is_cached_per_directory():
    assert catalog_template.scan_cached(str(LIBRARY_DIR)) is catalog_template.scan_cached(
        str(LIBRARY_DIR)
    )


# --- lookups ---------------------------------------------------------------------------------


def _catalog(tmp_path: Path) -> Catalog:
    for key in ("wordpress", "woocommerce", "nginx", "nginx-proxy-manager", "redis"):
        write_app(tmp_path / "one", key)
    write_app(tmp_path / "two", "redis", version="7.4")
    one = {k: a for k, a in scan(tmp_path / "one").apps.items()}
    two = {k: a for k, a in scan(tmp_path / "two").apps.items()}
    return Catalog(by_source={"one": one, "two": two}, versions={"one": "1", "two": "2"})


def test_get_names_close_matches_for_an_unknown_key(tmp_path):
    catalog = _catalog(tmp_path)
    with pytest.raises(NotFoundError) as caught:
        catalog.get("wordpres")
    error = caught.value
    assert error.code == "unknown_app"
    assert error.details["suggestions"][0] == "wordpress"
    assert "did you mean wordpress" in error.message
    with pytest.raises(NotFoundError) as caught:
        catalog.get("zzzzzz")
    assert caught.value.details["suggestions"] == []
    with pytest.raises(NotFoundError) as caught:
        catalog.get("redis", source="three")
    assert caught.value.code == "unknown_catalog_source"


def test_a_later_source_wins_a_key_and_each_can_be_asked_for(tmp_path):
    catalog = _catalog(tmp_path)
    assert catalog.get("redis").default_version == "7.4"
    assert catalog.get("redis", source="one").default_version == "1.0"
    assert catalog.also_in("redis") == ["one", "two"]
    assert len(catalog) == 5 and catalog.catalog_version("two") == "2"


def test_search_matches_every_word_best_first(tmp_path):
    catalog = _catalog(tmp_path)
    assert [a.key for a in catalog.search("nginx")] == ["nginx", "nginx-proxy-manager"]
    assert [a.key for a in catalog.search("WOO")] == ["woocommerce"]
    assert [a.key for a in catalog.search("proxy nginx")] == ["nginx-proxy-manager"]
    assert [a.key for a in catalog.search("")] == sorted(a.key for a in catalog)
    assert catalog.search("nothing-like-it") == []

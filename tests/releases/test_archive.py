"""Package names and streaming archive inspection: layouts, scripts, and every refusal."""

from __future__ import annotations

import gzip
import json
import tarfile
import time
from pathlib import Path

import pytest

from slipway.core.errors import InputError
from slipway.releases.archive import inspect_archive, read_members
from slipway.releases.archive_tree import ArchiveLimits
from slipway.releases.package_names import EXAMPLE_NAME, parse_package_name, show
from tests.releases.archives import (
    Member,
    device,
    directory,
    fifo,
    file,
    hardlink,
    make_app_package,
    make_db_package,
    make_gzip_bomb,
    symlink,
    tar_bytes,
    write_archive,
)

# --- package names -----------------------------------------------------------------------------


def test_parses_the_spec_example() -> None:
    parsed = parse_package_name("wecube-core_1.0.0_20191101001.tar.gz")
    assert (parsed.name, parsed.version, parsed.build) == ("wecube-core", "1.0.0", "20191101001")
    assert not parsed.is_db
    assert parsed.version_key == (1, 0, 0)
    assert parsed.filename == "wecube-core_1.0.0_20191101001.tar.gz"


def test_parses_db_packages_and_tgz() -> None:
    parsed = parse_package_name("wecube-core-db_1.10.2_2019.tgz", expect_db=True)
    assert (parsed.name, parsed.version, parsed.is_db) == ("wecube-core", "1.10.2", True)
    assert parsed.version_key == (1, 10, 2)
    assert parse_package_name("db_1.0.0_1.tar.gz").is_db is False  # an app named "db"


@pytest.mark.parametrize(
    ("filename", "reason"),
    [
        ("wecube-core_1.0_20191101001.tar.gz", "version"),
        ("wecube-core_1.0.0.1_20191101001.tar.gz", "version"),
        ("wecube-core_v1.0.0_20191101001.tar.gz", "version"),
        ("wecube-core_1.0.0.tar.gz", "no_build"),
        ("wecube-core_1.0.0_.tar.gz", "build"),
        ("wecube-core_1.0.0_2019.zip", "extension"),
        ("wecube-core_1.0.0_2019.tar", "extension"),
        ("wecube_core_1.0.0_2019.tar.gz", "separators"),
        ("-core_1.0.0_2019.tar.gz", "name"),
        ("../wecube-core_1.0.0_2019.tar.gz", "path"),
        ("pkgs/wecube-core_1.0.0_2019.tar.gz", "path"),
        ("..", "path"),
        ("", "path"),
        ("wecube core_1.0.0_2019.tar.gz", "name"),
        ("a" * 250 + "_1.0.0_1.tar.gz", "too_long"),
    ],
)
def test_refuses_names_off_the_rule(filename: str, reason: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_package_name(filename)
    error = caught.value
    assert error.code == "bad_package_name"
    assert error.details["field"] == "file"
    assert error.details["reason"] == reason
    assert EXAMPLE_NAME in error.message and "<X.Y.Z>" in error.message


def test_expect_db_refuses_the_other_kind() -> None:
    with pytest.raises(InputError) as caught:
        parse_package_name("wecube-core_1.0.0_1.tar.gz", expect_db=True)
    assert caught.value.details["reason"] == "expected_db"
    with pytest.raises(InputError) as caught:
        parse_package_name("wecube-core-db_1.0.0_1.tar.gz", expect_db=False)
    assert caught.value.details["reason"] == "expected_app"


# --- layouts, scripts, config files --------------------------------------------------------------


def test_plain_layout(tmp_path: Path) -> None:
    scripts = {
        "bin/10_deploy.sh": "#!/bin/sh\n",
        "bin/2_deploy.sh": "#!/bin/sh\n",
        "1_deploy.sh": "#!/bin/sh\n",
        "bin/start.sh": "#!/bin/sh\n",
        "stop.sh": "#!/bin/sh\n",
    }
    files = {"conf/app.properties": "a=[@x]\n", "conf/sub/log.xml": "<x/>", "lib/a.jar": b"\0"}
    report = inspect_archive(make_app_package(tmp_path, files=files, scripts=scripts), is_db=False)
    assert report.layout == "plain" and report.content_root == ""
    assert report.scripts == {
        "deploy": ["1_deploy.sh", "bin/2_deploy.sh", "bin/10_deploy.sh"],
        "start": "bin/start.sh",
        "stop": "stop.sh",
    }
    assert report.config_files == ["conf/app.properties", "conf/sub/log.xml"]
    assert report.expanded_bytes == sum(len(v) for v in [*files.values(), *scripts.values()])
    assert report.members == 12  # 4 directories (bin conf conf/sub lib) and 8 files
    assert json.loads(json.dumps(report.to_dict()))["scripts"]["start"] == "bin/start.sh"


def test_versioned_layout_roots_at_the_version_dir(tmp_path: Path) -> None:
    report = inspect_archive(
        make_app_package(tmp_path, "wecube-core", layout="versioned"), is_db=False
    )
    assert report.layout == "versioned"
    assert report.content_root == "wecube-core_1.0.0"
    assert report.scripts["deploy"] == ["bin/deploy.sh"]
    assert report.config_files == ["conf/app.properties"]


def test_single_wrapper_dir_is_the_root(tmp_path: Path) -> None:
    report = inspect_archive(make_app_package(tmp_path, "demo", layout="wrapper"), is_db=False)
    assert (report.layout, report.content_root) == ("plain", "demo")
    assert report.scripts["start"] == "bin/start.sh"


def test_versioned_inside_a_wrapper(tmp_path: Path) -> None:
    members = [
        directory("pkg"),
        directory("pkg/demo_2.0.0/bin"),
        file("pkg/demo_2.0.0/bin/start.sh", "x", 0o755),
        symlink("pkg/current", "demo_2.0.0/"),
    ]
    report = inspect_archive(write_archive(tmp_path / "p.tar.gz", members), is_db=False)
    assert (report.layout, report.content_root) == ("versioned", "pkg/demo_2.0.0")
    assert report.scripts["start"] == "bin/start.sh"


def test_dot_slash_names_as_tar_czf_dot_writes_them(tmp_path: Path) -> None:
    members = [
        directory("."),
        directory("./bin"),
        file("./bin/start.sh", "x"),
        file("./conf/a", ""),
    ]
    report = inspect_archive(write_archive(tmp_path / "p.tar.gz", members), is_db=False)
    assert report.content_root == "" and report.scripts["start"] == "bin/start.sh"
    assert report.config_files == ["conf/a"]


def test_numbered_start_script_and_no_scripts(tmp_path: Path) -> None:
    path = make_app_package(tmp_path, scripts={"bin/1_start.sh": "x"})
    assert inspect_archive(path, is_db=False).scripts == {
        "deploy": [],
        "start": "bin/1_start.sh",
        "stop": None,
    }


def test_two_start_scripts_are_ambiguous(tmp_path: Path) -> None:
    path = make_app_package(tmp_path, scripts={"bin/start.sh": "x", "start.sh": "y"})
    with pytest.raises(InputError) as caught:
        inspect_archive(path, is_db=False)
    assert caught.value.code == "bad_package_layout"
    assert "bin/start.sh" in caught.value.message and "start.sh" in caught.value.message


def test_deploy_scripts_sharing_a_number_are_ambiguous(tmp_path: Path) -> None:
    path = make_app_package(tmp_path, scripts={"bin/1_deploy.sh": "x", "bin/01_deploy.sh": "y"})
    with pytest.raises(InputError) as caught:
        inspect_archive(path, is_db=False)
    assert caught.value.code == "bad_package_layout"
    assert "01_deploy.sh" in caught.value.message


def test_current_must_point_at_a_version_dir(tmp_path: Path) -> None:
    members = [directory("bin"), file("bin/start.sh", "x"), symlink("current", "bin/start.sh")]
    with pytest.raises(InputError) as caught:
        inspect_archive(write_archive(tmp_path / "p.tar.gz", members), is_db=False)
    assert caught.value.code == "bad_package_layout" and "current" in caught.value.message


def test_custom_config_globs(tmp_path: Path) -> None:
    files = {"conf/a.properties": "", "conf/b.xml": "", "etc/deep/c.properties": "", "x.txt": ""}
    path = make_app_package(tmp_path, files=files, scripts={})
    report = inspect_archive(path, is_db=False, config_globs=["**/*.properties", "x.t?t"])
    assert report.config_files == ["conf/a.properties", "etc/deep/c.properties", "x.txt"]
    report = inspect_archive(path, is_db=False, config_globs=["conf/*.xml"])
    assert report.config_files == ["conf/b.xml"]
    with pytest.raises(InputError) as caught:
        inspect_archive(path, is_db=False, config_globs=["../conf/**"])
    assert caught.value.code == "bad_glob"


def test_setgid_dir_and_world_writable_modes_are_warnings(tmp_path: Path) -> None:
    extra = [directory("shared", 0o2775), file("shared/x", "", 0o666)]
    report = inspect_archive(make_app_package(tmp_path, extra=extra), is_db=False)
    assert len(report.warnings) == 2 and "2775" in report.warnings[0]


def test_same_kind_duplicates_later_wins(tmp_path: Path) -> None:
    extra = [file("conf/app.properties", "second\n")]
    path = make_app_package(tmp_path, files={"conf/app.properties": "first\n"}, extra=extra)
    assert inspect_archive(path, is_db=False).config_files == ["conf/app.properties"]
    assert read_members(path, ["conf/app.properties"]) == {"conf/app.properties": b"second\n"}


# --- read_members --------------------------------------------------------------------------------


def test_read_members_streams_named_files(tmp_path: Path) -> None:
    files = {"conf/a.properties": "a=[@x]\n", "conf/b.bin": b"\xff\x00", "lib/big": b"z" * 100_000}
    path = make_app_package(tmp_path, files=files, layout="versioned")
    found = read_members(
        path, ["demo-app_1.0.0/conf/a.properties", "./demo-app_1.0.0/conf/b.bin", "nope", "current"]
    )
    assert found == {
        "demo-app_1.0.0/conf/a.properties": b"a=[@x]\n",
        "demo-app_1.0.0/conf/b.bin": b"\xff\x00",
    }
    with pytest.raises(InputError) as caught:
        read_members(path, ["demo-app_1.0.0/lib/big"], max_total_bytes=1000)
    assert caught.value.details["reason"] == "too_large"


# --- refusals: unsafe members ---------------------------------------------------------------------


def _refused(path: Path, *, is_db: bool = False, limits: ArchiveLimits | None = None) -> InputError:
    with pytest.raises(InputError) as caught:
        inspect_archive(path, is_db=is_db, limits=limits or ArchiveLimits())
    return caught.value


def _unsafe(tmp_path: Path, extra: list[Member], **kwargs: object) -> dict[str, str]:
    error = _refused(make_app_package(tmp_path, extra=extra), **kwargs)  # type: ignore[arg-type]
    assert error.code == "unsafe_archive", error.message
    assert error.details["field"] == "file"
    assert show(error.details["member"]) in error.message
    return error.details  # type: ignore[no-any-return]


def test_absolute_path(tmp_path: Path) -> None:
    details = _unsafe(tmp_path, [file("/etc/cron.d/evil", "x")])
    assert details == {"field": "file", "member": "/etc/cron.d/evil", "reason": "absolute_path"}


def test_parent_reference(tmp_path: Path) -> None:
    assert _unsafe(tmp_path, [file("conf/../../evil", "x")])["reason"] == "parent_reference"


def test_symlink_to_absolute_path(tmp_path: Path) -> None:
    assert _unsafe(tmp_path, [symlink("conf/passwd", "/etc/passwd")])["reason"] == "absolute_link"


def test_symlink_leaving_the_tree(tmp_path: Path) -> None:
    assert _unsafe(tmp_path, [symlink("conf/up", "../../x")])["reason"] == "link_escapes"


def test_symlink_escaping_through_another_symlink(tmp_path: Path) -> None:
    # Each looks harmless lexically; resolved, d/up is the root and e is its parent.
    extra = [directory("d"), symlink("d/up", ".."), symlink("e", "d/up/..")]
    details = _unsafe(tmp_path, extra)
    assert (details["member"], details["reason"]) == ("e", "link_escapes")


def test_symlink_inside_the_tree_is_fine(tmp_path: Path) -> None:
    extra = [symlink("lib/current.jar", "app.jar"), symlink("logs", "lib/../conf")]
    assert inspect_archive(make_app_package(tmp_path, extra=extra), is_db=False).members == 10


def test_symlink_loop(tmp_path: Path) -> None:
    assert _unsafe(tmp_path, [symlink("a", "b"), symlink("b", "a")])["reason"] == "link_loop"


def test_empty_symlink_target(tmp_path: Path) -> None:
    assert _unsafe(tmp_path, [symlink("a", "")])["reason"] == "empty_link_target"


def test_hardlink_out_of_the_tree(tmp_path: Path) -> None:
    assert _unsafe(tmp_path, [hardlink("x", "../etc/passwd")])["reason"] == "link_escapes"
    assert _unsafe(tmp_path, [hardlink("x", "/etc/passwd")])["reason"] == "absolute_link"


def test_hardlink_to_a_later_member(tmp_path: Path) -> None:
    extra = [hardlink("early", "late"), file("late", "x")]
    assert _unsafe(tmp_path, extra)["reason"] == "hardlink_target"


def test_hardlink_to_an_earlier_file_is_fine(tmp_path: Path) -> None:
    path = make_app_package(tmp_path, extra=[hardlink("lib/copy.jar", "lib/app.jar")])
    assert inspect_archive(path, is_db=False).members == 9


def test_hardlinked_config_file(tmp_path: Path) -> None:
    extra = [hardlink("lib/alias", "conf/app.properties")]
    assert _unsafe(tmp_path, extra)["reason"] == "hardlinked_config"


def test_member_written_through_a_symlink(tmp_path: Path) -> None:
    extra = [symlink("link", "lib"), file("link/x", "x")]
    details = _unsafe(tmp_path, extra)
    assert (details["member"], details["reason"]) == ("link/x", "through_symlink")


def test_member_inside_a_file(tmp_path: Path) -> None:
    extra = [file("lib/app.jar/x", "x")]
    assert _unsafe(tmp_path, extra)["reason"] == "parent_not_directory"


def test_file_and_directory_sharing_a_path(tmp_path: Path) -> None:
    details = _unsafe(tmp_path, [directory("conf/app.properties")])
    assert details["reason"] == "duplicate_conflict"
    assert _unsafe(tmp_path, [symlink("lib", "conf")])["reason"] == "duplicate_conflict"


@pytest.mark.parametrize("kind", ["chr", "blk"])
def test_device_files(tmp_path: Path, kind: str) -> None:
    assert _unsafe(tmp_path, [device("dev/sda", kind)])["reason"] == "device"


def test_fifo(tmp_path: Path) -> None:
    assert _unsafe(tmp_path, [fifo("logs/pipe")])["reason"] == "fifo"


def test_unknown_member_type(tmp_path: Path) -> None:
    members = [Member("bin/odd", kind="file")]
    raw = bytearray(tar_bytes(members, format=tarfile.GNU_FORMAT))
    raw[156:157] = b"Z"  # an unknown type flag; fix the checksum so the header is valid
    raw[148:156] = b" " * 8
    raw[148:156] = f"{sum(raw[:512]):06o}\0 ".encode()
    path = tmp_path / "p.tar.gz"
    path.write_bytes(gzip.compress(bytes(raw)))
    assert _refused(path).details["reason"] == "unsupported_type"


def test_setuid_file(tmp_path: Path) -> None:
    assert _unsafe(tmp_path, [file("bin/su", "x", 0o4755)])["reason"] == "setuid"


def test_setgid_file(tmp_path: Path) -> None:
    assert _unsafe(tmp_path, [file("bin/sg", "x", 0o2755)])["reason"] == "setgid"


@pytest.mark.parametrize("name", ["bin/a\x00b", "bin/a\nb", "bin/\x1b[31mred"])
def test_control_characters_in_names(tmp_path: Path, name: str) -> None:
    # pax records carry the raw name; a plain ustar header would cut it at the NUL.
    extra = [Member("bin/x", b"", pax={"path": name})]
    error = _refused(make_app_package(tmp_path, extra=extra))
    assert error.details["reason"] == "control_character"
    assert repr(name)[1:-1] in error.message  # shown escaped, never raw


def test_backslash_in_name(tmp_path: Path) -> None:
    assert _unsafe(tmp_path, [file("bin\\start.sh", "x")])["reason"] == "backslash"


def test_name_that_is_not_utf8(tmp_path: Path) -> None:
    members = [file("conf/caf\udce9", "x")]  # latin-1 "café"
    path = write_archive(tmp_path / "p.tar.gz", members, format=tarfile.GNU_FORMAT)
    assert _refused(path).details["reason"] == "bad_encoding"


def test_path_too_long(tmp_path: Path) -> None:
    deep = "/".join(["d" * 100] * 11) + "/f"
    assert _unsafe(tmp_path, [file(deep, "x")])["reason"] == "path_too_long"
    assert _unsafe(tmp_path, [file("x" * 256, "x")])["reason"] == "path_too_long"
    limits = ArchiveLimits(max_path_length=20)
    assert _unsafe(tmp_path, [file("a" * 21, "x")], limits=limits)["reason"] == "path_too_long"


def test_root_entry_must_be_a_directory(tmp_path: Path) -> None:
    assert _unsafe(tmp_path, [symlink(".", "lib")])["reason"] == "bad_root"
    assert _unsafe(tmp_path, [file(".", "x")])["reason"] == "bad_root"


def test_oversized_extended_header(tmp_path: Path) -> None:
    extra = [Member("bin/x", b"", pax={"comment": "x" * (2 << 20)})]
    assert _unsafe(tmp_path, extra)["reason"] == "oversized_header"


# --- refusals: sizes and bombs --------------------------------------------------------------------


def test_too_many_members(tmp_path: Path) -> None:
    extra = [file(f"lib/{i}", "") for i in range(10)]
    details = _unsafe(tmp_path, extra, limits=ArchiveLimits(max_members=12))
    assert details["reason"] == "too_many_members"


def test_expanded_size_over_the_limit(tmp_path: Path) -> None:
    extra = [file("lib/a", b"a" * 600), file("lib/b", b"b" * 600)]
    details = _unsafe(tmp_path, extra, limits=ArchiveLimits(max_expanded_bytes=1000))
    assert (details["member"], details["reason"]) == ("lib/b", "too_large")


def test_member_over_the_limit(tmp_path: Path) -> None:
    details = _unsafe(
        tmp_path, [file("lib/a", b"a" * 200)], limits=ArchiveLimits(max_member_bytes=100)
    )
    assert details["reason"] == "member_too_large"


def test_gzip_bomb_stops_at_the_ratio_limit_quickly(tmp_path: Path) -> None:
    bomb = make_gzip_bomb(tmp_path / "bomb_1.0.0_1.tar.gz", expanded_bytes=300 << 20)
    assert bomb.stat().st_size < 1 << 20  # 300 MiB of zeros, never held in memory
    started = time.perf_counter()
    error = _refused(bomb)
    assert time.perf_counter() - started < 5
    assert error.details == {
        "field": "file",
        "member": "lib/zeros.bin",
        "reason": "compression_ratio",
    }


def test_gzip_bomb_is_not_read_past_the_limit(tmp_path: Path) -> None:
    # Junk follows the first 80 MiB: a reader that went past the 64 MiB floor would fail on it.
    bomb = make_gzip_bomb(tmp_path / "b.tar.gz", expanded_bytes=300 << 20, garbage_after=80)
    assert _refused(bomb).details["reason"] == "compression_ratio"


def test_ratio_is_checked_with_small_limits_too(tmp_path: Path) -> None:
    bomb = make_gzip_bomb(tmp_path / "b.tar.gz", expanded_bytes=4 << 20)
    limits = ArchiveLimits(ratio_floor_bytes=1 << 20)
    assert _refused(bomb, limits=limits).details["reason"] == "compression_ratio"


def test_highly_compressible_small_package_passes(tmp_path: Path) -> None:
    path = make_app_package(tmp_path, files={"conf/big.xml": "<a/>" * 500_000})
    assert inspect_archive(path, is_db=False).expanded_bytes > 2_000_000


# --- refusals: not a package at all ---------------------------------------------------------------


def _bad_archive(path: Path) -> str:
    error = _refused(path)
    assert error.code == "bad_archive" and error.details["field"] == "file"
    assert path.name in error.message
    return error.details["reason"]  # type: ignore[no-any-return]


def test_not_gzip(tmp_path: Path) -> None:
    path = tmp_path / "p.tar.gz"
    path.write_bytes(tar_bytes([file("a", "x")]))
    assert _bad_archive(path) == "not_gzip"


def test_gzip_but_not_tar(tmp_path: Path) -> None:
    path = tmp_path / "p.tar.gz"
    path.write_bytes(gzip.compress(b"just some text, not a tar archive\n" * 50))
    assert _bad_archive(path) == "corrupt"


def test_truncated_gzip(tmp_path: Path) -> None:
    path = make_app_package(tmp_path, files={"lib/x": bytes(range(256)) * 400})
    path.write_bytes(path.read_bytes()[:-200])
    assert _bad_archive(path) == "corrupt"


@pytest.mark.parametrize("cut", [700, 2048 + 100, 1536 + 100, 3072])
def test_truncated_tar_inside_a_complete_gzip(tmp_path: Path, cut: int) -> None:
    raw = tar_bytes(
        [file("lib/a", b"a" * 1000), file("lib/b", b"b" * 1000)], format=tarfile.GNU_FORMAT
    )
    path = tmp_path / "p.tar.gz"
    path.write_bytes(gzip.compress(raw[:cut]))
    assert _bad_archive(path) == "corrupt"


def test_corrupt_header_checksum(tmp_path: Path) -> None:
    raw = bytearray(
        tar_bytes([file("lib/a", b"a"), file("lib/b", b"b")], format=tarfile.GNU_FORMAT)
    )
    raw[1024 + 10] ^= 0xFF  # second member's header
    path = tmp_path / "p.tar.gz"
    path.write_bytes(gzip.compress(bytes(raw)))
    assert _bad_archive(path) == "corrupt"


def test_empty_archive(tmp_path: Path) -> None:
    assert _bad_archive(write_archive(tmp_path / "p.tar.gz", [])) == "empty"
    assert _bad_archive(write_archive(tmp_path / "q.tar.gz", [directory(".")])) == "empty"


# --- database packages -------------------------------------------------------------------------


def test_db_package_versions_sorted_numerically(tmp_path: Path) -> None:
    sql = {"increment": {"10_c.sql": "", "2_b.sql": "", "1_a.SQL": ""}, "rollback": {"1_x.sql": ""}}
    versions = {
        "app_v1.10": sql,
        "app_v1.9": sql,
        "v1.2.3": {"rollback": {"1_r.sql": ""}},
        "app_v1.0": sql,
    }
    report = inspect_archive(make_db_package(tmp_path, versions=versions), is_db=True)
    assert report.layout == "db"
    assert [(v["dir"], v["version"]) for v in report.db_versions] == [
        ("app_v1.0", "1.0"),
        ("v1.2.3", "1.2.3"),
        ("app_v1.9", "1.9"),
        ("app_v1.10", "1.10"),
    ]
    assert report.db_versions[0]["increment"] == ["1_a.SQL", "2_b.sql", "10_c.sql"]
    assert report.db_versions[1]["increment"] == []


def test_every_db_package_the_upload_accepts_the_deployment_reads(tmp_path: Path) -> None:
    # Upload and deployment once named version directories by different rules: `app-1.1` and
    # `1.2` passed the upload, then every deployment of the package was refused.
    from slipway.releases.dbpackage import load_versions

    scripts = {"1_a.sql": "SELECT 1;", "2-b.SQL": "SELECT 2;", "3.sql": "SELECT 3;"}
    names = ["app_v1.0", "app-1.1", "1.2", "v1.3", "wecube-core-db_v1.4"]
    path = make_db_package(tmp_path, versions={name: {"increment": scripts} for name in names})
    report = inspect_archive(path, is_db=True)
    members = [
        f"{v['dir']}/increment/{script}" for v in report.db_versions for script in v["increment"]
    ]
    versions = load_versions(read_members(path, {member: member for member in members}))
    assert [(v["dir"], v["version"]) for v in report.db_versions] == list(
        zip(names, ["1.0", "1.1", "1.2", "1.3", "1.4"], strict=True)
    )
    assert [v.version for v in versions] == ["1.0", "1.1", "1.2", "1.3", "1.4"]
    assert [s.name for s in versions[0].increment] == ["1_a.sql", "2-b.SQL", "3.sql"]


@pytest.mark.parametrize("wrapper", ["wecube-core-db", "wecube-core-db_1.0.1"])
def test_db_package_in_a_wrapper_dir(tmp_path: Path, wrapper: str) -> None:
    report = inspect_archive(make_db_package(tmp_path, wrapper=wrapper), is_db=True)
    assert report.content_root == wrapper
    assert report.db_versions[0]["dir"] == "app_v1.0"


@pytest.mark.parametrize(
    ("versions", "extra", "named"),
    [
        ({"app_v1.0": {"increment": {"create.sql": ""}}}, [], "create.sql"),
        ({"app_v1.0": {"increment": {"1_a.txt": ""}}}, [], "1_a.txt"),
        ({"app_v1.0": {"docs": {"1_a.sql": ""}}}, [], "docs"),
        (
            {"app_v1.0": {"increment": {"1_a.sql": ""}}, "latest": {"increment": {"1_a.sql": ""}}},
            [],
            "latest",
        ),
        ({"app_v1.0": {"increment": {"1_a.sql": "", "1_b.sql": ""}}}, [], "1_b.sql"),
        (
            {"app_v1.0": {"increment": {"1_a.sql": ""}}, "v1.0.0": {"increment": {"1_a.sql": ""}}},
            [],
            "v1.0.0",
        ),
        ({"app_v1.0": {"increment": {"1_a.sql": ""}}}, [file("README.md", "x")], "README.md"),
        (
            {"app_v1.0": {"increment": {"1_a.sql": ""}}},
            [directory("app_v1.1/increment")],
            "app_v1.1",
        ),
        (
            {"app_v1.0": {"increment": {"1_a.sql": ""}}},
            [directory("app_v1.0/increment/sub")],
            "sub",
        ),
    ],
)
def test_db_package_refusals(
    tmp_path: Path, versions: dict[str, dict[str, dict[str, str]]], extra: list[Member], named: str
) -> None:
    error = _refused(make_db_package(tmp_path, versions=versions, extra=extra), is_db=True)
    assert error.code == "bad_db_package"
    assert named in error.message and "increment/" in error.message


# --- performance ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_inspecting_a_50_mb_package_costs_about_one_gunzip(tmp_path: Path) -> None:
    import os
    import random

    rng = random.Random(7)
    words = [f"word{i}".encode() for i in range(2000)]
    text = {f"static/f{i}.js": b" ".join(rng.choices(words, k=1500)) for i in range(1500)}
    jars = {f"lib/dep{i}.jar": os.urandom(1 << 20) for i in range(44)}
    path = make_app_package(tmp_path, files={**jars, **text})
    assert path.stat().st_size > 50_000_000
    started = time.perf_counter()
    with gzip.open(path) as stream:
        while stream.read(1 << 20):
            pass
    gunzip = time.perf_counter() - started
    started = time.perf_counter()
    report = inspect_archive(path, is_db=False)
    inspect = time.perf_counter() - started
    print(f"50 MB package: gunzip {gunzip:.3f}s, inspect {inspect:.3f}s")
    assert report.members > 1500
    assert inspect < 3 * gunzip + 0.5

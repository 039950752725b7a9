"""The build spec: FastBuild's request and the native spec parsed, checked and hashed."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from slipway.builds.fastbuild_secrets import encrypt_secret
from slipway.builds.spec import BuildSpec, parse_build_request, public_dict, spec_hash
from slipway.core.errors import InputError
from tests.builds.support import FASTBUILD_IV, FASTBUILD_KEY, SEED_REQUEST

INSTALLERS = "dockerfile_json.image_installer_config"
PIP = f"{INSTALLERS}.pip_installer_config"
SYSTEM = f"{INSTALLERS}.package_manager_installer_config"
CONDA = f"{INSTALLERS}.conda_installer_config"

NATIVE: dict[str, Any] = {
    "base_image": "debian:12",
    "target_image": "registry.example.com/team/app:1.0",
    "task_name": "team-app-1",
}


def parse(body: Any) -> BuildSpec:
    return parse_build_request(body, fastbuild_key=FASTBUILD_KEY, fastbuild_iv=FASTBUILD_IV)


def refused(body: Any) -> InputError:
    with pytest.raises(InputError) as caught:
        parse(body)
    error = caught.value
    assert error.status_code == 422
    if "errors" in error.details:
        assert error.details["field"] == error.details["errors"][0]["field"]
    return error


def seed() -> dict[str, Any]:
    return copy.deepcopy(SEED_REQUEST)


def at(body: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    """(the object holding `path`'s last key, that key)."""
    *parents, last = path.split(".")
    for key in parents:
        body = body[key]
    return body, last


def with_value(path: str, value: Any, body: dict[str, Any] | None = None) -> dict[str, Any]:
    body = seed() if body is None else body
    holder, key = at(body, path)
    holder[key] = value
    return body


# --- FastBuild's request --------------------------------------------------------------------------


def test_the_seed_request_becomes_this_native_spec() -> None:
    spec = parse(seed())

    assert spec.source_format == "fastbuild"
    assert spec.secrets.is_empty  # its secrets decrypt to "": SSH and Jupyter off
    assert public_dict(spec) == {
        "base_image": "harbor.alkaidos.cn/base/ubuntu:18.04",
        "target_image": "10.101.12.128/songquanheng-zhejianglab.com/ubuntu:sqh-18.04",
        "task_name": "10.101.12.128-songquanheng@zhejianglab.com-1714116639",
        "callback_url": "http://alkaidos.cn/api/app/dros-ic-platform/harbor/image/callback",
        "maintainer": "1597398607723978754",
        "push": True,
        "endpoint": None,
        "apt": {"mirror": {"type": "ali", "file_name": "ubuntu-18.04.list"}, "packages": []},
        "yum": None,
        "python": {"install_loc": "/usr/local/dros/python"},
        "pip": {
            "index_url": None,
            "extra_index_urls": [],
            "trusted_hosts": [],
            "packages": [],
            "python_versions": [],
        },
        "conda": {"channels": [], "packages": []},
        "labels": {},
    }


REQUIRED = [
    "task_data",
    "task_data.task_name",
    "task_data.target_image_name",
    "dockerfile_json",
    "dockerfile_json.base_image",
]


@pytest.mark.parametrize("path", REQUIRED)
def test_each_required_fastbuild_field_missing_in_turn_is_named(path: str) -> None:
    body = seed()
    holder, key = at(body, path)
    del holder[key]

    error = refused(body)

    assert error.details["field"] == path
    assert error.message.startswith(f"{path} is required")
    assert error.code == "invalid_build_spec"


@pytest.mark.parametrize("path", REQUIRED[1:3] + REQUIRED[4:])
def test_an_empty_required_string_counts_as_missing(path: str) -> None:
    error = refused(with_value(path, ""))

    assert error.details["field"] == path
    assert "is required" in error.message


@pytest.mark.parametrize("path", ["task_data", "dockerfile_json", f"{PIP}.source"])
def test_a_wrong_type_names_the_field(path: str) -> None:
    assert refused(with_value(path, "text")).details["field"] == path


def test_fastbuild_keys_slipway_does_not_use_are_accepted() -> None:
    body = with_value("task_data.priority", 3)
    body["dockerfile_json"]["image_installer_config"]["r_installer_config"] = {"x": 1}
    body["client"] = "dros"

    assert parse(body).task_name == SEED_REQUEST["task_data"]["task_name"]


def test_an_empty_callback_url_means_none() -> None:
    assert parse(with_value("task_data.callback_url", "")).callback_url is None


def test_software_lists_become_each_installers_packages() -> None:
    body = seed()
    with_value(f"{PIP}.software_list", ["requests", "numpy==1.21.0", "pandas>=1.3,<2"], body)
    with_value(f"{PIP}.python_version", ["3.8", "python3.10"], body)
    with_value(f"{SYSTEM}.software_list", ["vim", "curl=7.58.0-2ubuntu3"], body)
    with_value(f"{CONDA}.software_list", ["scipy=1.7"], body)
    with_value(f"{CONDA}.source.type", "qinghua", body)

    spec = parse(body)

    assert spec.pip.packages == ["numpy==1.21.0", "pandas>=1.3,<2", "requests"]  # sorted
    assert spec.pip.python_versions == ["3.8", "3.10"]
    assert spec.apt is not None and spec.apt.packages == ["curl=7.58.0-2ubuntu3", "vim"]
    assert spec.conda.packages == ["scipy=1.7"]
    assert spec.conda.channels[0] == "https://mirrors.tuna.tsinghua.edu.cn/anaconda/pkgs/main"


@pytest.mark.parametrize(
    ("config", "entries", "delimiter", "expected"),
    [
        (PIP, ["numpy 1.21.0", "requests"], " ", ["numpy==1.21.0", "requests"]),
        (PIP, ["numpy==1.21.0"], "==", ["numpy==1.21.0"]),
        (PIP, ["numpy:>=1.2"], ":", ["numpy>=1.2"]),
        (PIP, [{"name": "numpy", "version": "1.21.0"}, {"name": "six"}], "",
         ["numpy==1.21.0", "six"]),
        (PIP, "numpy==1.21.0, requests\nsix", "", ["numpy==1.21.0", "requests", "six"]),
        (PIP, "numpy|six", "|", ["numpy", "six"]),
        (SYSTEM, ["curl 7.58.0", "vim"], " ", ["curl=7.58.0", "vim"]),
        (CONDA, ["scipy 1.7"], " ", ["scipy=1.7"]),
    ],
)  # fmt: skip
def test_software_list_entries_with_a_delimiter_or_as_objects(
    config: str, entries: Any, delimiter: str, expected: list[str]
) -> None:
    body = with_value(f"{config}.software_list", entries)
    with_value(f"{config}.delimiter", delimiter, body)

    spec = parse(body)

    section = {PIP: spec.pip, SYSTEM: spec.apt, CONDA: spec.conda}[config]
    assert section is not None and section.packages == expected


def test_a_yum_installer_takes_a_repo_profile() -> None:
    body = with_value(f"{SYSTEM}.installer_name", "yum")
    with_value(f"{SYSTEM}.source.file_name", "centos-7.repo", body)
    with_value(f"{SYSTEM}.software_list", ["NetworkManager", "gcc-c++"], body)

    spec = parse(body)

    assert spec.apt is None and spec.yum is not None
    assert spec.yum.mirror is not None and spec.yum.mirror.file_name == "centos-7.repo"
    assert spec.yum.packages == ["NetworkManager", "gcc-c++"]


def test_a_pip_source_type_picks_that_mirrors_index() -> None:
    spec = parse(with_value(f"{PIP}.source.type", "ali"))

    assert spec.pip.index_url == "https://mirrors.aliyun.com/pypi/simple/"


@pytest.mark.parametrize(
    ("path", "value", "field", "words"),
    [
        (f"{PIP}.source.type", "nowhere", f"{PIP}.source.type", "no pip mirror"),
        (f"{CONDA}.source.type", "163", f"{CONDA}.source.type", "no conda mirror"),
        (f"{SYSTEM}.source.file_name", "", f"{SYSTEM}.source.file_name", "is required"),
        (f"{SYSTEM}.source.type", "", f"{SYSTEM}.source.type", "is required"),
        (f"{SYSTEM}.installer_name", "pacman", f"{SYSTEM}.installer_name", "apt or yum"),
        (f"{SYSTEM}.source.file_name", "centos-7.repo", f"{SYSTEM}.source", "yum profile"),
        (f"{SYSTEM}.source.type", "Ali Yun", f"{SYSTEM}.source.type", "mirror type"),
        (f"{SYSTEM}.source.file_name", "../x.list", f"{SYSTEM}.source.file_name", "file name"),
        (f"{PIP}.python_version", ["2.7"], f"{PIP}.python_version[0]", "only Python 3"),
        (f"{PIP}.software_list", {"a": 1}, f"{PIP}.software_list", "must be a list"),
        (f"{PIP}.software_list", ["six", 7], f"{PIP}.software_list[1]", "is not a package"),
        (f"{INSTALLERS}.python_env.install_loc", "/usr", f"{INSTALLERS}.python_env.install_loc",
         "system directory"),
        (f"{INSTALLERS}.python_env.install_loc", "opt/x", f"{INSTALLERS}.python_env.install_loc",
         "absolute directory"),
        ("task_data.callback_url", "ftp://x", "task_data.callback_url", "http(s) URL"),
        ("dockerfile_json.maintainer", 'a"b', "dockerfile_json.maintainer", "label value"),
    ],
)  # fmt: skip
def test_fastbuild_refusals_name_the_field_and_the_fix(
    path: str, value: Any, field: str, words: str
) -> None:
    error = refused(with_value(path, value))

    assert error.details["field"] == field, error.message
    assert words in error.message


# --- injection ------------------------------------------------------------------------------------

BAD_ENTRIES = [
    "numpy; rm -rf /",
    "numpy && curl evil.example",
    "$(reboot)",
    "`reboot`",
    "numpy\nRUN rm -rf /",
    "numpy'",
    'numpy"',
    "numpy|sh",
    "numpy>x&&y",
    "-e git+https://example.com/x.git",
    "--index-url=http://evil.example/simple",
    "git+https://example.com/x.git",
    "numpy @ https://example.com/numpy.whl",
    "numpy; python_version < '3.8'",
]


@pytest.mark.parametrize("entry", BAD_ENTRIES)
@pytest.mark.parametrize("config", [PIP, SYSTEM, CONDA])
def test_a_package_entry_with_shell_or_pip_syntax_is_refused_by_its_index(
    config: str, entry: str
) -> None:
    body = with_value(f"{config}.software_list", ["six", "wheel", entry])

    error = refused(body)

    assert error.details["field"] == f"{config}.software_list[2]"
    assert "is not a" in error.message


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("dockerfile_json.base_image", "ubuntu:18.04; rm -rf /"),
        ("dockerfile_json.base_image", "ubuntu:18.04\nRUN id"),
        ("dockerfile_json.base_image", "Ubuntu:18.04"),
        ("dockerfile_json.base_image", "ubuntu:$(id)"),
        ("task_data.target_image_name", "r.example.com/a/b@sha256:" + "a" * 64),
        ("task_data.target_image_name", "r.example.com/a/b:1 --push"),
        ("task_data.task_name", "task`id`"),
        ("task_data.task_name", "task\nname"),
        ("dockerfile_json.maintainer", "me $(id)"),
        ("dockerfile_json.maintainer", "me\nRUN id"),
        (f"{INSTALLERS}.python_env.install_loc", "/opt/x;id"),
        (f"{INSTALLERS}.python_env.install_loc", "/opt/../etc"),
        (f"{INSTALLERS}.python_env.install_loc", "/opt/my env"),
    ],
)
def test_fields_rendered_into_the_dockerfile_refuse_shell_characters(path: str, value: str) -> None:
    assert refused(with_value(path, value)).details["field"] == path


def test_a_package_listed_twice_is_refused_at_its_second_entry() -> None:
    error = refused(with_value(f"{PIP}.software_list", ["numpy==1.0", "six", "NumPy>=2"]))

    assert error.details["field"] == f"{PIP}.software_list[2]"
    assert "listed twice" in error.message


# --- the native spec ------------------------------------------------------------------------------


def test_a_native_spec_with_every_section() -> None:
    body = {
        **NATIVE,
        "callback_url": "https://ci.example.com/hook",
        "maintainer": "Zhang San <zs@example.com>",
        "push": False,
        "endpoint": "builder-1",
        "apt": {"mirror": {"type": "qinghua", "file_name": "debian-12.list"}, "packages": ["vim"]},
        "python": {"install_loc": "/opt/py/"},
        "pip": {
            "index_url": "https://pypi.example.com/simple",
            "extra_index_urls": ["http://10.0.0.5:8080/simple"],
            "trusted_hosts": ["10.0.0.5:8080"],
            "packages": ["torch[cuda]~=2.1", "numpy"],
            "python_versions": ["3.11"],
        },
        "conda": {"channels": ["conda-forge", "https://conda.example.com/main"],
                  "packages": ["conda-forge::scipy>=1.7", "numpy=1.21=py39_0"]},
        "labels": {"org.example.team": "ml", "tier": "gpu"},
        "secrets": {"web_ssh": "root-pass", "jupyter_lab": None},
    }  # fmt: skip

    spec = parse(body)

    assert spec.source_format == "native"
    assert spec.python.install_loc == "/opt/py"
    assert spec.pip.packages == ["numpy", "torch[cuda]~=2.1"]
    assert spec.conda.packages == ["conda-forge::scipy>=1.7", "numpy=1.21=py39_0"]
    assert spec.secrets.web_ssh is not None
    assert spec.secrets.web_ssh.get_secret_value() == "root-pass"
    assert spec.secrets.jupyter_lab is None
    assert not spec.push and spec.endpoint == "builder-1"


@pytest.mark.parametrize("field", ["base_image", "target_image", "task_name"])
def test_each_required_native_field_missing_in_turn_is_named(field: str) -> None:
    body = {key: value for key, value in NATIVE.items() if key != field}

    error = refused(body)

    assert error.details["field"] == field
    assert error.message.startswith(f"{field} is required")


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({**NATIVE, "colour": "red"}, "colour", "not a field"),
        ({**NATIVE, "pip": {"packages": ["ok", "x;y"]}}, "pip.packages[1]", "pip requirement"),
        ({**NATIVE, "pip": {"index_url": "ftp://x/simple"}}, "pip.index_url", "index URL"),
        ({**NATIVE, "pip": {"index_url": "https://u:p@x/simple"}}, "pip.index_url", "index URL"),
        ({**NATIVE, "pip": {"extra_index_urls": ["https://x/s imple"]}},
         "pip.extra_index_urls[0]", "index URL"),
        ({**NATIVE, "pip": {"trusted_hosts": ["x;y"]}}, "pip.trusted_hosts[0]", "host"),
        ({**NATIVE, "conda": {"channels": ["conda-forge; id"]}}, "conda.channels[0]", "channel"),
        ({**NATIVE, "labels": {"slipway.task": "x"}}, "labels.slipway.task", "set by slipway"),
        ({**NATIVE, "labels": {"Bad Key": "x"}}, "labels.Bad Key", "label key"),
        ({**NATIVE, "labels": {"team": "a$b"}}, "labels.team", "label value"),
        ({**NATIVE, "apt": {"packages": ["vim"]}, "yum": {"packages": ["vim"]}}, "yum",
         "not both"),
        ({**NATIVE, "apt": {"mirror": {"type": "ali", "file_name": "centos-7.repo"}}},
         "apt.mirror", "yum profile"),
        ({**NATIVE, "yum": {"packages": ["vim;id"]}}, "yum.packages[0]", "RPM package"),
        ({**NATIVE, "endpoint": "Not A Name"}, "endpoint", "pattern"),
        ({**NATIVE, "secrets": {"web_ssh": "a\nb"}}, "secrets.web_ssh", "without newlines"),
        ({**NATIVE, "secrets": {"root": "x"}}, "secrets.root", "not a field"),
    ],
)  # fmt: skip
def test_native_refusals_name_the_field(body: dict[str, Any], field: str, words: str) -> None:
    error = refused(body)

    assert error.details["field"] == field, error.message
    assert words in error.message


def test_a_body_that_is_not_an_object_is_refused() -> None:
    error = refused(["not", "an", "object"])

    assert error.details["field"] == "body"


def test_every_problem_is_listed_in_details() -> None:
    error = refused({"base_image": "x;y"})

    fields = {problem["field"] for problem in error.details["errors"]}
    assert fields == {"base_image", "target_image", "task_name"}
    assert "and 2 more problems" in error.message


# --- storing and hashing --------------------------------------------------------------------------


def test_public_dict_holds_no_secret_and_reads_back_as_the_same_spec() -> None:
    spec = parse({**NATIVE, "secrets": {"web_ssh": "s3cret-pass", "jupyter_lab": "lab-pass"}})

    stored = public_dict(spec)

    assert "secrets" not in stored
    assert "s3cret-pass" not in json.dumps(stored) + repr(spec) + spec.model_dump_json()
    again = BuildSpec.model_validate(stored)
    assert public_dict(again) == stored
    assert again.secrets.is_empty


def test_spec_hash_is_the_same_for_equal_specs_whatever_the_package_order() -> None:
    first = parse(
        {**NATIVE, "pip": {"packages": ["six", "numpy"]}, "apt": {"packages": ["b", "a"]}}
    )
    second = parse(
        {**NATIVE, "apt": {"packages": ["a", "b"]}, "pip": {"packages": ["numpy", "six"]}}
    )
    other = parse({**NATIVE, "pip": {"packages": ["six"]}, "apt": {"packages": ["a", "b"]}})

    assert spec_hash(first) == spec_hash(second)
    assert spec_hash(first) != spec_hash(other)
    assert len(spec_hash(first)) == 64 and int(spec_hash(first), 16) >= 0


def test_a_fastbuild_request_and_its_native_spec_hash_the_same() -> None:
    native = public_dict(parse(seed()))

    assert spec_hash(parse(native)) == spec_hash(parse(seed()))


def test_secrets_do_not_change_the_spec_hash() -> None:
    body = with_value("webSSHSecret", encrypt_secret("pw", key=FASTBUILD_KEY, iv=FASTBUILD_IV))

    assert spec_hash(parse(body)) == spec_hash(parse(seed()))

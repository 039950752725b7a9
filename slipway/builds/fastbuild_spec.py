"""FastBuild's build request JSON, as its clients send it, and its conversion to a native spec.

    {"webSSHSecret": "…", "jupyterLabSecret": "…",
     "task_data": {"task_name", "target_image_name", "callback_url"},
     "dockerfile_json": {"base_image", "maintainer",
        "image_installer_config": {"python_env": {"present", "update", "target", "install_loc"},
            "pip_installer_config" | "package_manager_installer_config" | "conda_installer_config":
                {"installer_name", "install": {…},
                 "source": {"installer_name", "type", "file_name"},
                 "software_list", "delimiter", "python_version"}},
            "webSSHSecret", "jupyterLabSecret"}}}

Extra keys are accepted and ignored (FastBuild's clients send what its UI has); what slipway
uses is checked. `software_list` entries are strings: a full spec as the installer takes it
(`numpy==1.21.0`, `curl=7.88.1-10`), or, when `delimiter` is set and occurs in the entry,
NAME<delimiter>VERSION (`numpy 1.21.0` with delimiter " "), pinned in the installer's own form.
An object `{"name", "version"}` is taken too, and a whole list sent as one string is split on
`delimiter` (or on commas and whitespace when there is none). `python_env`'s present / update /
target describe FastBuild's UI state and are not used: slipway installs no interpreter, it makes a
venv at `install_loc` from the image's Python.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from slipway.builds.fastbuild_secrets import decrypt_secret
from slipway.builds.spec import field_path, input_error
from slipway.builds.spec_patterns import shown
from slipway.core.errors import InputError

ROOT = ("dockerfile_json", "image_installer_config")
PIP = (*ROOT, "pip_installer_config")
SYSTEM = (*ROOT, "package_manager_installer_config")
CONDA = (*ROOT, "conda_installer_config")

# FastBuild's pip / conda source types, as the public mirrors publish their indexes.
PIP_INDEXES = {
    "ali": "https://mirrors.aliyun.com/pypi/simple/",
    "163": "https://mirrors.163.com/pypi/simple/",
    "qinghua": "https://pypi.tuna.tsinghua.edu.cn/simple/",
    "ustc": "https://mirrors.ustc.edu.cn/pypi/simple/",
    "official": "https://pypi.org/simple/",
}
CONDA_CHANNELS = {
    "ali": ["https://mirrors.aliyun.com/anaconda/pkgs/main",
            "https://mirrors.aliyun.com/anaconda/cloud/conda-forge"],
    "qinghua": ["https://mirrors.tuna.tsinghua.edu.cn/anaconda/pkgs/main",
                "https://mirrors.tuna.tsinghua.edu.cn/anaconda/cloud/conda-forge"],
    "ustc": ["https://mirrors.ustc.edu.cn/anaconda/pkgs/main",
             "https://mirrors.ustc.edu.cn/anaconda/cloud/conda-forge"],
    "official": ["defaults", "conda-forge"],
}  # fmt: skip
APT_NAMES = {"apt", "apt-get"}
YUM_NAMES = {"yum", "dnf"}
# How each installer pins a version.
PIN = {"pip": "{}=={}", "apt": "{}={}", "yum": "{}-{}", "conda": "{}={}"}


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class FastBuildSource(_Loose):
    installer_name: str | None = None
    type: str | None = None
    file_name: str | None = None


class FastBuildInstall(_Loose):
    # present / update / target: FastBuild's UI state, not used (see the module docstring).
    present: Any = None
    update: Any = None
    target: Any = None
    install_loc: str | None = None


class FastBuildInstallerConfig(_Loose):
    installer_name: str | None = None
    install: FastBuildInstall | None = None
    source: FastBuildSource | None = None
    software_list: Any = None  # a list, or one string; checked in _entries
    delimiter: str | None = None
    python_version: Any = None  # a list, or one comma-separated string


class FastBuildImageInstallerConfig(_Loose):
    python_env: FastBuildInstall | None = None
    pip_installer_config: FastBuildInstallerConfig | None = None
    package_manager_installer_config: FastBuildInstallerConfig | None = None
    conda_installer_config: FastBuildInstallerConfig | None = None
    # FastBuild's sample request repeats the secrets here (empty); its docs put them one up.
    webSSHSecret: str | None = None  # noqa: N815
    jupyterLabSecret: str | None = None  # noqa: N815


class FastBuildDockerfile(_Loose):
    base_image: str = Field(min_length=1)
    maintainer: str | None = None
    image_installer_config: FastBuildImageInstallerConfig | None = None
    webSSHSecret: str | None = None  # noqa: N815 - FastBuild's names
    jupyterLabSecret: str | None = None  # noqa: N815


class FastBuildTask(_Loose):
    task_name: str = Field(min_length=1)
    target_image_name: str = Field(min_length=1)
    callback_url: str | None = None


class FastBuildRequest(_Loose):
    """FastBuild's `image/build-image` body."""

    webSSHSecret: str | None = None  # noqa: N815
    jupyterLabSecret: str | None = None  # noqa: N815
    task_data: FastBuildTask
    dockerfile_json: FastBuildDockerfile


def _path(*parts: str | int) -> str:
    return field_path(parts)


def _entries(config: FastBuildInstallerConfig, where: tuple[str, ...], installer: str) -> list[str]:
    """software_list as the installer's own specs (checked later, under their request path)."""
    raw = config.software_list or []
    delimiter = config.delimiter or ""
    if not isinstance(raw, str | list):
        field = _path(*where, "software_list")
        raise InputError(
            f'{field} must be a list of packages, e.g. ["numpy==1.21.0"]',
            field=field,
            code="invalid_build_spec",
        )
    if isinstance(raw, str):
        parts = raw.split(delimiter) if delimiter else re.split(r"[,\s]+", raw)
        return [part.strip() for part in parts if part.strip()]
    entries = []
    for index, item in enumerate(raw):
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            version = item.get("version")
            if version not in (None, "") and not isinstance(version, str):
                raise InputError(
                    f"{_path(*where, 'software_list', index)}.version must be a string",
                    field=_path(*where, "software_list", index, "version"),
                    code="invalid_build_spec",
                )
            entries.append(_pinned(installer, item["name"], version or ""))
        elif isinstance(item, str):
            if delimiter and delimiter in item.strip():
                name, _, version = item.strip().partition(delimiter)
                entries.append(_pinned(installer, name.strip(), version.strip()))
            else:
                entries.append(item.strip())
        else:
            field = _path(*where, "software_list", index)
            raise InputError(
                f"{field}: {shown(item)} is not a package; give a string such as numpy==1.21.0 "
                'or {"name": "numpy", "version": "1.21.0"}',
                field=field,
                code="invalid_build_spec",
            )
    return entries


def _pinned(installer: str, name: str, version: str) -> str:
    if not version:
        return name
    if installer == "pip" and version[0] in "=<>!~":
        return name + version  # already an operator: numpy >=1.0
    return PIN[installer].format(name, version)


def _source(config: FastBuildInstallerConfig) -> tuple[str, str]:
    source = config.source or FastBuildSource()
    kind, file_name = (source.type or "").strip(), (source.file_name or "").strip()
    return kind, file_name


def _system(config: FastBuildInstallerConfig, native: dict[str, Any], fields: dict) -> None:
    name = (config.installer_name or "").strip().lower()
    kind, file_name = _source(config)
    if name in YUM_NAMES or (not name and file_name.endswith(".repo")):
        manager = "yum"
    elif name in APT_NAMES or not name:
        manager = "apt"
    else:
        raise InputError(
            f"{_path(*SYSTEM, 'installer_name')}: {shown(name)} is not a package manager slipway "
            "knows; use apt or yum",
            field=_path(*SYSTEM, "installer_name"),
            code="invalid_build_spec",
        )
    section: dict[str, Any] = {"packages": _entries(config, SYSTEM, manager)}
    if kind and not file_name:
        raise InputError(
            f"{_path(*SYSTEM, 'source', 'file_name')} is required with source.type {kind!r}: "
            "name the profile file, e.g. ubuntu-18.04.list (GET /api/v1/mirror-profiles lists "
            "them)",
            field=_path(*SYSTEM, "source", "file_name"),
            code="invalid_build_spec",
        )
    if file_name and not kind:
        raise InputError(
            f"{_path(*SYSTEM, 'source', 'type')} is required with source.file_name "
            f"{file_name!r}: name the mirror, e.g. ali, 163, qinghua, ustc or official",
            field=_path(*SYSTEM, "source", "type"),
            code="invalid_build_spec",
        )
    if kind:
        section["mirror"] = {"type": kind, "file_name": file_name}
        fields[(manager, "mirror")] = (*SYSTEM, "source")
    if section["packages"] or kind:
        native[manager] = section
        fields[(manager, "packages")] = (*SYSTEM, "software_list")
        fields[(manager,)] = SYSTEM


def _mirror_of(table: dict[str, Any], kind: str, where: tuple[str, ...]) -> Any:
    if kind not in table:
        field = _path(*where, "source", "type")
        raise InputError(
            f"{field}: no {where[-1].split('_')[0]} mirror {shown(kind)}; use one of "
            f"{', '.join(sorted(table))}, or leave it empty for the image's default",
            field=field,
            code="unknown_mirror",
        )
    return table[kind]


def _pip(config: FastBuildInstallerConfig, native: dict[str, Any], fields: dict) -> None:
    versions = config.python_version or []
    if isinstance(versions, str):
        versions = [v.strip() for v in versions.split(",") if v.strip()]
    native["pip"] = {"packages": _entries(config, PIP, "pip"), "python_versions": versions}
    kind, _ = _source(config)
    if kind:
        native["pip"]["index_url"] = _mirror_of(PIP_INDEXES, kind, PIP)
    fields[("pip", "packages")] = (*PIP, "software_list")
    fields[("pip", "python_versions")] = (*PIP, "python_version")
    fields[("pip", "index_url")] = (*PIP, "source", "type")


def _conda(config: FastBuildInstallerConfig, native: dict[str, Any], fields: dict) -> None:
    native["conda"] = {"packages": _entries(config, CONDA, "conda")}
    kind, _ = _source(config)
    if kind:
        native["conda"]["channels"] = _mirror_of(CONDA_CHANNELS, kind, CONDA)
    fields[("conda", "packages")] = (*CONDA, "software_list")
    fields[("conda", "channels")] = (*CONDA, "source", "type")


def _secret(request: FastBuildRequest, name: str, *, key: bytes | None, iv: bytes | None) -> Any:
    """The first non-empty of the top-level field and its copies under dockerfile_json."""
    installers = request.dockerfile_json.image_installer_config
    candidates = [
        (getattr(request, name), name),
        (getattr(installers, name, None), f"{field_path(ROOT)}.{name}"),
        (getattr(request.dockerfile_json, name), f"dockerfile_json.{name}"),
    ]
    value, field = next(((v, f) for v, f in candidates if v), candidates[0])
    return decrypt_secret(value, field=field, key=key, iv=iv)


def to_native(
    body: dict[str, Any], *, key: bytes | None, iv: bytes | None
) -> tuple[dict[str, Any], dict[tuple[str, ...], tuple[str, ...]]]:
    """(native spec dict, native path → request path) for a FastBuild request body."""
    try:
        request = FastBuildRequest.model_validate(body)
    except ValidationError as exc:
        raise input_error(exc) from None
    task, dockerfile = request.task_data, request.dockerfile_json
    native: dict[str, Any] = {
        "base_image": dockerfile.base_image,
        "target_image": task.target_image_name,
        "task_name": task.task_name,
        "callback_url": task.callback_url or None,
        "maintainer": dockerfile.maintainer or "",
    }
    fields: dict[tuple[str, ...], tuple[str, ...]] = {
        ("base_image",): ("dockerfile_json", "base_image"),
        ("target_image",): ("task_data", "target_image_name"),
        ("task_name",): ("task_data", "task_name"),
        ("callback_url",): ("task_data", "callback_url"),
        ("maintainer",): ("dockerfile_json", "maintainer"),
        ("python", "install_loc"): (*ROOT, "python_env", "install_loc"),
    }
    installers = dockerfile.image_installer_config or FastBuildImageInstallerConfig()
    if installers.python_env is not None and installers.python_env.install_loc:
        native["python"] = {"install_loc": installers.python_env.install_loc}
    if installers.package_manager_installer_config is not None:
        _system(installers.package_manager_installer_config, native, fields)
    if installers.pip_installer_config is not None:
        _pip(installers.pip_installer_config, native, fields)
    if installers.conda_installer_config is not None:
        _conda(installers.conda_installer_config, native, fields)
    native["secrets"] = {
        "web_ssh": _secret(request, "webSSHSecret", key=key, iv=iv),
        "jupyter_lab": _secret(request, "jupyterLabSecret", key=key, iv=iv),
    }
    return native, fields

"""The build spec: slipway's own (`BuildSpec`), and FastBuild's request JSON converted to it.

`parse_build_request` takes either shape (FastBuild's has `task_data` / `dockerfile_json`) and
returns a checked `BuildSpec`, or raises one `InputError` whose `details.field` is the path of
the offending value *in the request as sent* (`task_data.target_image_name`,
`dockerfile_json.image_installer_config.pip_installer_config.software_list[2]`, `pip.packages[0]`).

Mirror profiles live in the database, so they are checked apart: `mirrors.check_mirrors(session,
spec)` after parsing, which names the same request paths.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import partial
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
)

from slipway.builds import spec_patterns as p
from slipway.builds.fastbuild_secrets import MAX_SECRET_BYTES
from slipway.core.errors import InputError

DEFAULT_INSTALL_LOC = "/opt/venv"
MAX_PACKAGES = 500

ImageRef = Annotated[str, AfterValidator(p.check_image)]
PushImageRef = Annotated[str, AfterValidator(partial(p.check_image, allow_digest=False))]
AptPackage = Annotated[str, AfterValidator(p.check_apt_package)]
YumPackage = Annotated[str, AfterValidator(p.check_yum_package)]
PipRequirement = Annotated[str, AfterValidator(p.check_pip_requirement)]
CondaSpec = Annotated[str, AfterValidator(p.check_conda_spec)]
CondaChannel = Annotated[str, AfterValidator(p.check_conda_channel)]
IndexUrl = Annotated[str, AfterValidator(p.check_url)]
TrustedHost = Annotated[str, AfterValidator(p.check_trusted_host)]
InstallLoc = Annotated[str, AfterValidator(p.check_install_loc)]
PythonVersion = Annotated[str, AfterValidator(p.check_python_version)]
LabelKey = Annotated[str, AfterValidator(p.check_label_key)]
LabelValue = Annotated[str, AfterValidator(p.check_label_value)]
TaskName = Annotated[str, AfterValidator(p.check_task_name)]
CallbackUrl = Annotated[str, AfterValidator(p.check_callback_url)]
MirrorType = Annotated[str, AfterValidator(p.check_mirror_type)]
MirrorFileName = Annotated[str, AfterValidator(p.check_mirror_file_name)]
EndpointName = Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MirrorRef(_Strict):
    """A mirror profile by FastBuild's names: source type (`ali`), file (`ubuntu-18.04.list`)."""

    type: MirrorType
    file_name: MirrorFileName


class AptSection(_Strict):
    mirror: MirrorRef | None = None
    packages: list[AptPackage] = Field(default_factory=list, max_length=MAX_PACKAGES)

    @field_validator("mirror")
    @classmethod
    def _is_apt_profile(cls, mirror: MirrorRef | None) -> MirrorRef | None:
        if mirror is not None and p.mirror_manager(mirror.file_name) != "apt":
            raise ValueError(f"{mirror.file_name!r} is a yum profile; apt needs a NAME.list file")
        return mirror


class YumSection(_Strict):
    mirror: MirrorRef | None = None
    packages: list[YumPackage] = Field(default_factory=list, max_length=MAX_PACKAGES)

    @field_validator("mirror")
    @classmethod
    def _is_yum_profile(cls, mirror: MirrorRef | None) -> MirrorRef | None:
        if mirror is not None and p.mirror_manager(mirror.file_name) != "yum":
            raise ValueError(f"{mirror.file_name!r} is an apt profile; yum needs a NAME.repo file")
        return mirror


class PythonEnv(_Strict):
    """Where pip packages go: a venv made from the image's own python3 (or pythonX.Y)."""

    install_loc: InstallLoc = DEFAULT_INSTALL_LOC


class PipSection(_Strict):
    index_url: IndexUrl | None = None
    extra_index_urls: list[IndexUrl] = Field(default_factory=list, max_length=10)
    trusted_hosts: list[TrustedHost] = Field(default_factory=list, max_length=10)
    packages: list[PipRequirement] = Field(default_factory=list, max_length=MAX_PACKAGES)
    # Empty: one venv at install_loc from python3. Else one venv per version at install_loc/X.Y.
    python_versions: list[PythonVersion] = Field(default_factory=list, max_length=5)


class CondaSection(_Strict):
    channels: list[CondaChannel] = Field(default_factory=list, max_length=10)
    packages: list[CondaSpec] = Field(default_factory=list, max_length=MAX_PACKAGES)


def _check_secret(value: SecretStr | None) -> SecretStr | None:
    if value is None or not value.get_secret_value():
        return None
    text = value.get_secret_value()
    if len(text.encode()) > MAX_SECRET_BYTES or "\n" in text or "\x00" in text:
        raise ValueError(f"a password of at most {MAX_SECRET_BYTES} bytes without newlines")
    return value


class BuildSecrets(_Strict):
    """Plaintext passwords for SSH (root) and JupyterLab; only their hashes reach the image."""

    web_ssh: Annotated[SecretStr | None, AfterValidator(_check_secret)] = None
    jupyter_lab: Annotated[SecretStr | None, AfterValidator(_check_secret)] = None

    @property
    def is_empty(self) -> bool:
        return self.web_ssh is None and self.jupyter_lab is None


class BuildSpec(_Strict):
    """What slipway stores and renders a Dockerfile from. `secrets` is never serialized."""

    base_image: ImageRef
    target_image: PushImageRef
    task_name: TaskName
    callback_url: CallbackUrl | None = None
    maintainer: LabelValue = ""
    push: bool = True
    endpoint: EndpointName | None = None
    apt: AptSection | None = None
    yum: YumSection | None = None
    python: PythonEnv = Field(default_factory=PythonEnv)
    pip: PipSection = Field(default_factory=PipSection)
    conda: CondaSection = Field(default_factory=CondaSection)
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=64)
    secrets: BuildSecrets = Field(default_factory=BuildSecrets, exclude=True)

    # "native" or "fastbuild", and where this spec's fields were in the request as sent.
    _source_format: str = PrivateAttr(default="native")
    _field_map: dict[tuple[str, ...], tuple[str, ...]] = PrivateAttr(default_factory=dict)

    @property
    def source_format(self) -> str:
        return self._source_format

    def request_field(self, *native: str | int) -> str:
        """The path of a native field (`"apt", "mirror", "type"`) in the request as sent."""
        return field_path(_translate(tuple(native), self._field_map))

    @property
    def system(self) -> AptSection | YumSection | None:
        return self.apt or self.yum


# --- errors ---------------------------------------------------------------------------------------

# What to say when a required field is missing, by its path in the request.
REQUIRED_HINTS = {
    "task_data": "an object with task_name, target_image_name and callback_url",
    "task_data.task_name": "a name for this build, e.g. team-app-1714116639",
    "task_data.target_image_name": (
        "the image to build and push, e.g. registry.example.com/team/app:1.0"
    ),
    "dockerfile_json": "an object with base_image, maintainer and image_installer_config",
    "dockerfile_json.base_image": "the image to start from, e.g. ubuntu:22.04",
    "base_image": "the image to start from, e.g. ubuntu:22.04",
    "target_image": "the image to build and push, e.g. registry.example.com/team/app:1.0",
    "task_name": "a name for this build, e.g. team-app-1",
}  # fmt: skip


def field_path(loc: tuple[str | int, ...]) -> str:
    """`("a", "b", 2, "c")` → `a.b[2].c`."""
    out = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker for a dict key: the key itself is the place
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _translate(
    loc: tuple[str | int, ...], field_map: Mapping[tuple[str, ...], tuple[str, ...]]
) -> tuple[str | int, ...]:
    """A native location rewritten to where the value was in the request (longest prefix)."""
    for size in range(len(loc), 0, -1):
        target = field_map.get(loc[:size])  # type: ignore[arg-type]
        if target is not None:
            return (*target, *loc[size:])
    return loc


def _problem(error: Any, path: str) -> str:
    kind = error["type"]
    if kind == "missing" or (kind == "string_too_short" and error.get("input") == ""):
        hint = REQUIRED_HINTS.get(path)
        return f"{path} is required" + (f": {hint}" if hint else "")
    if kind == "extra_forbidden":
        return f"{path} is not a field of the build spec; remove it (see docs/builds.md)"
    if kind == "value_error":
        return f"{path}: {error['ctx']['error']}"
    return f"{path}: {error['msg']}"


def input_error(
    exc: ValidationError, field_map: Mapping[tuple[str, ...], tuple[str, ...]] | None = None
) -> InputError:
    """One InputError for a ValidationError: the first problem in the message, all in details."""
    problems = []
    for error in exc.errors():
        path = field_path(_translate(tuple(error["loc"]), field_map or {}))
        problems.append({"field": path, "problem": _problem(error, path), "type": error["type"]})
    first = problems[0]
    more = (
        f" (and {len(problems) - 1} more problems, in details.errors)" if len(problems) > 1 else ""
    )
    return InputError(
        first["problem"] + more,
        code="invalid_build_spec",
        details={"field": first["field"], "errors": problems},
    )


# --- parsing --------------------------------------------------------------------------------------


def is_fastbuild_request(body: Mapping[str, Any]) -> bool:
    return "task_data" in body or "dockerfile_json" in body


def _key_bytes(value: bytes | str | SecretStr | None) -> bytes | None:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, str):
        value = value.encode()
    return value or None


def parse_build_request(
    body: object,
    *,
    fastbuild_key: bytes | str | SecretStr | None,
    fastbuild_iv: bytes | str | SecretStr | None,
) -> BuildSpec:
    """A checked BuildSpec from FastBuild's request JSON or a native spec; InputError if not."""
    from slipway.builds import fastbuild_spec

    if not isinstance(body, dict):
        raise InputError(
            "the build request must be a JSON object: FastBuild's request or a native spec",
            field="body",
            code="invalid_build_spec",
        )
    field_map: dict[tuple[str, ...], tuple[str, ...]] = {}
    source_format = "native"
    data: dict[str, Any] = body
    if is_fastbuild_request(body):
        source_format = "fastbuild"
        data, field_map = fastbuild_spec.to_native(
            body, key=_key_bytes(fastbuild_key), iv=_key_bytes(fastbuild_iv)
        )
    try:
        spec = BuildSpec.model_validate(data)
    except ValidationError as exc:
        raise input_error(exc, field_map) from None
    spec._source_format = source_format
    spec._field_map = field_map
    _check_consistency(spec)
    return _canonical(spec)


def _duplicate(entries: list[str], key: Any) -> int | None:
    """The index of the first entry whose key an earlier entry has."""
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        name = key(entry)
        if name in seen:
            return index
        seen.add(name)
    return None


def _check_consistency(spec: BuildSpec) -> None:
    """What no single field shows: one package manager, each package listed once."""
    if spec.apt is not None and spec.yum is not None:
        raise InputError(
            "give apt or yum, not both: an image has one system package manager",
            field=spec.request_field("yum"),
            code="invalid_build_spec",
        )
    sections: list[tuple[str, list[str], Any]] = [("pip", spec.pip.packages, p.pip_name)]
    sections.append(("conda", spec.conda.packages, p.package_name))
    if spec.apt is not None:
        sections.append(("apt", spec.apt.packages, p.package_name))
    if spec.yum is not None:
        sections.append(("yum", spec.yum.packages, p.package_name))
    for section, entries, key in sections:
        index = _duplicate(entries, key)
        if index is not None:
            field = spec.request_field(section, "packages", index)
            raise InputError(
                f"{field}: {entries[index]!r} is listed twice; keep one entry per package",
                field=field,
                code="invalid_build_spec",
            )


def _canonical(spec: BuildSpec) -> BuildSpec:
    """Package lists sorted (their order means nothing), so equal specs hash equal.

    Channels, index URLs and Python versions keep their order: it is a priority.
    """
    spec.pip.packages = sorted(spec.pip.packages, key=lambda r: (p.pip_name(r), r))
    spec.conda.packages = sorted(spec.conda.packages)
    if spec.system is not None:
        spec.system.packages = sorted(spec.system.packages)
    return spec


def public_dict(spec: BuildSpec) -> dict[str, Any]:
    """The spec as stored and returned: JSON types, every field, no secrets.

    `BuildSpec.model_validate(public_dict(spec))` gives the spec back, without its secrets.
    """
    return spec.model_dump(mode="json")


def spec_hash(spec: BuildSpec) -> str:
    """sha256 of the canonical JSON of `public_dict(spec)`: equal specs, equal hashes.

    Secrets do not count (they are not public); the rendered context's `digest` does count them.
    """
    canonical = json.dumps(
        public_dict(spec), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()

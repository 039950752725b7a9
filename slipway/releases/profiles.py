"""Deploy profiles: the deploy/start/stop scripts slipway supplies for packages that bring none.

A project of kind `wecube` runs the scripts in its package (`N_deploy.sh`, `start.sh`,
`stop.sh`). Any other kind names a profile: a YAML data file with shell scripts, built in
(`profile_library/`: jar, war, static, node) or added by the user in a directory of
`SLIPWAY_RELEASE_PROFILE_DIRS` (a user file of the same name wins). Scripts run with `sh` on the
host, in the release directory, with the SLIPWAY_* variables of `script_environment`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from slipway.core.config import Settings
from slipway.core.errors import InputError

LIBRARY_DIR = Path(__file__).resolve().parent / "profile_library"
PACKAGE_KIND = "wecube"
SCRIPT_NAMES = ("deploy", "start", "stop")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class Profile:
    name: str
    description: str = ""
    scripts: dict[str, str] = field(default_factory=dict)
    source: str = "built-in"


def _read(path: Path, source: str) -> Profile:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"profile file {path} cannot be read: {exc}", code="bad_profile") from exc
    scripts = data.get("scripts") or {}
    unknown = set(scripts) - set(SCRIPT_NAMES)
    if not isinstance(scripts, dict) or unknown:
        raise InputError(
            f"profile file {path}: scripts may only be {', '.join(SCRIPT_NAMES)}",
            code="bad_profile",
        )
    return Profile(
        name=path.stem,
        description=" ".join(str(data.get("description", "")).split()),
        scripts={name: str(text) for name, text in scripts.items() if text},
        source=source,
    )


def load_profiles(settings: Settings) -> dict[str, Profile]:
    profiles: dict[str, Profile] = {}
    for directory, source in [(LIBRARY_DIR, "built-in")] + [
        (Path(d), str(d)) for d in settings.release_profile_dirs
    ]:
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.yaml")):
            if _NAME.match(path.stem) and path.stem != PACKAGE_KIND:
                profiles[path.stem] = _read(path, source)
    return profiles


def kinds(settings: Settings) -> list[str]:
    return [PACKAGE_KIND, *sorted(load_profiles(settings))]


def check_kind(settings: Settings, kind: str) -> str:
    if kind == PACKAGE_KIND or kind in load_profiles(settings):
        return kind
    raise InputError(
        f"unknown project kind {kind!r}; use one of {', '.join(kinds(settings))} "
        "(or add a profile file to a directory of SLIPWAY_RELEASE_PROFILE_DIRS)",
        field="kind",
        code="unknown_project_kind",
    )


def get_profile(settings: Settings, kind: str) -> Profile | None:
    """The profile of a project kind; None for `wecube`, whose packages bring their scripts."""
    if kind == PACKAGE_KIND:
        return None
    profile = load_profiles(settings).get(kind)
    if profile is None:
        check_kind(settings, kind)
    return profile

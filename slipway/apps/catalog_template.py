"""One app template in Websoft9's docker-library layout, and a directory of them.

An app folder holds `docker-compose.yml`, `.env` (the `W9_*` settings), `variables.json` (name,
trademark, editions, requirements) and optionally `src/`, `README.md`, `Notes.md`,
`CHANGELOG.md`. A folder that cannot be read is skipped with the reason, never failing the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from slipway.apps.catalog_env import EnvFileError, is_reference, parse_env
from slipway.core.errors import ConflictError

COMPOSE_FILES = ("docker-compose.yml", "docker-compose.yaml", "compose.yaml", "compose.yml")
MARKER_FILES = (*COMPOSE_FILES, ".env", "variables.json")
VERSION_FILES = ("catalog.json", "version.json")
KEY_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$")
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:g|gb|gib)?\s*$", re.IGNORECASE)


class TemplateError(ValueError):
    """Why an app folder is not a usable template."""


@dataclass(frozen=True)
class Edition:
    dist: str
    versions: list[str]


@dataclass(frozen=True)
class Requirements:
    """What an app needs of the engine's machine; 0 when the template does not say."""

    cpu: float = 0.0
    memory_gb: float = 0.0
    disk_gb: float = 0.0
    url: str | None = None


@dataclass(frozen=True)
class Setting:
    """One `W9_*` variable of the template's `.env`."""

    name: str
    default: str
    is_password: bool
    is_required: bool
    is_settable: bool
    is_reference: bool


@dataclass(frozen=True)
class CatalogApp:
    """An installable template.

    - `env_defaults`: every variable of `.env`, raw (quotes removed, `$VAR` kept), in file order.
    - `password_settings`: the `W9_*` names containing PASSWORD whose default is a value, not a
      reference to another variable (`W9_LOGIN_PASSWORD=$W9_POWER_PASSWORD` follows the one it
      names). Their template defaults are samples: an install generates the ones it is not given.
    - `required_settings`: the user settings (`W9_*_SET`) whose default is empty: an install must
      be given them. Empty passwords are not among them, since an install generates those.
    - `default_version`: `W9_VERSION` of `.env` (the version the template was written for), else
      the first version of the default edition, which is the edition named by `W9_DIST`.
    """

    key: str
    name: str
    trademark: str
    path: Path
    compose_file: Path
    editions: list[Edition]
    default_edition: str
    default_version: str
    requirements: Requirements
    env_defaults: dict[str, str]
    required_settings: list[str]
    password_settings: list[str]
    http_port_setting: str | None
    network: str | None
    content_hash: str
    source: str = ""
    catalog_version: str = ""
    allow_privileged: bool = False
    variables: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def edition(self, dist: str) -> Edition | None:
        return next((e for e in self.editions if e.dist == dist), None)

    def version_ok(self, edition: str, version: str) -> bool:
        """True when `version` is one the template offers for `edition`."""
        found = self.edition(edition)
        return found is not None and version in found.versions

    @property
    def settings(self) -> list[Setting]:
        return [
            Setting(
                name=name,
                default=value,
                is_password="PASSWORD" in name,
                is_required=name in self.required_settings,
                is_settable=name.endswith("_SET") or name in self.password_settings,
                is_reference=is_reference(value),
            )
            for name, value in self.env_defaults.items()
            if name.startswith("W9_")
        ]

    @property
    def readme(self) -> str | None:
        return _read_optional(self.path / "README.md")

    @property
    def notes(self) -> str | None:
        return _read_optional(self.path / "Notes.md")

    @property
    def changelog(self) -> str | None:
        return _read_optional(self.path / "CHANGELOG.md")

    def copy_to(self, dest: Path) -> Path:
        """Copy the app folder to `dest` (which must not exist) all at once: into a temporary
        sibling first, renamed into place when complete; nothing is left behind on failure."""
        if dest.exists() or dest.is_symlink():
            raise ConflictError(f"{dest} already exists; remove it first", code="path_exists")
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = dest.with_name(f".{dest.name}.copy-{uuid.uuid4().hex[:8]}")
        try:
            shutil.copytree(self.path, staging, symlinks=True)
            staging.rename(dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return dest


@dataclass(frozen=True)
class ScanResult:
    """The templates of one directory: usable apps by key, and skipped folders with reasons."""

    root: Path
    apps: dict[str, CatalogApp]
    skipped: dict[str, str]
    declared_version: str | None
    content_hash: str

    @property
    def version(self) -> str:
        return self.declared_version or self.content_hash[:12]


def _read_optional(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def tree_hash(root: Path) -> str:
    """SHA-256 over every path, file content, link target and executable bit under `root`."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames + [d for d in dirnames if Path(dirpath, d).is_symlink()]):
            path = Path(dirpath, name)
            relative = path.relative_to(root).as_posix()
            if path.is_symlink():
                digest.update(f"L {relative} {os.readlink(path)}\n".encode())
                continue
            executable = "x" if os.access(path, os.X_OK) else "-"
            digest.update(f"F {relative} {executable} {path.stat().st_size}\n".encode())
            with open(path, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 16), b""):
                    digest.update(chunk)
    return digest.hexdigest()


def _versions(raw: object, where: str) -> list[str]:
    items = raw if isinstance(raw, list) else [raw]
    versions = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise TemplateError(f"{where} must be a version string or a list of them")
        if str(item).strip():
            versions.append(str(item).strip())
    return versions


def _editions(variables: dict[str, Any], env: dict[str, str]) -> tuple[list[Edition], str, str]:
    env_dist = env.get("W9_DIST", "").strip()
    env_version = env.get("W9_VERSION", "").strip()
    editions: list[Edition] = []
    raw = variables.get("edition")
    if raw is not None:
        if not isinstance(raw, list) or not raw:
            raise TemplateError('variables.json "edition" must be a non-empty list')
        for index, item in enumerate(raw):
            where = f'variables.json "edition"[{index}]'
            if not isinstance(item, dict) or not isinstance(item.get("dist"), str):
                raise TemplateError(f'{where} needs a "dist" string and a "version"')
            if any(e.dist == item["dist"] for e in editions):
                raise TemplateError(f"{where}: edition {item['dist']!r} is listed twice")
            versions = _versions(item.get("version", []), f'{where}."version"')
            editions.append(Edition(dist=item["dist"], versions=list(dict.fromkeys(versions))))
    else:
        # Older templates: one top-level "version" and the edition named by W9_DIST.
        versions = _versions(variables.get("version", ""), 'variables.json "version"')
        editions.append(Edition(dist=env_dist or "community", versions=versions))
    default = next((e for e in editions if e.dist == env_dist), editions[0])
    if env_version and env_version not in default.versions:
        index = editions.index(default)
        default = Edition(dist=default.dist, versions=[env_version, *default.versions])
        editions[index] = default
    if not default.versions:
        raise TemplateError(
            f"edition {default.dist!r} has no version: list one in variables.json or set "
            "W9_VERSION in .env"
        )
    return editions, default.dist, env_version or default.versions[0]


def _requirements(raw: object) -> Requirements:
    if raw is None:
        return Requirements()
    if not isinstance(raw, dict):
        raise TemplateError('variables.json "requirements" must be an object')
    values: dict[str, float] = {}
    for name in ("cpu", "memory", "disk"):
        value = raw.get(name)
        if value in (None, ""):
            values[name] = 0.0
            continue
        match = _NUMBER.match(str(value)) if not isinstance(value, bool) else None
        if match is None:
            raise TemplateError(
                f'variables.json requirements "{name}" is {value!r}: use a number of '
                f'{"cores" if name == "cpu" else "GB"}, e.g. "1"'
            )
        values[name] = float(match.group(1))
    url = raw.get("url") if isinstance(raw.get("url"), str) else None
    return Requirements(values["cpu"], values["memory"], values["disk"], url)


def parse_app(folder: Path) -> CatalogApp:
    """The template in `folder`; raises TemplateError saying why it is not usable."""
    key = folder.name
    if not KEY_PATTERN.match(key):
        raise TemplateError(
            "the folder name is not a valid app key: use lowercase letters, digits, '.', '_' or "
            "'-', starting and ending with a letter or digit"
        )
    compose = next((folder / n for n in COMPOSE_FILES if (folder / n).is_file()), None)
    if compose is None:
        raise TemplateError("no docker-compose.yml")
    try:
        document = yaml.safe_load(compose.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{compose.name} is not valid YAML: {str(exc)[:200]}") from None
    if not isinstance(document, dict) or not isinstance(document.get("services"), dict):
        raise TemplateError(f"{compose.name} has no services")
    try:
        env = parse_env((folder / ".env").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TemplateError("no .env") from None
    except (EnvFileError, UnicodeDecodeError) as exc:
        raise TemplateError(str(exc)) from None
    try:
        variables = json.loads((folder / "variables.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TemplateError("no variables.json") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise TemplateError(f"variables.json is not valid JSON: {exc}") from None
    if not isinstance(variables, dict):
        raise TemplateError("variables.json must hold a JSON object")
    editions, default_edition, default_version = _editions(variables, env)
    w9 = [name for name in env if name.startswith("W9_")]
    passwords = [n for n in w9 if "PASSWORD" in n and not is_reference(env[n])]
    name = variables.get("name") if isinstance(variables.get("name"), str) else None
    trademark = variables.get("trademark") if isinstance(variables.get("trademark"), str) else None
    return CatalogApp(
        key=key,
        name=name or key,
        trademark=trademark or name or key,
        path=folder,
        compose_file=compose,
        editions=editions,
        default_edition=default_edition,
        default_version=default_version,
        requirements=_requirements(variables.get("requirements")),
        env_defaults=env,
        required_settings=[n for n in w9 if n.endswith("_SET") and not env[n].strip()],
        password_settings=passwords,
        http_port_setting="W9_HTTP_PORT_SET" if "W9_HTTP_PORT_SET" in env else None,
        network=env.get("W9_NETWORK") or None,
        content_hash=tree_hash(folder),
        variables=variables,
    )


def is_app_folder(path: Path) -> bool:
    return path.is_dir() and any((path / name).exists() for name in MARKER_FILES)


def find_apps_root(root: Path) -> Path:
    """Where the app folders are: `root` itself, its `apps/` (the docker-library layout), or the
    same inside the one directory an archive wraps everything in."""
    for _ in range(2):
        entries = [p for p in root.iterdir() if not p.name.startswith(".")]
        if any(is_app_folder(p) for p in entries):
            return root
        if (root / "apps").is_dir():
            return root / "apps"
        directories = [p for p in entries if p.is_dir()]
        if len(entries) == 1 and directories:
            root = directories[0]
            continue
        break
    return root


def declared_version(root: Path, top: Path | None = None) -> str | None:
    """The version a source declares in catalog.json / version.json, at `root` or above it up to
    `top`: {"version": …}, {"VERSION": …} or {"LIBRARY": {"VERSION": …}}."""
    directory = root
    while True:
        for name in VERSION_FILES:
            try:
                document = json.loads((directory / name).read_text(encoding="utf-8"))
            except (OSError, ValueError, UnicodeDecodeError):
                continue
            if not isinstance(document, dict):
                continue
            library = document.get("LIBRARY")
            for value in (
                document.get("version"),
                document.get("VERSION"),
                library.get("VERSION") if isinstance(library, dict) else None,
            ):
                if isinstance(value, str) and VERSION_PATTERN.match(value):
                    return value
        if top is None or directory == top or directory.parent == directory:
            return None
        directory = directory.parent


def scan(root: Path, *, top: Path | None = None) -> ScanResult:
    """Every app folder under `root` (see find_apps_root); hidden folders are ignored."""
    apps_root = find_apps_root(root)
    apps: dict[str, CatalogApp] = {}
    skipped: dict[str, str] = {}
    for folder in sorted(apps_root.iterdir()):
        if folder.name.startswith((".", "_")) or not is_app_folder(folder):
            continue
        try:
            apps[folder.name] = parse_app(folder)
        except TemplateError as exc:
            skipped[folder.name] = str(exc)
        except OSError as exc:
            skipped[folder.name] = f"cannot be read: {exc.strerror or exc}"
    version = declared_version(apps_root, top or root)
    digest = hashlib.sha256(f"version {version}\n".encode())
    for key, app in apps.items():
        digest.update(f"app {key} {app.content_hash}\n".encode())
    for folder, reason in skipped.items():
        digest.update(f"skipped {folder} {reason}\n".encode())
    return ScanResult(apps_root, apps, skipped, version, digest.hexdigest())


@lru_cache(maxsize=64)
def scan_cached(root: str) -> ScanResult:
    """`scan` for a directory that never changes once written (a snapshot, the built-in one)."""
    return scan(Path(root))

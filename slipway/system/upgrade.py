"""What a newer release would change: core and catalog ("app-store") upgrades, as in Websoft9.

The release manifest (SLIPWAY_RELEASE_MANIFEST, a file path or an http(s) URL) has the shape of
Websoft9's version.json:

    {"VERSION": "0.2.0", "SERVICES": {...}, "LIBRARY": {"VERSION": "1.1.0"},
     "OS_SUPPORT": {"Ubuntu": ["22.04", "24.04"], "Debian": ["12"]}}

A core upgrade is offered when VERSION is newer than this slipway, and allowed only on an
operating system OS_SUPPORT lists (slipway's own list when the manifest has none). A catalog
upgrade is offered for each source whose declared version is older than LIBRARY.VERSION.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session

from slipway import __version__
from slipway.apps.catalog import load_catalog
from slipway.apps.catalog_fetch import display_location, is_url
from slipway.core.config import Settings
from slipway.core.errors import ExternalServiceError
from slipway.core.version import OS_SUPPORT, os_release

OS_RELEASE_PATH = Path("/etc/os-release")
MAX_MANIFEST_BYTES = 1 << 20
FETCH_TIMEOUT = 10.0
_SEMVER = re.compile(
    r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)


def parse_version(value: str) -> tuple[Any, ...] | None:
    """A sortable key for a semantic version (`1.2`, `1.2.3`, `1.2.3-rc.1`), or None."""
    match = _SEMVER.match(value.strip())
    if match is None:
        return None
    major, minor, patch, pre = match.groups()
    release = (int(major), int(minor or 0), int(patch or 0))
    if pre is None:
        return (*release, 1, ())
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (*release, 0, parts)


def is_newer(available: str, current: str) -> bool | None:
    """True when `available` is a newer version than `current`; None when either is not one."""
    a, c = parse_version(available), parse_version(current)
    if a is None or c is None:
        return None
    return a > c


def _invalid(location: str, problem: str) -> ExternalServiceError:
    return ExternalServiceError(
        f"the release manifest at {display_location(location)} is not valid: {problem}; it must "
        'be a JSON object like {"VERSION": "0.2.0", "LIBRARY": {"VERSION": "1.1.0"}, '
        '"OS_SUPPORT": {"Ubuntu": ["22.04"]}}',
        code="release_manifest_invalid",
        details={"manifest": display_location(location)},
    )


def read_manifest(location: str) -> dict[str, Any]:
    """The manifest at `location`, checked; 502 when it cannot be read or is not valid."""
    shown = display_location(location)
    try:
        if is_url(location):
            response = httpx.get(location, timeout=FETCH_TIMEOUT, follow_redirects=True)
            if response.status_code >= 400:
                raise ExternalServiceError(
                    f"the release manifest at {shown} answered HTTP {response.status_code}; "
                    "check SLIPWAY_RELEASE_MANIFEST",
                    code="release_manifest_unreachable",
                    details={"manifest": shown, "status": response.status_code},
                )
            raw = response.content
        else:
            path = Path(location.removeprefix("file://"))
            if path.is_file() and path.stat().st_size > MAX_MANIFEST_BYTES:
                raise _invalid(location, f"it is larger than {MAX_MANIFEST_BYTES} bytes")
            raw = path.read_bytes()
    except httpx.HTTPError as exc:
        raise ExternalServiceError(
            f"cannot fetch the release manifest at {shown}: {type(exc).__name__}; check "
            "SLIPWAY_RELEASE_MANIFEST and that slipway can reach it",
            code="release_manifest_unreachable",
            details={"manifest": shown},
        ) from None
    except OSError as exc:
        raise ExternalServiceError(
            f"cannot read the release manifest {shown}: {exc.strerror or exc}; check "
            "SLIPWAY_RELEASE_MANIFEST",
            code="release_manifest_unreachable",
            details={"manifest": shown},
        ) from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise _invalid(location, f"it is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        manifest = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _invalid(location, "it is not JSON") from None
    return _check(location, manifest)


def _check(location: str, manifest: object) -> dict[str, Any]:
    if not isinstance(manifest, dict):
        raise _invalid(location, "it is not a JSON object")
    version = manifest.get("VERSION")
    if not isinstance(version, str) or parse_version(version) is None:
        raise _invalid(location, f"VERSION is {version!r}, not a version like 0.2.0")
    library = manifest.get("LIBRARY", {})
    if not isinstance(library, dict) or not isinstance(library.get("VERSION", ""), str):
        raise _invalid(location, 'LIBRARY must be an object like {"VERSION": "1.1.0"}')
    os_support = manifest.get("OS_SUPPORT")
    if os_support is not None and not (
        isinstance(os_support, dict)
        and all(
            isinstance(v, list) and all(isinstance(x, str | int | float) for x in v)
            for v in os_support.values()
        )
    ):
        raise _invalid(location, 'OS_SUPPORT must map a system to versions: {"Ubuntu": ["22.04"]}')
    services = manifest.get("SERVICES", {})
    if not isinstance(services, dict):
        raise _invalid(location, "SERVICES must be an object")
    return manifest


def _normalized(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def os_support_of(release: dict[str, str], os_support: dict[str, list[Any]]) -> dict[str, Any]:
    """Whether the system described by os-release `release` is listed in `os_support`."""
    name = release.get("NAME", "")
    version = release.get("VERSION_ID", "")
    ids = {_normalized(i) for i in [release.get("ID", ""), *release.get("ID_LIKE", "").split()]}
    for system, versions in os_support.items():
        key = _normalized(system)
        if not key or not (_normalized(name).startswith(key) or key in ids):
            continue
        listed = [str(v) for v in versions]
        ok = bool(version) and any(version == v or version.startswith(v + ".") for v in listed)
        return {"name": name, "version": version, "system": system, "is_supported": ok}
    return {"name": name, "version": version, "system": None, "is_supported": False}


def check_upgrade(session: Session, settings: Settings) -> dict[str, Any]:
    """Current versions against the release manifest's; see the module docstring."""
    catalog = load_catalog(session, settings)
    sources = [{"name": name, "current": version} for name, version in catalog.versions.items()]
    release = os_release(OS_RELEASE_PATH)
    if not settings.release_manifest:
        return {
            "is_configured": False,
            "manifest": None,
            "message": "no release manifest is configured: set SLIPWAY_RELEASE_MANIFEST to the "
            "path or URL of a version.json to learn about upgrades",
            "core": {
                "current": __version__,
                "available": None,
                "is_available": False,
                "may_upgrade": False,
                "os": os_support_of(release, OS_SUPPORT),
            },
            "catalog": {"available": None, "is_available": False, "sources": sources},
            "services": {},
        }
    manifest = read_manifest(settings.release_manifest)
    available = manifest["VERSION"]
    is_available = bool(is_newer(available, __version__))
    system = os_support_of(release, manifest.get("OS_SUPPORT") or OS_SUPPORT)
    library = manifest.get("LIBRARY", {}).get("VERSION") or None
    for source in sources:
        source["is_available"] = is_newer(library, source["current"]) if library else False
    catalog_available = any(source["is_available"] for source in sources)
    if not is_available:
        message = f"slipway {__version__} is the newest release ({available})"
    elif system["is_supported"]:
        message = f"slipway {available} is available and this system may take it"
    else:
        message = (
            f"slipway {available} is available, but {system['name'] or 'this system'} "
            f"{system['version']} is not among the systems it supports"
        )
    if catalog_available:
        message += f"; catalog {library} is available: refresh the sources marked is_available"
    return {
        "is_configured": True,
        "manifest": display_location(settings.release_manifest),
        "message": message,
        "core": {
            "current": __version__,
            "available": available,
            "is_available": is_available,
            "may_upgrade": is_available and system["is_supported"],
            "os": system,
        },
        "catalog": {"available": library, "is_available": catalog_available, "sources": sources},
        "services": manifest.get("SERVICES", {}),
    }

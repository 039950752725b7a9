"""The version manifest, in the spirit of Websoft9's version.json."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from slipway import __version__

# Operating systems slipway is tested on and may be upgraded on (Websoft9's OS_SUPPORT).
OS_SUPPORT: dict[str, list[str]] = {
    "Debian": ["11", "12", "13"],
    "Ubuntu": ["20.04", "22.04", "24.04"],
    "RedHat": ["8", "9"],
    "Rocky": ["8", "9"],
}


def os_release(path: Path = Path("/etc/os-release")) -> dict[str, str]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    pairs = (line.split("=", 1) for line in lines if "=" in line)
    return {name: value.strip().strip('"') for name, value in pairs}


def running_os() -> dict[str, Any]:
    release = os_release()
    name = release.get("NAME", platform.system()).split()[0]
    version = release.get("VERSION_ID", "")
    supported = OS_SUPPORT.get(name)
    is_supported = supported is not None and any(
        version == v or version.startswith(v + ".") for v in supported
    )
    return {"name": name, "version": version, "is_supported": is_supported}


def manifest(*, schema_revision: str | None, schema_head: str | None) -> dict[str, Any]:
    return {
        "version": __version__,
        "components": {
            "api": __version__,
            "worker": __version__,
            "schema": {"current": schema_revision, "head": schema_head},
            "catalog": None,
        },
        "os_support": OS_SUPPORT,
        "os": running_os(),
        "python": platform.python_version(),
    }

"""Docker image references: which registry host a name points at, and its repository and tag."""

from __future__ import annotations

import re

# The host part of a reference has a dot or a port, or is `localhost` (Docker's own rule).
_HOST = re.compile(r"^(localhost|[^/]*[.:][^/]*)$")


def registry_host(image: str) -> str | None:
    """`10.101.12.128` for `10.101.12.128/ns/app:1`; None for a Docker Hub name like `ubuntu`."""
    first, _, rest = image.partition("/")
    if rest and _HOST.match(first):
        return first
    return None


def split_image(image: str) -> tuple[str, str]:
    """(repository, tag): `127.0.0.1:5000/x/y:1` → (`127.0.0.1:5000/x/y`, `1`); tag defaults."""
    name, _, digest = image.partition("@")
    if digest:
        raise ValueError("an image to build is named by tag, not by digest")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :]
    return name, "latest"

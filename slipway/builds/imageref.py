"""Docker image references: repository and tag, and the path a registry knows an image by.

Which registry host a reference names is `targets.registry_checks.image_host`.
"""

from __future__ import annotations


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


def registry_path(image: str) -> tuple[str, str]:
    """(path in its registry, tag): `127.0.0.1:5000/x/y:1` → (`x/y`, `1`)."""
    repository, tag = split_image(image)
    return repository.split("/", 1)[1], tag

"""Checks of an endpoint's fields before anything is saved; each refusal names the field."""

from __future__ import annotations

import ipaddress
import re
import urllib.parse

from slipway.core.errors import InputError
from slipway.targets.tls import TLSUpload

NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
HOST_PATTERN = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
LABEL_KEY_PATTERN = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,126}[A-Za-z0-9])?$")
MAX_URL_LENGTH = 255
MAX_LABELS = 64
MAX_LABEL_VALUE = 1024
MAX_DESCRIPTION = 2048


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise InputError(
            f"name {name[:80]!r} is not a DNS label: use 1-63 lowercase letters, digits or '-', "
            "starting and ending with a letter or digit",
            field="name",
        )
    return name


def check_url(url: str, *, field: str = "url") -> str:
    """`unix:///path` or `tcp://host:port`, normalized; anything else is refused naming `field`."""
    usage = "use unix:///path/to/docker.sock or tcp://host:port (e.g. tcp://10.0.0.5:2376)"
    if len(url) > MAX_URL_LENGTH or any(ord(c) < 33 for c in url):
        raise InputError(f"{field} is not a Docker engine address: {usage}", field=field)
    if url.startswith("unix://"):
        path = url[len("unix://") :]
        if not path.startswith("/") or "?" in path or "#" in path or path.endswith("/"):
            raise InputError(f"{field} {url!r} needs an absolute socket path: {usage}", field=field)
        return url
    if not url.startswith("tcp://"):
        raise InputError(
            f"{field} {url[:80]!r} is not a Docker engine address: {usage}", field=field
        )
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or ""
    is_clean = (
        port is not None
        and port > 0
        and parts.path in ("", "/")
        and not parts.query
        and not parts.fragment
        and parts.username is None
    )
    if not is_clean or not is_host(host):
        raise InputError(f"{field} {url!r} is not tcp://host:port: {usage}", field=field)
    shown = f"[{host}]" if ":" in host else host
    return f"tcp://{shown}:{port}"


def is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(HOST_PATTERN.match(host)) and ".." not in host


def check_labels(labels: dict[str, str]) -> dict[str, str]:
    if len(labels) > MAX_LABELS:
        raise InputError(f"labels: at most {MAX_LABELS} labels", field="labels")
    for label_key, value in labels.items():
        if not LABEL_KEY_PATTERN.match(label_key):
            raise InputError(
                f"label {label_key[:80]!r} is not a valid key: use 1-128 letters, digits, '.', "
                "'_', '/' or '-', starting and ending with a letter or digit",
                field="labels",
            )
        if len(value) > MAX_LABEL_VALUE:
            raise InputError(
                f"label {label_key!r}: values are at most {MAX_LABEL_VALUE} characters",
                field="labels",
            )
    return dict(sorted(labels.items()))


def check_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION:
        raise InputError(
            f"description is longer than {MAX_DESCRIPTION} characters: shorten it",
            field="description",
        )
    return description


def check_tls_fits(url: str, has_tls: bool, *, field: str) -> None:
    if has_tls and url.startswith("unix://"):
        raise InputError(
            "TLS material applies to tcp:// endpoints only: use a tcp://host:port url, or leave "
            "out ca, cert and key (and set remove_tls when changing an endpoint to unix://)",
            field=field,
            code="invalid_tls_material",
        )


def tls_field(upload: TLSUpload | None) -> str:
    return "tls_bundle" if upload is not None and upload.bundle is not None else "ca"

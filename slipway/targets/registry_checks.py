"""Checks of a registry's fields before anything is saved, and reading registry addresses.

A registry's url is what a user would type after `docker login`: `10.101.12.128`,
`127.0.0.1:5000`, `harbor.example.com` or with a scheme, `https://harbor.example.com`. Without a
scheme slipway tries https first and, as Docker does for insecure registries, plain http after it
for loopback addresses (Docker trusts 127.0.0.0/8 without TLS) or when `insecure` is set.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass

from slipway.core.errors import InputError
from slipway.targets.checks import is_host

MAX_URL = 255
MAX_PASSWORD = 16 << 10
# Printable ASCII without space and ':' (basic auth's separator); keeps Harbor's `robot$x+y`.
USERNAME_PATTERN = re.compile(r"^[\x21-\x39\x3b-\x7e]{1,255}$")
# The first part of an image reference names a registry when it has a dot or a port, or is
# `localhost` (Docker's own rule); otherwise the image is on Docker Hub.
IMAGE_HOST_PATTERN = re.compile(r"^(localhost|[^/]*[.:][^/]*)$")
URL_USAGE = (
    "use the address you would give `docker login`: a host with an optional port "
    "(10.101.12.128, 127.0.0.1:5000, harbor.example.com) or an https:// URL"
)

ALIAS_USAGE = "use a host name with an optional port, e.g. harbor.example.com"


@dataclass(frozen=True)
class RegistryAddress:
    """A parsed registry url: scheme when one was given, host (lowercase) and port."""

    scheme: str | None
    host: str
    port: int | None

    @property
    def server(self) -> str:
        """host[:port] as Docker names the registry in image references and logins."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """The url as stored: the server, with the scheme when the user gave one."""
        return f"{self.scheme}://{self.server}" if self.scheme else self.server

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def is_insecure(self, insecure: bool) -> bool:
        """Whether TLS may go unverified and plain http is allowed (Docker's insecure registry)."""
        return insecure or self.is_loopback

    def candidates(self, *, insecure: bool) -> list[tuple[str, bool]]:
        """(base URL, verify TLS) to try in order, as Docker does."""
        relaxed = self.is_insecure(insecure)
        if self.scheme == "http":
            return [(f"http://{self.server}", False)]
        https = (f"https://{self.server}", not relaxed)
        if self.scheme == "https" or not relaxed:
            return [https]
        return [https, (f"http://{self.server}", False)]


def parse_address(text: str, *, field: str = "url", allow_scheme: bool = True) -> RegistryAddress:
    """A registry address (`host[:port]`, or with http:// or https:// when allowed)."""
    usage = (
        URL_USAGE
        if allow_scheme
        else "use a host name with an optional port, e.g. harbor.example.com"
    )
    if not text or len(text) > MAX_URL or any(ord(c) < 33 or ord(c) == 127 for c in text):
        raise InputError(f"{field} is empty, too long or holds spaces: {usage}", field=field)
    scheme, has_scheme, rest = text.partition("://")
    if not has_scheme:
        scheme, rest = "", text
    scheme = scheme.lower()
    if has_scheme and (not allow_scheme or scheme not in ("http", "https")):
        raise InputError(f"{field} {text[:80]!r} has an unknown scheme: {usage}", field=field)
    parts = urllib.parse.urlsplit("//" + rest.rstrip("/"))
    try:
        port = parts.port
    except ValueError:
        port = -1
    host = (parts.hostname or "").lower()
    is_clean = (
        not parts.path
        and not parts.query
        and not parts.fragment
        and "@" not in parts.netloc
        and (port is None or 0 < port < 65536)
        and is_host(host)
    )
    if not is_clean:
        raise InputError(
            f"{field} {text[:80]!r} is not a registry address (no path, user or query): {usage}",
            field=field,
        )
    if ":" in host:
        host = str(ipaddress.ip_address(host))
    return RegistryAddress(scheme=scheme or None, host=host, port=port)


def check_fits(address: RegistryAddress, *, insecure: bool) -> None:
    """Plain http only where Docker allows it: loopback, or a registry marked insecure."""
    if address.scheme == "http" and not address.is_insecure(insecure):
        raise InputError(
            f"url {address.url!r} is plain http, which sends the password unencrypted and which "
            "Docker refuses for this host: use https, or set insecure to true (and list the "
            "registry in the Docker daemon's insecure-registries)",
            field="url",
            code="registry_insecure_url",
        )


def check_username(username: str) -> str:
    if not USERNAME_PATTERN.match(username):
        raise InputError(
            "username must be 1-255 printable characters without spaces or ':' (robot accounts "
            "like robot$project+name are fine)",
            field="username",
        )
    return username


def check_password(password: str) -> str:
    if not password or len(password) > MAX_PASSWORD or any(c in password for c in "\x00\r\n"):
        raise InputError(
            f"password must be 1 to {MAX_PASSWORD} characters on one line (the password or "
            "robot token)",
            field="password",
        )
    return password


def image_host(image: str) -> str | None:
    """The registry host of an image reference, lowercase (`127.0.0.1:5000` for
    `127.0.0.1:5000/x/y:1`); None for a Docker Hub name such as `ubuntu:22.04` or `library/x`."""
    first, _, rest = image.strip().partition("/")
    if rest and IMAGE_HOST_PATTERN.match(first):
        return first.lower()
    return None

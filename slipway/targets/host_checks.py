"""Checks of host, group and credential fields before anything is saved; refusals name the field.

Names follow the Docker endpoints' rule (a DNS label) and may not be all digits, because paths and
references take a name or an id and a name like `12` would read as an id.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re

from slipway.core.errors import InputError
from slipway.targets.checks import HOST_PATTERN, check_labels, check_name

USER_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
# Deploy roots end up in remote shell commands: keep to characters that need no quoting.
PATH_PATTERN = re.compile(r"^/[A-Za-z0-9._@+/-]{1,1023}$")
MAX_ADDRESS = 255
MAX_SECRET = 16 << 10
MAX_GROUP_HOSTS = 1000


def check_target_name(name: str) -> str:
    """A DNS label that is not all digits (a reference of digits is an id)."""
    check_name(name)
    if name.isdigit():
        raise InputError(
            f"name {name!r} is all digits, which reads as an id: add a letter (e.g. 'h{name}')",
            field="name",
        )
    return name


def check_address(address: str) -> str:
    """An IP address or a host name; IPv6 without brackets."""
    usage = "use a host name (web1.example.com) or an IP address (10.0.0.5, fd00::5)"
    if len(address) > MAX_ADDRESS or not address:
        raise InputError(f"address is empty or too long: {usage}", field="address")
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        pass
    if not HOST_PATTERN.match(address) or ".." in address:
        raise InputError(
            f"address {address[:80]!r} is not a host name or IP address: {usage}", field="address"
        )
    return address.lower()


def check_user(user: str) -> str:
    if not USER_PATTERN.match(user):
        raise InputError(
            f"user {user[:80]!r} is not a login name: use letters, digits, '_', '.' or '-', "
            "starting with a letter or '_' (at most 64)",
            field="user",
        )
    return user


def check_deploy_root(path: str) -> str:
    """An absolute path other than `/`, without `.` or `..` parts; a trailing `/` is dropped."""
    trimmed = path.rstrip("/") if path != "/" else path
    parts = trimmed.split("/")[1:]
    is_clean = (
        bool(PATH_PATTERN.match(trimmed))
        and all(part not in ("", ".", "..") for part in parts)
        and posixpath.normpath(trimmed) == trimmed
    )
    if not is_clean:
        raise InputError(
            f"deploy_root {path[:120]!r} is not a clean absolute path below '/': use e.g. /data "
            "or /srv/apps (letters, digits, '.', '_', '-', '@', '+'; no '..')",
            field="deploy_root",
        )
    return trimmed


def check_selector(selector: dict[str, str]) -> dict[str, str]:
    """A non-empty set of label pairs (an empty one would select every host)."""
    if not selector:
        raise InputError(
            'selector needs at least one label, e.g. {"role": "web"}: an empty selector would '
            "select every host",
            field="selector",
        )
    try:
        return check_labels(selector)
    except InputError as error:
        message = error.message.replace("label", "selector label", 1)
        raise InputError(message, field="selector") from None


def check_group_refs(refs: list[str]) -> list[str]:
    if not refs:
        raise InputError("hosts is empty: name at least one host, or use a selector", field="hosts")
    if len(refs) > MAX_GROUP_HOSTS:
        raise InputError(f"hosts: at most {MAX_GROUP_HOSTS} hosts in a group", field="hosts")
    return refs


def check_password(password: str) -> str:
    if not password or len(password) > MAX_SECRET or "\x00" in password:
        raise InputError(
            f"password must be 1 to {MAX_SECRET} characters without NUL", field="password"
        )
    return password


def check_private_key_text(private_key: str) -> str:
    if len(private_key) > MAX_SECRET or "\x00" in private_key:
        raise InputError(
            f"private_key is not a private key (more than {MAX_SECRET} characters, or binary): "
            "paste the OpenSSH or PEM text, e.g. the content of ~/.ssh/id_ed25519",
            field="private_key",
        )
    return private_key.strip() + "\n"

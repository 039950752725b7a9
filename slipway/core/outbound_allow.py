"""The outbound allow-list: CIDRs and host names that URLs fetched on a user's behalf may reach
although the outbound-address policy (core/outbound.py) refuses their addresses by default.

An admin's `PUT /api/v1/settings/outbound-allow` wins once saved (kept as the runtime setting
`outbound.allow`, with its revisions); until then `SLIPWAY_OUTBOUND_ALLOW`, comma-separated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network

from sqlalchemy.orm import Session

from slipway.core import runtime_settings
from slipway.core.config import Settings
from slipway.core.db import session_factory
from slipway.core.errors import InputError
from slipway.core.models import RuntimeSettingRevision

ALLOW_SETTING = "outbound.allow"
MAX_ALLOW_ENTRIES = 256

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


def normalize_host(host: str) -> str:
    """A host name as the allow-list compares it: lower case, ASCII (IDNA), no trailing dot."""
    host = host.strip().rstrip(".").lower()
    try:
        return host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        return host


@dataclass(frozen=True)
class AllowList:
    """CIDRs and host names that may be reached although their addresses are refused by default.

    `source` says where it came from: "api" (saved by an admin), "environment"
    (SLIPWAY_OUTBOUND_ALLOW) or "default" (nothing allowed)."""

    entries: tuple[str, ...] = ()
    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = field(default_factory=frozenset)
    source: str = "default"

    @classmethod
    def parse(cls, entries: Iterable[str], *, field: str, source: str = "api") -> AllowList:
        """Check and normalize each entry; an entry that is neither a CIDR, an address nor a host
        name is refused, naming it."""
        kept: list[str] = []
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for raw in entries:
            if not isinstance(raw, str):
                raise _bad_entry(field, repr(raw))
            entry = raw.strip()
            if not entry:
                continue
            network = _as_network(entry)
            if network is not None:
                text = str(network)
                networks.append(network)
            else:
                text = normalize_host(entry)
                if not _HOST_NAME.match(text):
                    raise _bad_entry(field, entry)
                hosts.add(text)
            if text not in kept:
                kept.append(text)
        if len(kept) > MAX_ALLOW_ENTRIES:
            raise InputError(
                f"{field} has {len(kept)} entries; at most {MAX_ALLOW_ENTRIES} are allowed — "
                "use wider CIDRs",
                field=field,
                code="too_many_entries",
            )
        return cls(tuple(kept), tuple(networks), frozenset(hosts), source)

    def allows_host(self, host: str) -> bool:
        return normalize_host(host) in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        candidates: list[IPAddress] = [address]
        if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        return any(
            candidate.version == network.version and candidate in network
            for candidate in candidates
            for network in self.networks
        )


def _as_network(entry: str) -> IPNetwork | None:
    try:
        # Host bits are dropped ("10.1.2.3/8" is 10.0.0.0/8): the admin meant the network.
        return ip_network(entry, strict=False)
    except ValueError:
        return None


def _bad_entry(field: str, entry: str) -> InputError:
    return InputError(
        f"{field}: {entry[:100]!r} is neither a CIDR (10.0.0.0/8, fd00::/8), an IP address nor a "
        "host name; fix or remove that entry",
        code="invalid_allow_entry",
        details={"field": field, "entry": entry[:100]},
    )


def split_entries(text: str) -> list[str]:
    """The entries of a comma-separated list such as SLIPWAY_OUTBOUND_ALLOW."""
    return [part.strip() for part in text.split(",") if part.strip()]


def allow_list(session: Session, settings: Settings) -> AllowList:
    """The allow-list in force: the one saved through the API, else SLIPWAY_OUTBOUND_ALLOW."""
    saved = runtime_settings.get(session, ALLOW_SETTING)
    if saved is not None:
        return AllowList.parse(saved, field="outbound_allow", source="api")
    return AllowList.parse(
        split_entries(settings.outbound_allow),
        field="SLIPWAY_OUTBOUND_ALLOW",
        source="environment" if settings.outbound_allow.strip() else "default",
    )


def current_allow_list(settings: Settings) -> AllowList:
    """`allow_list` read in a short session of its own, for code that holds none."""
    with session_factory(settings)() as session:
        return allow_list(session, settings)


def save_allow_list(
    session: Session, settings: Settings, entries: Iterable[str], *, actor: str | None
) -> RuntimeSettingRevision:
    """Check and save a new allow-list (flushed, not committed); it wins from now on."""
    parsed = AllowList.parse(entries, field="entries")
    return runtime_settings.put(session, settings, ALLOW_SETTING, list(parsed.entries), actor)

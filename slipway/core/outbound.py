"""The outbound-address policy: every URL slipway fetches on a user's behalf passes it.

Callback URLs, catalog archives and package URLs are typed in by users, so a request to one must
not become a way into the machine or its network (SSRF). By default a URL is refused when its host
is, or resolves to, an address outside the public internet: loopback, private (RFC 1918, CGNAT
100.64/10, ULA fc00::/7), link-local (169.254/16 and fe80::/10, where cloud metadata lives),
unspecified, multicast or reserved, also when written as an IPv4-mapped IPv6 address.

- The check runs on the addresses the name resolves to, and the request then connects to the
  checked address itself (the URL's host is swapped for it; the Host header and the TLS server
  name stay the name, so virtual hosts and certificates work). A resolver that answers
  differently a moment later (DNS rebinding) therefore changes nothing.
- Redirects are followed here, one hop at a time, each new URL checked like the first.
- The allow-list (core/outbound_allow.py) names CIDRs and host names that may be reached
  although private: an admin's `PUT /api/v1/settings/outbound-allow` wins once saved; until
  then `SLIPWAY_OUTBOUND_ALLOW`.
- Environment proxies (HTTP_PROXY…) are not used: a proxy would resolve the name itself.

A refusal is an `InputError` with code `outbound_forbidden` naming the field and the fix; it
says which kind of address was refused but not the address a name resolved to.
"""

from __future__ import annotations

import json as jsonlib
import socket
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Any

import httpx

from slipway.core.errors import InputError, TooLargeError
from slipway.core.outbound_allow import AllowList, IPAddress

MAX_REDIRECTS = 5
MAX_BYTES = 16 << 20
MAX_URL_LENGTH = 4096
# Headers that only the origin they were meant for may see.
_ORIGIN_BOUND = ("authorization", "proxy-authorization", "cookie")

_CGNAT = IPv4Network("100.64.0.0/10")
_PRIVATE = (
    IPv4Network("10.0.0.0/8"),
    IPv4Network("172.16.0.0/12"),
    IPv4Network("192.168.0.0/16"),
    IPv6Network("fc00::/7"),
)
_NAT64 = IPv6Network("64:ff9b::/96")


# --- which addresses are refused -----------------------------------------------------------------


def forbidden_class(address: IPAddress) -> str | None:
    """Why `address` is refused by default ("loopback", "private"…), or None when it is public."""
    if isinstance(address, IPv6Address):
        # An IPv6 form that carries an IPv4 address reaches that address: judge it by that.
        mapped = address.ipv4_mapped
        if mapped is not None:
            reason = forbidden_class(mapped)
            return f"IPv4-mapped {reason}" if reason else None
        if address in _NAT64:
            reason = forbidden_class(IPv4Address(int(address) & 0xFFFFFFFF))
            return f"NAT64 {reason}" if reason else None
        embedded = address.sixtofour
        if embedded is not None and (reason := forbidden_class(embedded)):
            return f"6to4 {reason}"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, IPv4Address) and address in _CGNAT:
        return "private (CGNAT)"
    if any(address.version == net.version and address in net for net in _PRIVATE):
        return "private"
    # Everything else outside the public internet: 240/4, documentation, benchmarking, ...
    if address.is_reserved or address.is_private or not address.is_global:
        return "reserved"
    return None


# --- checking a URL ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckedURL:
    """A URL that passed the policy, and the address a request to it must connect to."""

    url: httpx.URL
    host: str
    port: int
    address: IPAddress

    @property
    def is_ip_literal(self) -> bool:
        return _literal(self.host) is not None


def _literal(host: str) -> IPAddress | None:
    try:
        return ip_address(host)
    except ValueError:
        return None


def parse_url(url: str | httpx.URL, field: str) -> httpx.URL:
    """The URL parsed, if it is an http(s) URL with a host; nothing is resolved yet."""
    text = str(url)
    problem = None
    if len(text) > MAX_URL_LENGTH:
        problem = f"is longer than {MAX_URL_LENGTH} characters"
    else:
        try:
            parsed = httpx.URL(text)
        except (httpx.InvalidURL, ValueError, TypeError):
            problem = "is not a valid URL"
        else:
            if parsed.scheme not in ("http", "https") or not parsed.host:
                problem = "must be an http:// or https:// URL with a host"
    if problem is not None:
        raise InputError(f"{field} {problem}", field=field, code="invalid_url")
    return parsed


def _resolve(host: str, port: int, field: str) -> list[IPAddress]:
    literal = _literal(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise InputError(
            f"{field}: the host {host!r} does not resolve; check its spelling and DNS",
            field=field,
            code="outbound_unresolved",
        ) from None
    found: list[IPAddress] = []
    for family, *_, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            address = ip_address(str(sockaddr[0]).split("%", 1)[0])
            if address not in found:
                found.append(address)
    if not found:
        raise InputError(
            f"{field}: the host {host!r} has no IPv4 or IPv6 address",
            field=field,
            code="outbound_unresolved",
        )
    return found


def check_url(url: str | httpx.URL, allow: AllowList, *, field: str) -> CheckedURL:
    """Resolve the URL's host and check every address it has against the policy.

    All of them must pass (a name that also resolves to an internal address is suspicious
    however its other addresses look); the first is the one to connect to. Raises InputError:
    `invalid_url`, `outbound_unresolved` or `outbound_forbidden`.
    """
    parsed = parse_url(url, field)
    host = parsed.host
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = _resolve(host, port, field)
    if not allow.allows_host(host):
        for address in addresses:
            reason = forbidden_class(address)
            if reason is not None and not allow.allows_address(address):
                raise _forbidden(field, host, reason, is_literal=_literal(host) is not None)
    return CheckedURL(url=parsed, host=host, port=port, address=addresses[0])


def _forbidden(field: str, host: str, reason: str, *, is_literal: bool) -> InputError:
    what = f"{host} is" if is_literal else f"the host {host} resolves to"
    return InputError(
        f"{field}: {what} a {reason} address, which slipway does not reach on a user's behalf; "
        f"if it is meant to be reached, an admin can add {host} or its network to the outbound "
        "allow-list (PUT /api/v1/settings/outbound-allow, or SLIPWAY_OUTBOUND_ALLOW)",
        code="outbound_forbidden",
        details={"field": field, "host": host, "reason": reason},
    )


# --- fetching ------------------------------------------------------------------------------------


def _client(timeout: float | httpx.Timeout, verify: ssl.SSLContext | str | bool) -> httpx.Client:
    # trust_env=False: a proxy from the environment would resolve the name on its own.
    return httpx.Client(
        transport=httpx.HTTPTransport(verify=verify, trust_env=False, retries=0),
        trust_env=False,
        follow_redirects=False,
        timeout=timeout,
    )


def _send(
    client: httpx.Client,
    method: str,
    checked: CheckedURL,
    headers: httpx.Headers,
    content: bytes | None,
) -> httpx.Response:
    """Send to the checked address itself; Host and the TLS server name stay the URL's."""
    is_named_tls = checked.url.scheme == "https" and not checked.is_ip_literal
    request = client.build_request(
        method,
        checked.url,
        headers=headers,
        content=content,
        extensions={"sni_hostname": checked.host} if is_named_tls else None,
    )
    request.url = checked.url.copy_with(host=str(checked.address))
    response = client.send(request, stream=True)
    # From here on the request is only read: let response.url name the host, not the address.
    request.url = checked.url
    return response


def _is_redirect(response: httpx.Response) -> bool:
    return response.status_code in (301, 302, 303, 307, 308) and "location" in response.headers


def _next_hop(
    response: httpx.Response, checked: CheckedURL, method: str, headers: httpx.Headers
) -> tuple[httpx.URL, str, bool]:
    """Where a redirect leads, the method to use there and whether the body goes along; drops
    the credentials a different origin must not see."""
    target = checked.url.join(response.headers["location"])
    keeps_body = response.status_code in (307, 308)
    if not keeps_body and method not in ("GET", "HEAD"):
        method = "GET"  # what browsers and httpx do after 301/302/303 on a POST
    if (target.scheme, target.host, target.port) != (
        checked.url.scheme,
        checked.url.host,
        checked.url.port,
    ):
        for name in _ORIGIN_BOUND:
            headers.pop(name, None)
    if not keeps_body:
        for name in ("content-type", "content-length"):
            headers.pop(name, None)
    return target, method, keeps_body


@contextmanager
def stream(
    method: str,
    url: str | httpx.URL,
    *,
    allow: AllowList,
    field: str,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    json: Any = None,
    timeout: float | httpx.Timeout = 30.0,
    follow_redirects: bool = True,
    max_redirects: int = MAX_REDIRECTS,
    verify: ssl.SSLContext | str | bool = True,
) -> Iterator[httpx.Response]:
    """Open a request under the policy; yields the final response with its body unread.

    Redirects are followed (each hop checked) unless `follow_redirects` is False, when the 3xx
    answer itself is yielded. Policy refusals raise InputError; network failures raise
    httpx.HTTPError (httpx.TooManyRedirects past `max_redirects`), as plain httpx would.
    """
    sent_headers = httpx.Headers(headers or {})
    if json is not None:
        content = jsonlib.dumps(json).encode()
        sent_headers.setdefault("content-type", "application/json")
    target: httpx.URL | str = url
    hops = 0
    while True:
        checked = check_url(target, allow, field=field)
        client = _client(timeout, verify)
        try:
            response = _send(client, method, checked, sent_headers, content)
        except BaseException:
            client.close()
            raise
        if not (follow_redirects and _is_redirect(response)):
            try:
                yield response
            finally:
                response.close()
                client.close()
            return
        response.close()
        client.close()
        hops += 1
        if hops > max_redirects:
            raise httpx.TooManyRedirects(
                f"more than {max_redirects} redirects", request=response.request
            )
        target, method, keeps_body = _next_hop(response, checked, method, sent_headers)
        content = content if keeps_body else None


def request(
    method: str,
    url: str | httpx.URL,
    *,
    allow: AllowList,
    field: str,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    json: Any = None,
    timeout: float | httpx.Timeout = 30.0,
    max_bytes: int = MAX_BYTES,
    follow_redirects: bool = True,
    max_redirects: int = MAX_REDIRECTS,
    verify: ssl.SSLContext | str | bool = True,
) -> httpx.Response:
    """`stream`, with the body read into the response; more than `max_bytes` is refused."""
    with stream(
        method,
        url,
        allow=allow,
        field=field,
        headers=headers,
        content=content,
        json=json,
        timeout=timeout,
        follow_redirects=follow_redirects,
        max_redirects=max_redirects,
        verify=verify,
    ) as response:
        body = read_limited(response, max_bytes, field=field)
    # The body is decoded already: the new response must not decode it again.
    kept = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(
        response.status_code, headers=kept, content=body, request=response.request
    )


def read_limited(response: httpx.Response, max_bytes: int, *, field: str) -> bytes:
    """The (decoded) body of a streamed response; TooLargeError past `max_bytes`."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise TooLargeError(
                f"{field}: the answer from {response.url.host} is larger than {max_bytes} bytes",
                field=field,
            )
        chunks.append(chunk)
    return b"".join(chunks)

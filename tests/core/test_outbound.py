"""The outbound-address policy: every refused class of address, names that resolve to one,
the allow-list by CIDR and by name, redirects checked hop by hop, and the pinned connection.

Requests go to real HTTP(S) servers on 127.0.0.1. DNS is faked in exactly one test: a resolver
that answers differently the second time (DNS rebinding) cannot be set up here otherwise.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from slipway.core import outbound
from slipway.core.errors import InputError, TooLargeError
from slipway.core.outbound import check_url, forbidden_class
from slipway.core.outbound_allow import AllowList, split_entries

NOTHING = AllowList()
LOCAL = AllowList.parse(["127.0.0.1/32"], field="test")


class Receiver:
    """A real HTTP server on 127.0.0.1 that records every request and answers as scripted:
    each call to `answer` queues replies, used in order; the last one repeats."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.requests: list[dict[str, Any]] = []
        self._answers: list[tuple[int, dict[str, str], bytes]] = [(200, {}, b"ok")]
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                receiver.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers.items()),
                        "body": self.rfile.read(length) if length else b"",
                    }
                )
                answers = receiver._answers
                status, headers, body = answers.pop(0) if len(answers) > 1 else answers[0]
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value.replace("{base}", receiver.url))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.host, self.port = host, self.server.server_address[1]
        self.scheme = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def answer(self, *answers: tuple[int, dict[str, str], bytes]) -> None:
        self._answers = list(answers)

    def start(self) -> Receiver:
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


# --- what is refused -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("[::1]", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private (CGNAT)"),
        ("[fd00::1]", "private"),
        ("169.254.169.254", "link-local"),
        ("[fd00:ec2::254]", "private"),
        ("[fe80::1]", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("[::]", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("[ff02::1]", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.10", "reserved"),
        ("[::ffff:127.0.0.1]", "IPv4-mapped loopback"),
        ("[::ffff:169.254.169.254]", "IPv4-mapped link-local"),
        ("[::ffff:10.0.0.1]", "IPv4-mapped private"),
        ("[64:ff9b::a9fe:a9fe]", "NAT64 link-local"),
        ("[2002:7f00:1::1]", "6to4 loopback"),
    ],
)
def test_each_class_of_address_is_refused_by_default(host: str, reason: str) -> None:
    with pytest.raises(InputError) as caught:
        check_url(f"http://{host}:8080/hook", NOTHING, field="callback_url")
    error = caught.value
    assert error.code == "outbound_forbidden" and error.status_code == 422
    assert error.details == {
        "field": "callback_url",
        "host": host.strip("[]"),
        "reason": reason,
    }
    assert error.message.startswith(f"callback_url: {host.strip('[]')} is a {reason} address")
    assert "outbound allow-list" in error.message and "/settings/outbound-allow" in error.message


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "127.1", "0177.0.0.1"])
def test_other_spellings_of_loopback_are_refused(host: str) -> None:
    with pytest.raises(InputError) as caught:
        check_url(f"http://{host}/", NOTHING, field="url")
    if caught.value.code == "invalid_url":
        return  # the URL parser already refuses this spelling
    assert caught.value.code == "outbound_forbidden"
    assert caught.value.details["reason"] == "loopback"


def test_public_addresses_pass_without_an_allow_list() -> None:
    for host, address in (
        ("93.184.215.14", "93.184.215.14"),
        ("[2606:4700::1111]", "2606:4700::1111"),
        ("[::ffff:8.8.8.8]", "::ffff:8.8.8.8"),
        ("[64:ff9b::808:808]", "64:ff9b::808:808"),
    ):
        checked = check_url(f"https://{host}/x", NOTHING, field="url")
        assert checked.address == ip_address(address) and checked.port == 443


def test_a_name_that_resolves_to_a_refused_address_is_refused_without_showing_it() -> None:
    with pytest.raises(InputError) as caught:
        check_url("http://localhost:9/hook", NOTHING, field="callback_url")
    error = caught.value
    assert error.code == "outbound_forbidden"
    assert error.message.startswith("callback_url: the host localhost resolves to a loopback")
    assert "127.0.0.1" not in error.message and "127.0.0.1" not in str(error.details)
    assert "add localhost or its network to the outbound allow-list" in error.message


def test_a_refused_url_is_never_requested(receiver: Receiver) -> None:
    with pytest.raises(InputError):
        outbound.request("GET", f"{receiver.url}/x", allow=NOTHING, field="url")
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ftp://example.com/x", "invalid_url"),
        ("file:///etc/passwd", "invalid_url"),
        ("http:///nohost", "invalid_url"),
        ("not a url", "invalid_url"),
        ("http://no-such-host.invalid/", "outbound_unresolved"),
    ],
)
def test_urls_that_are_not_http_or_do_not_resolve_are_refused(url: str, code: str) -> None:
    with pytest.raises(InputError) as caught:
        check_url(url, NOTHING, field="url")
    assert caught.value.code == code and caught.value.details == {"field": "url"}


# --- the allow-list ------------------------------------------------------------------------------


def test_allowed_by_cidr(receiver: Receiver) -> None:
    allow = AllowList.parse(["10.0.0.0/8", "127.0.0.0/30"], field="entries")
    answer = outbound.request("GET", f"{receiver.url}/file", allow=allow, field="url")
    assert answer.status_code == 200 and answer.content == b"ok"
    assert str(answer.url) == f"{receiver.url}/file"
    assert check_url("http://10.20.30.40/", allow, field="url").address == ip_address("10.20.30.40")
    assert check_url("http://[::ffff:10.1.1.1]/", allow, field="url")  # the mapped form too
    with pytest.raises(InputError):
        check_url("http://127.0.0.9/", allow, field="url")  # outside 127.0.0.0/30


def test_allowed_by_host_name(receiver: Receiver) -> None:
    allow = AllowList.parse(["LocalHost."], field="entries")
    url = f"http://localhost:{receiver.port}/file"
    assert outbound.request("GET", url, allow=allow, field="url").status_code == 200
    # The name, not the address: another name for the same address stays refused.
    with pytest.raises(InputError):
        check_url(f"http://127.0.0.1:{receiver.port}/", allow, field="url")


def test_allow_list_entries_are_checked_and_normalized() -> None:
    allow = AllowList.parse(
        [" 10.1.2.3/8 ", "192.168.1.7", "fd00::/8", "Build-Host.Example.", "", "10.0.0.0/8"],
        field="entries",
    )
    assert allow.entries == (
        "10.0.0.0/8",
        "192.168.1.7/32",
        "fd00::/8",
        "build-host.example",
    )
    for bad in ("10.0.0.0/33", "http://x.example", "two words", "a..b", "*.example.com"):
        with pytest.raises(InputError) as caught:
            AllowList.parse(["10.0.0.0/8", bad], field="entries")
        assert caught.value.code == "invalid_allow_entry"
        assert caught.value.details == {"field": "entries", "entry": bad}
        assert repr(bad) in caught.value.message
    with pytest.raises(InputError) as caught:
        AllowList.parse([f"10.0.{n // 256}.{n % 256}" for n in range(300)], field="entries")
    assert caught.value.code == "too_many_entries"


def test_the_environment_default_is_parsed_from_commas() -> None:
    assert split_entries(" 10.0.0.0/8, ,localhost,") == ["10.0.0.0/8", "localhost"]


# --- redirects -----------------------------------------------------------------------------------


def test_a_redirect_to_a_refused_address_is_refused(receiver: Receiver) -> None:
    inner = Receiver("127.0.0.2").start()
    try:
        for target in (f"{inner.url}/secret", "http://169.254.169.254/latest/meta-data/"):
            receiver.answer((302, {"Location": target}, b""))
            with pytest.raises(InputError) as caught:
                outbound.request("GET", f"{receiver.url}/start", allow=LOCAL, field="location")
            assert caught.value.code == "outbound_forbidden"
            assert caught.value.details["field"] == "location"
        assert inner.requests == []
    finally:
        inner.stop()


def test_redirects_are_followed_within_the_policy_and_limited(receiver: Receiver) -> None:
    receiver.answer(
        (301, {"Location": "/second"}, b""),
        (307, {"Location": "{base}/third"}, b""),
        (200, {}, b"arrived"),
    )
    answer = outbound.request("POST", f"{receiver.url}/first", allow=LOCAL, field="url", json={})
    assert answer.content == b"arrived"
    # 301 turns the POST into a GET without body; 307 keeps method and body.
    assert [(r["method"], r["path"]) for r in receiver.requests] == [
        ("POST", "/first"),
        ("GET", "/second"),
        ("GET", "/third"),
    ]
    receiver.answer((302, {"Location": "/again"}, b""))
    with pytest.raises(httpx.TooManyRedirects):
        outbound.request("GET", f"{receiver.url}/loop", allow=LOCAL, field="url", max_redirects=3)
    with outbound.stream(
        "GET", f"{receiver.url}/x", allow=LOCAL, field="url", follow_redirects=False
    ) as answer:
        assert answer.status_code == 302


def test_credentials_do_not_follow_a_redirect_to_another_origin(receiver: Receiver) -> None:
    other = Receiver().start()
    try:
        receiver.answer((302, {"Location": f"{other.url}/landing"}, b""), (200, {}, b"ok"))
        outbound.request(
            "GET",
            f"{receiver.url}/start",
            allow=LOCAL,
            field="url",
            headers={"Authorization": "Bearer t0ken-value", "X-Trace": "1"},
        )
        assert receiver.requests[0]["headers"]["Authorization"] == "Bearer t0ken-value"
        landed = other.requests[0]["headers"]
        assert "Authorization" not in landed and landed["X-Trace"] == "1"
    finally:
        other.stop()


def test_a_body_over_the_limit_is_refused(receiver: Receiver) -> None:
    receiver.answer((200, {}, b"x" * 5000))
    with pytest.raises(TooLargeError) as caught:
        outbound.request("GET", receiver.url, allow=LOCAL, field="url", max_bytes=4096)
    assert caught.value.details == {"field": "url"}


# --- the connection is pinned to the checked address ---------------------------------------------


def test_the_connection_goes_to_the_address_that_was_checked(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebinding resolver: a harmless answer for the check, an internal one afterwards."""
    real = socket.getaddrinfo
    answers = iter(["127.0.0.1", "10.255.255.1", "10.255.255.1"])
    asked: list[str] = []

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "hook.rebind.test":
            asked.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    url = f"http://hook.rebind.test:{receiver.port}/hook"
    answer = outbound.request("POST", url, allow=LOCAL, field="callback_url", json={"a": 1})
    assert answer.status_code == 200
    assert asked == ["hook.rebind.test"]  # resolved once, by the check; never by the client
    assert receiver.requests[0]["headers"]["Host"] == f"hook.rebind.test:{receiver.port}"
    assert str(answer.url) == url
    # Asked again, the resolver now says 10.255.255.1: refused before any connection.
    with pytest.raises(InputError) as caught:
        outbound.request("GET", url, allow=LOCAL, field="callback_url")
    assert caught.value.details["reason"] == "private"
    assert len(receiver.requests) == 1


def _self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_https_keeps_the_server_name_for_sni_and_the_certificate(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path, "localhost")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    names: list[str | None] = []
    server_context.sni_callback = lambda _sock, name, _ctx: names.append(name)
    secure = Receiver()
    secure.server.socket = server_context.wrap_socket(secure.server.socket, server_side=True)
    secure.scheme = "https"
    secure.start()
    try:
        trust = ssl.create_default_context(cafile=str(cert))
        allow = AllowList.parse(["localhost"], field="entries")
        url = f"https://localhost:{secure.port}/hook"
        answer = outbound.request("GET", url, allow=allow, field="url", verify=trust)
        assert answer.status_code == 200
        assert names == ["localhost"]  # connected to 127.0.0.1, introduced as localhost
        assert secure.requests[0]["headers"]["Host"] == f"localhost:{secure.port}"
        # The certificate is checked against the name: by address it does not match.
        with pytest.raises(httpx.ConnectError):
            outbound.request(
                "GET", f"https://127.0.0.1:{secure.port}/", allow=LOCAL, field="url", verify=trust
            )
    finally:
        secure.stop()


def test_forbidden_class_of_public_addresses_is_none() -> None:
    for text in ("1.1.1.1", "2a00:1450:4001::200e"):
        assert forbidden_class(ip_address(text)) is None

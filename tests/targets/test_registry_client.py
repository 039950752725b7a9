"""The registry client against real registries: Basic and Bearer logins, manifests, tags, refusals.

No database here: the client is what a build job uses on a worker, given a RegistryLogin.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from slipway.core.errors import InputError
from slipway.targets.registry_checks import image_host, parse_address
from slipway.targets.registry_client import (
    DOCKER_MANIFEST,
    RegistryAuthError,
    RegistryClient,
    RegistryDeniedError,
    RegistryError,
    RegistryLogin,
    RegistryUnreachableError,
    discover,
    parse_challenge,
)
from tests.conftest import free_port
from tests.support.registry import RegistryServer


def login_for(server: RegistryServer, *, username: str | None = None, password: str | None = None):
    return RegistryLogin(
        server=server.address,
        username=username or server.username,
        password=password or server.password,
        base_url=server.url,
        verify=False,
    )


@pytest.fixture(scope="module")
def pushed(registry: RegistryServer, docker_engine: None) -> tuple[str, str, str]:
    """(repository, tag, digest) of local/busybox:1 pushed once for this module."""
    repository, tag = "client/busybox", "1"
    return repository, tag, registry.push(repository, tag)


# --- logging in -----------------------------------------------------------------------------------


def test_a_basic_registry_asks_for_basic_auth_and_takes_the_robot_account(registry):
    with RegistryClient(login_for(registry)) as client:
        found = client.check()

    assert registry.username == "robot$slipway"
    assert (found.base_url, found.auth_scheme) == (registry.url, "basic")
    assert found.api_version == "registry/2.0"


def test_a_token_registry_gets_a_bearer_token_from_its_realm(token_registry):
    token_registry.tokens.requests.clear()

    with RegistryClient(login_for(token_registry)) as client:
        found = client.check()

    assert found.auth_scheme == "bearer"
    assert token_registry.tokens.requests == [
        {
            "user": "robot$slipway",
            "service": "slipway-test-registry",
            "account": "robot$slipway",
            "scope": None,
        }
    ]


@pytest.mark.parametrize("kind", ["basic", "bearer"])
def test_a_wrong_password_is_refused_naming_the_password(registry, token_registry, kind):
    server = registry if kind == "basic" else token_registry

    with pytest.raises(RegistryAuthError) as caught:
        with RegistryClient(login_for(server, password="not-the-password")) as client:
            client.check()

    error = caught.value
    assert (error.code, error.status_code) == ("registry_auth_failed", 422)
    assert error.details["field"] == "password"
    assert "robot$slipway" in error.message and "not-the-password" not in error.message


def test_an_unknown_user_is_refused_too(registry):
    with pytest.raises(RegistryAuthError):
        with RegistryClient(login_for(registry, username="nobody")) as client:
            client.check()


def test_a_closed_port_is_unreachable():
    port = free_port()
    login = RegistryLogin(
        server=f"127.0.0.1:{port}",
        username="u",
        password="p",
        base_url=f"http://127.0.0.1:{port}",
    )

    with pytest.raises(RegistryUnreachableError) as caught:
        with RegistryClient(login) as client:
            client.check()

    assert (caught.value.code, caught.value.status_code) == ("registry_unreachable", 502)


def test_https_is_tried_first_and_loopback_falls_back_to_plain_http(registry):
    candidates = parse_address(registry.address).candidates(insecure=False)

    login, found = discover(
        candidates, server=registry.address, username=registry.username, password=registry.password
    )

    assert candidates == [(f"https://{registry.address}", False), (registry.url, False)]
    assert login.base_url == found.base_url == registry.url
    assert login.server == registry.address


def test_an_explicit_https_url_does_not_fall_back_to_http(registry):
    candidates = parse_address(f"https://{registry.address}").candidates(insecure=True)

    with pytest.raises(RegistryUnreachableError):
        discover(
            candidates,
            server=registry.address,
            username=registry.username,
            password=registry.password,
        )


def test_a_login_never_shows_its_password():
    login = RegistryLogin(server="h", username="u", password="s3cret-value", base_url="https://h")

    assert "s3cret-value" not in repr(login)


# --- manifests and tags ---------------------------------------------------------------------------


def test_the_manifest_of_a_pushed_image_has_its_digest_and_size(registry, pushed):
    repository, tag, digest = pushed

    with RegistryClient(login_for(registry)) as client:
        manifest = client.manifest(repository, tag)
        by_digest = client.manifest(repository, digest)
        missing_tag = client.manifest(repository, "no-such-tag")
        missing_repository = client.manifest("client/nothing-here", tag)
        tags = client.tags(repository)
        no_tags = client.tags("client/nothing-here")

    assert manifest is not None and manifest.digest == digest == registry.manifest_digest(
        *pushed[:2]
    )
    assert manifest.media_type == DOCKER_MANIFEST
    assert 1_000_000 < manifest.size < 3_000_000  # busybox: one ~1 MB layer and its config
    assert by_digest == manifest
    assert missing_tag is None and missing_repository is None
    assert tags == registry.tags(repository) == [tag]
    assert no_tags == []


def test_a_token_registry_serves_manifests_with_a_token_per_repository(token_registry, pushed):
    repository, tag, digest = pushed
    token_registry.tokens.requests.clear()

    with RegistryClient(login_for(token_registry)) as client:
        manifest = client.manifest(repository, tag)
        again = client.manifest(repository, tag)
        tags = client.tags(repository)

    assert manifest is not None and manifest.digest == digest and again == manifest
    assert tags == [tag]
    # One token for the scope, reused by every later call on that repository.
    assert [request["scope"] for request in token_registry.tokens.requests] == [
        f"repository:{repository}:pull"
    ]


def test_an_account_without_rights_is_denied_not_told_its_password_is_wrong(token_registry, pushed):
    token_registry.add_user("robot$no-rights", "no-rights-pw")
    token_registry.tokens.no_access.add("robot$no-rights")
    login = login_for(token_registry, username="robot$no-rights", password="no-rights-pw")

    with RegistryClient(login) as client:
        client.check()
        with pytest.raises(RegistryDeniedError) as caught:
            client.manifest(pushed[0], pushed[1])

    assert caught.value.code == "registry_denied"
    assert pushed[0] in caught.value.message


@pytest.mark.parametrize(
    ("repository", "reference", "field"),
    [
        ("Upper/case", "1", "repository"),
        ("../v2", "1", "repository"),
        ("ns/app", "a tag", "reference"),
        ("ns/app", "../../x", "reference"),
        ("ns/app", "sha256:short", "reference"),
    ],
)
def test_bad_repository_names_and_references_are_refused_before_any_request(
    repository, reference, field
):
    login = RegistryLogin(server="h", username="u", password="p", base_url="http://127.0.0.1:9")

    with pytest.raises(InputError) as caught:
        with RegistryClient(login) as client:
            client.manifest(repository, reference)

    assert caught.value.details["field"] == field


# --- reading addresses, image names and challenges ------------------------------------------------


@pytest.mark.parametrize(
    ("url", "server", "stored"),
    [
        ("10.101.12.128", "10.101.12.128", "10.101.12.128"),
        ("127.0.0.1:5000", "127.0.0.1:5000", "127.0.0.1:5000"),
        ("https://Harbor.Example.com/", "harbor.example.com", "https://harbor.example.com"),
        ("http://localhost:5000", "localhost:5000", "http://localhost:5000"),
        ("[::1]:5000", "[::1]:5000", "[::1]:5000"),
    ],
)
def test_registry_addresses_are_read_as_docker_reads_them(url, server, stored):
    address = parse_address(url)

    assert (address.server, address.url) == (server, stored)


@pytest.mark.parametrize(
    "url",
    ["", "ftp://h", "https://h/path", "user@h", "h:99999", "h:0", "a b", "h?x=1", "-h-", "h..x"],
)
def test_addresses_that_are_no_registry_are_refused_naming_the_field(url):
    with pytest.raises(InputError) as caught:
        parse_address(url)

    assert caught.value.details["field"] == "url"


def test_a_non_loopback_registry_is_https_only_unless_insecure():
    remote = parse_address("10.101.12.128")

    assert remote.candidates(insecure=False) == [("https://10.101.12.128", True)]
    assert remote.candidates(insecure=True) == [
        ("https://10.101.12.128", False),
        ("http://10.101.12.128", False),
    ]


@pytest.mark.parametrize(
    ("image", "host"),
    [
        ("10.101.12.128/ns/ubuntu:tag", "10.101.12.128"),
        ("127.0.0.1:5000/x/y:1", "127.0.0.1:5000"),
        ("harbor.alkaidos.cn/base/ubuntu:18.04", "harbor.alkaidos.cn"),
        ("Harbor.Alkaidos.CN/base/ubuntu@sha256:" + "a" * 64, "harbor.alkaidos.cn"),
        ("localhost/x", "localhost"),
        ("ubuntu:18.04", None),
        ("library/ubuntu", None),
        ("songquanheng/app:1", None),
    ],
)
def test_the_registry_host_of_an_image_follows_dockers_rule(image, host):
    assert image_host(image) == host


def test_bearer_challenges_are_read_with_quoted_commas():
    header = (
        'Bearer realm="https://h/service/token",service="harbor-registry",'
        'scope="repository:a/b:pull,push"'
    )

    assert parse_challenge(header) == (
        "bearer",
        {
            "realm": "https://h/service/token",
            "service": "harbor-registry",
            "scope": "repository:a/b:pull,push",
        },
    )
    assert parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})
    assert parse_challenge("") is None


# --- servers that are not quite registries --------------------------------------------------------


class Scripted:
    """A real local HTTP server answering each path as told: (status, headers, body)."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, dict[str, str], bytes]] = {}
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                path = self.path.split("?")[0]
                status, headers, body = scripted.answers.get(path, (404, {}, b""))
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value.replace("{base}", scripted.url))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def login(self) -> RegistryLogin:
        server = self.url.removeprefix("http://")
        return RegistryLogin(server=server, username="u", password="p", base_url=self.url)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def scripted_server() -> Iterator[Scripted]:
    server = Scripted()
    yield server
    server.close()


@pytest.fixture
def scripted(scripted_server: Scripted) -> Scripted:
    scripted_server.answers.clear()
    return scripted_server


def _check(server: Scripted) -> None:
    with RegistryClient(server.login()) as client:
        client.check()


def test_a_web_server_without_the_registry_api_is_named_so(scripted):
    with pytest.raises(RegistryError) as caught:
        _check(scripted)

    assert caught.value.code == "registry_not_a_registry"


def test_a_login_scheme_slipway_does_not_speak_is_named(scripted):
    scripted.answers["/v2/"] = (401, {"WWW-Authenticate": 'Negotiate realm="x"'}, b"")

    with pytest.raises(RegistryError) as caught:
        _check(scripted)

    assert caught.value.code == "registry_error" and "Negotiate" in caught.value.message


def test_a_token_service_that_gives_no_token_is_a_registry_error(scripted):
    bearer = 'Bearer realm="{base}/token",service="odd"'
    scripted.answers["/v2/"] = (401, {"WWW-Authenticate": bearer}, b"")
    scripted.answers["/token"] = (200, {"Content-Type": "application/json"}, b'{"nothing": 1}')

    with pytest.raises(RegistryError) as caught:
        _check(scripted)

    assert caught.value.code == "registry_error" and "without a token" in caught.value.message


def test_a_failing_token_service_is_a_registry_error_with_its_status(scripted):
    bearer = 'Bearer realm="{base}/token",service="odd"'
    scripted.answers["/v2/"] = (401, {"WWW-Authenticate": bearer}, b"")
    scripted.answers["/token"] = (500, {}, b"database is down")

    with pytest.raises(RegistryError) as caught:
        _check(scripted)

    assert caught.value.details == {"status": 500} and "database is down" in caught.value.message


def test_a_token_realm_that_does_not_answer_is_unreachable(scripted):
    bearer = f'Bearer realm="http://127.0.0.1:{free_port()}/token",service="odd"'
    scripted.answers["/v2/"] = (401, {"WWW-Authenticate": bearer}, b"")

    with pytest.raises(RegistryUnreachableError) as caught:
        _check(scripted)

    assert "token service" in caught.value.message


def test_a_server_error_on_a_manifest_is_a_registry_error(scripted):
    scripted.answers["/v2/ns/app/manifests/1"] = (503, {}, b"try later")

    with pytest.raises(RegistryError) as caught:
        with RegistryClient(scripted.login()) as client:
            client.manifest("ns/app", "1")

    assert caught.value.details == {"status": 503}

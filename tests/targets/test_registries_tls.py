"""A registry served over https on a non-loopback address, its certificate from a CA this machine
does not trust: refused with a hint, unless the registry is saved `insecure`."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from slipway.targets.registry_checks import parse_address
from slipway.targets.registry_client import RegistryUnreachableError, discover
from tests.api.helpers import assert_error
from tests.support.registry import RegistryServer, local_ipv4
from tests.targets.pki import CertificateAuthority
from tests.targets.registries_support import (
    REGISTRIES,
    SQLITE_ONLY,
    ok_json,
    registry_body,
    registry_state,
)


def _free_port_on(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def tls_registry(
    registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryServer]:
    """`registry`'s storage and robot account over https on this machine's own IPv4 address."""
    address = local_ipv4()
    if address is None:
        pytest.skip("this machine has no IPv4 address besides loopback")
    directory = tmp_path_factory.mktemp("tls-registry")
    cert, key = (
        CertificateAuthority("a registry CA nobody trusts")
        .server(address)
        .write(directory, "registry")
    )
    server = RegistryServer(
        directory,
        port=_free_port_on(address),
        host=address,
        storage=registry.storage,
        tls=(cert, key),
    )
    server.password = registry.password
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _discover(server: RegistryServer, *, insecure: bool):
    return discover(
        parse_address(server.address).candidates(insecure=insecure),
        server=server.address,
        username=server.username,
        password=server.password,
    )


def test_an_untrusted_certificate_is_unreachable_with_a_hint(tls_registry):
    with pytest.raises(RegistryUnreachableError) as caught:
        _discover(tls_registry, insecure=False)

    assert "certificate" in caught.value.message and "insecure" in caught.value.message


def test_an_insecure_registry_skips_the_certificate_check(tls_registry):
    login, found = _discover(tls_registry, insecure=True)

    assert (found.base_url, found.auth_scheme) == (tls_registry.url, "basic")
    assert login.base_url.startswith("https://") and login.verify is False


@SQLITE_ONLY
def test_saving_needs_insecure_for_an_untrusted_certificate(tls_registry, client, auth, settings):
    before = registry_state(settings)

    refused = client.post(REGISTRIES, json=registry_body(tls_registry), headers=auth["admin"])
    state_after_refusal = registry_state(settings)
    saved = ok_json(
        client.post(
            REGISTRIES, json=registry_body(tls_registry, insecure=True), headers=auth["admin"]
        ),
        201,
    )

    assert "insecure" in assert_error(refused, 502, "registry_unreachable")["message"]
    assert state_after_refusal == before
    assert saved["insecure"] is True and saved["base_url"] == tls_registry.url

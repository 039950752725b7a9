"""TLS uploads that are refused before any engine is asked: bad bundles and bad PEM files.

Each refusal names the field (and for a bundle the member), and changes nothing. The address is
one where nothing listens, so material let through by mistake would show as a 503, not a pass.
"""

from __future__ import annotations

import http.server
import tarfile
import threading

import pytest
from cryptography.hazmat.primitives import serialization

from slipway.targets import tls
from tests.api.helpers import assert_error, assert_invalid
from tests.targets.helpers import ENDPOINTS, bundle_of, endpoint_state, names, pem_files, tar_bundle
from tests.targets.pki import CertificateAuthority, Pair

NOWHERE = "tcp://127.0.0.1:1"


@pytest.fixture(scope="module")
def lab() -> tuple[CertificateAuthority, Pair]:
    ca = CertificateAuthority("lab CA")
    return ca, ca.client("lab-client")


def special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def bundle_cases(ca: CertificateAuthority, pair: Pair) -> dict[str, tuple[bytes, str | None]]:
    """name -> (tar bytes, the member the refusal must name)."""
    good = {
        "ca.pem": ca.pem.encode(),
        "cert.pem": pair.cert_pem.encode(),
        "key.pem": pair.key_pem.encode(),
    }
    without_key = [(n, c) for n, c in good.items() if n != "key.pem"]
    return {
        "absolute": (tar_bundle({**good, "/ca.pem": b"x"}), "/ca.pem"),
        "dotdot": (tar_bundle({"../ca.pem": b"x", **good}), "../ca.pem"),
        "deep-dotdot": (tar_bundle({**good, "certs/../../key.pem": b"x"}), "certs/../../key.pem"),
        "other-member": (tar_bundle({**good, "notes.txt": b"hello"}), "notes.txt"),
        "nested": (tar_bundle({"certs/ca.pem": b"x", **good}), "certs/ca.pem"),
        "missing-key": (tar_bundle(dict(without_key)), "key.pem"),
        "twice": (tar_bundle([*good.items(), ("ca.pem", b"again")]), "ca.pem"),
        "symlink": (
            tar_bundle([*without_key, special("key.pem", tarfile.SYMTYPE, "/etc/passwd")]),
            "key.pem",
        ),
        "hardlink": (
            tar_bundle([*without_key, special("key.pem", tarfile.LNKTYPE, "ca.pem")]),
            "key.pem",
        ),
        "device": (tar_bundle([*without_key, special("key.pem", tarfile.CHRTYPE)]), "key.pem"),
        "not-a-tar": (b"this is not a tar archive at all" * 40, None),
        "empty-tar": (tar_bundle({}), "ca.pem"),
    }


def test_every_bad_bundle_is_refused_naming_the_member_and_nothing_changes(
    client, auth, settings, lab
):
    names(client, auth["viewer"])
    before = endpoint_state(settings)

    for case, (data, member) in bundle_cases(*lab).items():
        response = client.post(
            ENDPOINTS,
            data={"name": "bundled", "url": NOWHERE},
            files={"tls_bundle": ("tls.tar", data, "application/x-tar")},
            headers=auth["admin"],
        )
        error = assert_invalid(response, "tls_bundle", "invalid_tls_bundle")
        assert error["details"].get("member") == member, (case, error)
        if member is not None:
            assert repr(member) in error["message"] or member in error["message"], case
        assert "ca.pem, cert.pem and key.pem" in error["message"], case

    assert endpoint_state(settings) == before


def test_an_oversized_bundle_is_refused(client, auth, settings):
    names(client, auth["viewer"])
    before = endpoint_state(settings)

    response = client.post(
        ENDPOINTS,
        data={"name": "big", "url": NOWHERE},
        files={"tls_bundle": ("tls.tar", b"\0" * (tls.MAX_UPLOAD_BYTES + 1), "application/x-tar")},
        headers=auth["admin"],
    )

    assert "1 MiB" in assert_invalid(response, "tls_bundle", "upload_too_large")["message"]
    assert endpoint_state(settings) == before


def test_a_bundle_with_a_dot_directory_and_gzip_is_read():
    ca = CertificateAuthority("dot CA")
    pair = ca.client()
    plain = tar_bundle(
        [
            special(".", tarfile.DIRTYPE),
            ("./ca.pem", ca.pem.encode()),
            ("./cert.pem", pair.cert_pem.encode()),
            ("./key.pem", pair.key_pem.encode()),
        ]
    )

    for data in (plain, bundle_of(ca.pem, pair, gzip=True)):
        files = tls.read_bundle(data)
        assert files == {
            "ca": ca.pem.encode(),
            "cert": pair.cert_pem.encode(),
            "key": pair.key_pem.encode(),
        }


def encrypted(pair: Pair) -> str:
    key = serialization.load_pem_private_key(pair.key_pem.encode(), password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    ).decode()


def der(pem: str) -> bytes:
    from cryptography import x509

    return x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)


def pem_cases(ca: CertificateAuthority, pair: Pair) -> dict[str, tuple[dict, str, str, str]]:
    """name -> (files, refused field, error code, words the message must hold)."""
    other = ca.client("other")
    files = pem_files(ca.pem, pair)
    return {
        "no-key": (
            {"ca": files["ca"], "cert": files["cert"]},
            "key",
            "invalid_tls_material",
            "all three",
        ),
        "only-ca": ({"ca": files["ca"]}, "cert", "invalid_tls_material", "all three"),
        "key-of-another-cert": (
            {**files, "key": ("key.pem", other.key_pem.encode())},
            "key",
            "invalid_tls_material",
            "does not belong",
        ),
        "key-with-passphrase": (
            {**files, "key": ("key.pem", encrypted(pair).encode())},
            "key",
            "invalid_tls_material",
            "passphrase",
        ),
        "key-is-garbage": (
            {**files, "key": ("key.pem", b"nope")},
            "key",
            "invalid_tls_material",
            "private key",
        ),
        "cert-is-garbage": (
            {**files, "cert": ("cert.pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n")},
            "cert",
            "invalid_tls_material",
            "client certificate",
        ),
        "cert-is-a-key": (
            {**files, "cert": ("cert.pem", pair.key_pem.encode())},
            "cert",
            "invalid_tls_material",
            "PEM certificate",
        ),
        "ca-in-der": (
            {**files, "ca": ("ca.der", der(ca.pem))},
            "ca",
            "invalid_tls_material",
            "PEM",
        ),
        "ca-too-large": (
            {**files, "ca": ("ca.pem", b"a" * (tls.MAX_UPLOAD_BYTES + 1))},
            "ca",
            "upload_too_large",
            "MiB",
        ),
        "bundle-and-files": (
            {**files, "tls_bundle": ("tls.tar", bundle_of(ca.pem, pair))},
            "tls_bundle",
            "invalid_tls_material",
            "not both",
        ),
    }


def test_every_bad_pem_upload_is_refused_naming_the_field_and_nothing_changes(
    client, auth, settings, lab
):
    names(client, auth["viewer"])
    before = endpoint_state(settings)

    for case, (files, field, code, words) in pem_cases(*lab).items():
        response = client.post(
            ENDPOINTS, data={"name": "pem", "url": NOWHERE}, files=files, headers=auth["admin"]
        )
        error = assert_invalid(response, field, code)
        assert words in error["message"], (case, error["message"])
        assert "PRIVATE KEY" not in response.text

    assert endpoint_state(settings) == before


def test_an_expired_client_certificate_is_refused(client, auth, settings, lab):
    ca, _ = lab
    names(client, auth["viewer"])
    before = endpoint_state(settings)

    response = client.post(
        ENDPOINTS,
        data={"name": "old", "url": NOWHERE},
        files=pem_files(ca.pem, ca.client("old", days=-1)),
        headers=auth["admin"],
    )

    assert "expired" in assert_invalid(response, "cert", "invalid_tls_material")["message"]
    assert endpoint_state(settings) == before


def test_tls_on_a_unix_socket_is_refused(client, auth, settings, lab):
    names(client, auth["viewer"])
    before = endpoint_state(settings)
    unix = "unix:///var/run/docker.sock"

    with_files = client.post(
        ENDPOINTS,
        data={"name": "sock", "url": unix},
        files=pem_files(lab[0].pem, lab[1]),
        headers=auth["admin"],
    )
    with_bundle = client.post(
        ENDPOINTS,
        data={"name": "sock", "url": unix},
        files={"tls_bundle": ("tls.tar", bundle_of(lab[0].pem, lab[1]))},
        headers=auth["admin"],
    )
    on_local = client.patch(
        f"{ENDPOINTS}/local", files=pem_files(lab[0].pem, lab[1]), headers=auth["admin"]
    )

    assert "tcp://" in assert_invalid(with_files, "ca", "invalid_tls_material")["message"]
    assert_invalid(with_bundle, "tls_bundle", "invalid_tls_material")
    assert_invalid(on_local, "ca", "invalid_tls_material")
    assert endpoint_state(settings) == before


def test_new_material_and_remove_tls_together_are_refused(client, auth, settings, lab):
    names(client, auth["viewer"])
    before = endpoint_state(settings)

    response = client.patch(
        f"{ENDPOINTS}/local",
        data={"remove_tls": "true", "url": NOWHERE},
        files=pem_files(lab[0].pem, lab[1]),
        headers=auth["admin"],
    )

    assert "not both" in assert_invalid(response, "remove_tls")["message"]
    assert endpoint_state(settings) == before


def test_tls_material_for_an_address_without_tls_is_refused_saying_so(client, auth, settings, lab):
    """A plain HTTP listener where a TLS engine was expected: the handshake cannot even start."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    names(client, auth["viewer"])
    before = endpoint_state(settings)
    try:
        response = client.post(
            ENDPOINTS,
            data={"name": "plain-http", "url": f"tcp://127.0.0.1:{server.server_port}"},
            files=pem_files(lab[0].pem, lab[1]),
            headers=auth["admin"],
        )
    finally:
        server.shutdown()
        server.server_close()

    assert "does not speak TLS" in assert_error(response, 502, "endpoint_tls_failed")["message"]
    assert endpoint_state(settings) == before

"""Docker endpoints over TLS, against a second dockerd that only lets in clients of its own CA."""

from __future__ import annotations

from sqlalchemy import select

from slipway.core.db import session_factory, session_scope
from slipway.core.models import Secret
from slipway.core.secrets import open_vault
from slipway.remote.docker import ping
from slipway.targets import service
from tests.api.helpers import assert_error, database_text
from tests.conftest import free_port
from tests.targets.helpers import ENDPOINTS, bundle_of, endpoint_state, key_body, names, pem_files


def fingerprint(pem: str) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    return x509.load_pem_x509_certificate(pem.encode()).fingerprint(hashes.SHA256()).hex()


def expiry(pem: str) -> str:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(pem.encode())
    return cert.not_valid_after_utc.isoformat().replace("+00:00", "Z")


def secrets_of(settings) -> list[Secret]:
    with session_factory(settings)() as session:
        return list(session.scalars(select(Secret)))


def test_the_engine_is_really_tls_only(tls_engine, stranger):
    """The fixture's engine: `docker info` works with its client cert, not with another CA's."""
    assert tls_engine.cli("info", "--format", "{{.ServerVersion}}").returncode == 0
    refused = tls_engine.cli("info", client=stranger)
    assert refused.returncode != 0


def test_three_pem_files_save_the_endpoint_and_test_answers(tls_engine, client, auth, settings):
    response = client.post(
        ENDPOINTS,
        data={"name": "remote", "url": tls_engine.url, "labels": '{"site": "lab"}'},
        files=pem_files(tls_engine.ca_pem, tls_engine.client),
        headers=auth["admin"],
    )

    assert response.status_code == 201, response.text
    endpoint = response.json()
    assert endpoint["has_tls"] is True
    assert endpoint["url"] == tls_engine.url
    assert endpoint["tls_expires_at"] == expiry(tls_engine.client.cert_pem)
    assert endpoint["tls_cert_fingerprint"] == fingerprint(tls_engine.client.cert_pem)
    assert endpoint["tls_ca_fingerprint"] == fingerprint(tls_engine.ca_pem)
    assert endpoint["engine"]["api_version"]

    tested = client.post(f"{ENDPOINTS}/remote/test", headers=auth["operator"])

    assert tested.status_code == 200, tested.text
    assert tested.json()["engine"]["version"] == endpoint["engine"]["version"]
    [revision] = client.get(f"{ENDPOINTS}/remote/revisions", headers=auth["viewer"]).json()["items"]
    assert revision["has_tls"] is True
    assert revision["tls_cert_fingerprint"] == endpoint["tls_cert_fingerprint"]
    with session_scope(settings) as session:
        spec = service.engine_spec(session, settings, "remote")
    assert spec.tls is not None and spec.tls.key_pem == tls_engine.client.key_pem
    assert ping(spec)["version"] == endpoint["engine"]["version"]


def test_pem_text_in_a_json_body_works_too(tls_engine, client, auth):
    response = client.post(
        ENDPOINTS,
        json={
            "name": "from-json",
            "url": tls_engine.url,
            "ca": tls_engine.ca_pem,
            "cert": tls_engine.client.cert_pem,
            "key": tls_engine.client.key_pem,
        },
        headers=auth["admin"],
    )

    assert response.status_code == 201, response.text
    assert response.json()["has_tls"] is True


def test_a_tar_bundle_works_too(tls_engine, client, auth):
    for name, is_gzip in (("bundled", False), ("bundled-gz", True)):
        response = client.post(
            ENDPOINTS,
            data={"name": name, "url": tls_engine.url},
            files={
                "tls_bundle": (
                    "tls.tar",
                    bundle_of(tls_engine.ca_pem, tls_engine.client, gzip=is_gzip),
                    "application/x-tar",
                )
            },
            headers=auth["admin"],
        )
        assert response.status_code == 201, response.text
        assert response.json()["has_tls"] is True
        assert client.post(f"{ENDPOINTS}/{name}/test", headers=auth["operator"]).status_code == 200


def test_a_client_cert_from_another_ca_is_refused_and_nothing_is_saved(
    tls_engine, stranger, client, auth, settings
):
    names(client, auth["viewer"])
    before = endpoint_state(settings)

    response = client.post(
        ENDPOINTS,
        data={"name": "intruder", "url": tls_engine.url},
        files=pem_files(tls_engine.ca_pem, stranger),
        headers=auth["admin"],
    )

    error = assert_error(response, 502, "endpoint_tls_failed")
    assert tls_engine.url in error["message"] and "certificate" in error["message"]
    assert endpoint_state(settings) == before
    assert names(client, auth["viewer"]) == ["local"]
    assert secrets_of(settings) == []
    assert key_body(stranger) not in response.text


def test_a_ca_that_did_not_sign_the_engine_is_refused(tls_engine, stranger, client, auth, settings):
    names(client, auth["viewer"])
    before = endpoint_state(settings)
    from tests.targets.pki import CertificateAuthority

    other_ca = CertificateAuthority("not the engine's CA")
    response = client.post(
        ENDPOINTS,
        data={"name": "wrong-ca", "url": tls_engine.url},
        files=pem_files(other_ca.pem, tls_engine.client),
        headers=auth["admin"],
    )

    assert_error(response, 502, "endpoint_tls_failed")
    assert endpoint_state(settings) == before


def test_a_tls_engine_without_tls_material_is_refused_saying_it_needs_tls(
    tls_engine, client, auth, settings
):
    names(client, auth["viewer"])
    before = endpoint_state(settings)

    response = client.post(
        ENDPOINTS, json={"name": "plain", "url": tls_engine.url}, headers=auth["admin"]
    )

    assert "requires TLS" in assert_error(response, 502, "endpoint_tls_failed")["message"]
    assert endpoint_state(settings) == before


def test_an_unreachable_tls_address_is_refused_and_nothing_is_saved(
    tls_engine, client, auth, settings
):
    names(client, auth["viewer"])
    before = endpoint_state(settings)

    response = client.post(
        ENDPOINTS,
        data={"name": "nowhere", "url": f"tcp://127.0.0.1:{free_port()}"},
        files=pem_files(tls_engine.ca_pem, tls_engine.client),
        headers=auth["admin"],
    )

    assert_error(response, 503, "endpoint_unreachable")
    assert endpoint_state(settings) == before
    assert secrets_of(settings) == []


def test_an_update_makes_revision_2_and_the_newest_wins(
    tls_engine, stranger, client, auth, settings
):
    first = tls_engine.client
    second = tls_engine.ca.client("second-client")
    client.post(
        ENDPOINTS,
        data={"name": "rotating", "url": tls_engine.url},
        files=pem_files(tls_engine.ca_pem, first),
        headers=auth["admin"],
    )
    [secret_before] = secrets_of(settings)

    updated = client.patch(
        f"{ENDPOINTS}/rotating",
        data={"labels": '{"rotated": "yes"}'},
        files=pem_files(tls_engine.ca_pem, second),
        headers=auth["admin"],
    )

    assert updated.status_code == 200, updated.text
    assert updated.json()["revision"] == 2
    assert updated.json()["tls_cert_fingerprint"] == fingerprint(second.cert_pem)
    assert updated.json()["labels"] == {"rotated": "yes"}
    revisions = client.get(f"{ENDPOINTS}/rotating/revisions", headers=auth["viewer"]).json()
    assert [(r["revision"], r["changes"]) for r in revisions["items"]] == [
        (2, ["tls", "labels"]),
        (1, ["created"]),
    ]
    assert revisions["items"][1]["tls_cert_fingerprint"] == fingerprint(first.cert_pem)
    [secret_after] = secrets_of(settings)  # the key was replaced, not added
    assert secret_after.id == secret_before.id
    assert secret_after.ciphertext != secret_before.ciphertext
    with session_scope(settings) as session:
        assert service.engine_spec(session, settings, "rotating").tls.key_pem == second.key_pem
    assert client.post(f"{ENDPOINTS}/rotating/test", headers=auth["operator"]).status_code == 200

    before = endpoint_state(settings)
    refused = client.patch(
        f"{ENDPOINTS}/rotating",
        files=pem_files(tls_engine.ca_pem, stranger),
        headers=auth["admin"],
    )

    assert_error(refused, 502, "endpoint_tls_failed")
    assert endpoint_state(settings) == before
    with session_scope(settings) as session:
        assert service.engine_spec(session, settings, "rotating").tls.key_pem == second.key_pem


def test_the_key_is_stored_encrypted_and_never_shown(tls_engine, client, auth, settings):
    pair = tls_engine.ca.client("secret-keeper")
    responses = [
        client.post(
            ENDPOINTS,
            data={"name": "guarded", "url": tls_engine.url},
            files=pem_files(tls_engine.ca_pem, pair),
            headers=auth["admin"],
        )
    ]
    responses += [
        client.get(ENDPOINTS, headers=auth["viewer"]),
        client.get(f"{ENDPOINTS}/guarded", headers=auth["admin"]),
        client.get(f"{ENDPOINTS}/guarded/revisions", headers=auth["admin"]),
        client.post(f"{ENDPOINTS}/guarded/test", headers=auth["admin"]),
        client.patch(f"{ENDPOINTS}/guarded", json={"description": "x"}, headers=auth["admin"]),
        client.get("/openapi.json"),
    ]

    assert responses[0].status_code == 201, responses[0].text
    body = key_body(pair)
    for response in responses:
        assert response.status_code in (200, 201), response.text
        assert body not in response.text and body[:40] not in response.text
        assert "PRIVATE KEY" not in response.text
    stored = database_text(settings)
    assert pair.cert_pem.splitlines()[1] in stored  # the certificate is public and kept
    for line in pair.key_pem.splitlines()[1:-1]:
        assert line not in stored
    assert "PRIVATE KEY" not in stored
    [secret] = secrets_of(settings)
    assert secret.owner == "docker-endpoint:guarded"
    assert secret.ciphertext.startswith("v1:")
    with session_scope(settings) as session:
        assert open_vault(session, settings).reveal(session, secret.id) == pair.key_pem


def test_remove_tls_needs_an_engine_that_answers_without_it(
    docker_engine, tls_engine, client, auth, settings
):
    client.post(
        ENDPOINTS,
        data={"name": "switcher", "url": tls_engine.url},
        files=pem_files(tls_engine.ca_pem, tls_engine.client),
        headers=auth["admin"],
    )
    before = endpoint_state(settings)

    refused = client.patch(
        f"{ENDPOINTS}/switcher", json={"remove_tls": True}, headers=auth["admin"]
    )
    unix_with_tls = client.patch(
        f"{ENDPOINTS}/switcher", json={"url": "unix:///var/run/docker.sock"}, headers=auth["admin"]
    )

    assert_error(refused, 502, "endpoint_tls_failed")
    assert unix_with_tls.json()["error"]["details"]["field"] == "url"
    assert_error(unix_with_tls, 422, "invalid_tls_material")
    assert endpoint_state(settings) == before

    moved = client.patch(
        f"{ENDPOINTS}/switcher",
        data={"url": "unix:///var/run/docker.sock", "remove_tls": "true"},
        headers=auth["admin"],
    )

    assert moved.status_code == 200, moved.text
    assert moved.json()["has_tls"] is False and moved.json()["tls_expires_at"] is None
    assert moved.json()["revision"] == 2
    assert secrets_of(settings) == []
    latest = client.get(f"{ENDPOINTS}/switcher/revisions", headers=auth["viewer"]).json()["items"][
        0
    ]
    assert (latest["has_tls"], latest["changes"]) == (False, ["url", "tls"])


def test_deleting_an_endpoint_forgets_its_key(tls_engine, client, auth, settings):
    client.post(
        ENDPOINTS,
        data={"name": "short-lived", "url": tls_engine.url},
        files=pem_files(tls_engine.ca_pem, tls_engine.client),
        headers=auth["admin"],
    )
    assert len(secrets_of(settings)) == 1

    response = client.delete(f"{ENDPOINTS}/short-lived", headers=auth["admin"])

    assert response.status_code == 204, response.text
    assert secrets_of(settings) == []
    assert names(client, auth["viewer"]) == ["local"]


def test_check_endpoints_reaches_the_tls_engine(tls_engine, client, auth, settings):
    client.post(
        ENDPOINTS,
        data={"name": "checked", "url": tls_engine.url},
        files=pem_files(tls_engine.ca_pem, tls_engine.client),
        headers=auth["admin"],
    )

    with session_scope(settings) as session:
        results = {r["name"]: r for r in service.check_endpoints(session, settings)}

    assert results["docker_endpoint:checked"]["ok"] is True, results

"""Registry requests that are refused before any login: each names its field, none changes a row."""

from __future__ import annotations

from tests.api.helpers import assert_error, assert_invalid
from tests.targets.registries_support import (
    REGISTRIES,
    SQLITE_ONLY,
    add_registry,
    registry_body,
    registry_state,
)

GOOD = {"name": "reg", "url": "127.0.0.1:9", "username": "robot$x", "password": "pw-1"}


def refused(client, auth, settings, method: str, path: str, body: object, field: str, code=None):
    """The request is refused with 422 naming `field`, and nothing changed."""
    before = registry_state(settings)
    response = client.request(method, path, json=body, headers=auth["admin"])
    try:
        error = assert_invalid(response, field, code or "invalid_input")
    except AssertionError as failure:
        raise AssertionError(f"{method} {path} {body!r}: {failure}") from None
    assert registry_state(settings) == before, body
    return error


# One database per test, many requests: each case is cheap, a database is not.
BAD_FIELDS = [
    ({"verify": False}, "verify"),
    ({"token": "x"}, "token"),
    ({"name": "Bad_Name"}, "name"),
    ({"name": "-starts-with-dash"}, "name"),
    ({"name": "n" * 64}, "name"),
    ({"url": "ftp://10.0.0.5"}, "url"),
    ({"url": "https://harbor.example.com/v2/"}, "url"),
    ({"url": "robot@harbor.example.com"}, "url"),
    ({"url": "harbor.example.com:70000"}, "url"),
    ({"url": "harbor example.com"}, "url"),
    ({"url": ""}, "url"),
    ({"username": "robot slipway"}, "username"),
    ({"username": "robot:slipway"}, "username"),
    ({"username": ""}, "username"),
    ({"password": ""}, "password"),
    ({"password": "two\nlines"}, "password"),
    ({"dns_alias": "https://harbor.example.com"}, "dns_alias"),
    ({"dns_alias": "harbor.example.com/base"}, "dns_alias"),
    ({"insecure": "maybe"}, "insecure"),
]


@SQLITE_ONLY
def test_a_bad_field_is_refused_naming_it(client, auth, settings):
    for changes, field in BAD_FIELDS:
        refused(client, auth, settings, "POST", REGISTRIES, {**GOOD, **changes}, field)


@SQLITE_ONLY
def test_each_required_field_is_named_when_missing(client, auth, settings):
    for missing in ("name", "url", "username", "password"):
        body = {key: value for key, value in GOOD.items() if key != missing}
        refused(client, auth, settings, "POST", REGISTRIES, body, missing)


@SQLITE_ONLY
def test_plain_http_to_a_remote_registry_needs_insecure(client, auth, settings):
    body = {**GOOD, "url": "http://10.101.12.128"}

    error = refused(
        client, auth, settings, "POST", REGISTRIES, body, "url", "registry_insecure_url"
    )

    assert "insecure" in error["message"]


@SQLITE_ONLY
def test_a_body_that_is_not_json_is_refused(client, auth, settings):
    before = registry_state(settings)

    response = client.post(
        REGISTRIES,
        content=b"{not json",
        headers={**auth["admin"], "Content-Type": "application/json"},
    )

    assert assert_error(response, 422, "invalid_input")["details"]["field"] == "body"
    assert registry_state(settings) == before


BAD_CHANGES = [
    ({"password_hint": "x"}, "password_hint", None),
    ({"name": "renamed"}, "name", None),
    ({"url": "ftp://x"}, "url", None),
    ({"username": "a b"}, "username", None),
    ({"password": ""}, "password", None),
    ({"dns_alias": "http://x"}, "dns_alias", None),
    ({"url": "http://10.101.12.128"}, "url", "registry_insecure_url"),
]


@SQLITE_ONLY
def test_a_bad_change_is_refused_naming_its_field(registry, client, auth, settings):
    add_registry(client, auth["admin"], registry)

    for body, field, code in BAD_CHANGES:
        refused(client, auth, settings, "PATCH", f"{REGISTRIES}/local", body, field, code)


@SQLITE_ONLY
def test_a_taken_name_or_host_is_a_conflict(registry, client, auth, settings):
    add_registry(client, auth["admin"], registry, dns_alias="reg.example.com")
    before = registry_state(settings)

    same_name = client.post(REGISTRIES, json=registry_body(registry), headers=auth["admin"])
    same_host = client.post(
        REGISTRIES, json=registry_body(registry, "again"), headers=auth["admin"]
    )
    same_alias = client.post(
        REGISTRIES,
        json={**GOOD, "name": "alias", "dns_alias": "REG.example.com"},
        headers=auth["admin"],
    )
    alias_is_host = client.post(
        REGISTRIES,
        json={**GOOD, "name": "other", "url": "reg.example.com"},
        headers=auth["admin"],
    )

    assert assert_error(same_name, 409, "registry_exists")["details"]["field"] == "name"
    host_error = assert_error(same_host, 409, "registry_host_taken")
    assert host_error["details"] == {"field": "url", "registry": "local"}
    assert assert_error(same_alias, 409, "registry_host_taken")["details"]["field"] == "dns_alias"
    assert assert_error(alias_is_host, 409, "registry_host_taken")["details"]["field"] == "url"
    assert registry_state(settings) == before


@SQLITE_ONLY
def test_an_unknown_registry_is_404(client, auth):
    for method, suffix in (
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("POST", "/test"),
        ("GET", "/revisions"),
    ):
        body = {"description": "x"} if method == "PATCH" else None
        response = client.request(
            method, f"{REGISTRIES}/nowhere{suffix}", json=body, headers=auth["admin"]
        )
        assert_error(response, 404, "registry_not_found")

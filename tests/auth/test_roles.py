"""The role matrix: every route of the API, called anonymously and as each role.

A role at or above a route's minimum gets past authorization (anything but 401/403); a caller
below it is refused with exactly 401 (anonymous) or 403 `forbidden`, and nothing changes.
"""

from __future__ import annotations

import pytest
from fastapi.routing import iter_route_contexts

from slipway.apps.catalog_snapshots import LIBRARY_DIR
from slipway.auth import service as auth_service
from slipway.auth.models import Role
from slipway.core.db import session_scope
from slipway.jobs import service as jobs_service
from tests.api.helpers import assert_error, state_of
from tests.auth import (
    roles_builds,
    roles_callbacks,
    roles_hosts,
    roles_mirrors,
    roles_registries,
    roles_releases,
)
from tests.conftest import bearer

ROLES = ("anonymous", "viewer", "operator", "admin")

# The minimum role of every route. A route missing here fails test_the_table_covers_every_route.
MINIMUM_ROLE = {
    ("POST", "/api/v1/auth/token"): "anonymous",
    ("GET", "/api/v1/health"): "anonymous",
    ("GET", "/api/v1/me"): "viewer",
    ("GET", "/api/v1/version"): "viewer",
    ("GET", "/metrics"): "viewer",
    ("GET", "/api/v1/operations"): "viewer",
    ("GET", "/api/v1/operations/{operation_id}"): "viewer",
    ("GET", "/api/v1/operations/{operation_id}/logs"): "viewer",
    ("POST", "/api/v1/operations"): "operator",
    ("POST", "/api/v1/operations/{operation_id}/cancel"): "operator",
    ("POST", "/api/v1/operations/{operation_id}/move"): "operator",
    ("POST", "/api/v1/system/check"): "operator",
    ("GET", "/api/v1/users"): "admin",
    ("POST", "/api/v1/users"): "admin",
    ("GET", "/api/v1/users/{name}"): "admin",
    ("PATCH", "/api/v1/users/{name}"): "admin",
    ("DELETE", "/api/v1/users/{name}"): "admin",
    ("GET", "/api/v1/tokens"): "admin",
    ("POST", "/api/v1/tokens"): "admin",
    ("DELETE", "/api/v1/tokens/{token_id}"): "admin",
    ("GET", "/api/v1/audit"): "admin",
    ("GET", "/api/v1/docker-endpoints"): "viewer",
    ("POST", "/api/v1/docker-endpoints"): "admin",
    ("GET", "/api/v1/docker-endpoints/{name}"): "viewer",
    ("PATCH", "/api/v1/docker-endpoints/{name}"): "admin",
    ("DELETE", "/api/v1/docker-endpoints/{name}"): "admin",
    ("POST", "/api/v1/docker-endpoints/{name}/test"): "operator",
    ("GET", "/api/v1/docker-endpoints/{name}/revisions"): "viewer",
    ("GET", "/api/v1/catalog"): "viewer",
    ("GET", "/api/v1/catalog/{key}"): "viewer",
    ("GET", "/api/v1/catalog-sources"): "viewer",
    ("POST", "/api/v1/catalog-sources"): "admin",
    ("GET", "/api/v1/catalog-sources/{name}"): "viewer",
    ("PATCH", "/api/v1/catalog-sources/{name}"): "admin",
    ("DELETE", "/api/v1/catalog-sources/{name}"): "admin",
    ("POST", "/api/v1/catalog-sources/{name}/refresh"): "admin",
    ("GET", "/api/v1/upgrade"): "viewer",
    ("POST", "/api/v1/apps"): "operator",
    ("GET", "/api/v1/apps"): "viewer",
    ("GET", "/api/v1/apps/{name}"): "viewer",
    ("DELETE", "/api/v1/apps/{name}"): "operator",
    ("POST", "/api/v1/apps/{name}/start"): "operator",
    ("POST", "/api/v1/apps/{name}/stop"): "operator",
    ("POST", "/api/v1/apps/{name}/restart"): "operator",
    ("POST", "/api/v1/apps/{name}/redeploy"): "operator",
    ("POST", "/api/v1/apps/{name}/upgrade"): "operator",
    ("POST", "/api/v1/apps/{name}/adopt"): "operator",
    ("GET", "/api/v1/apps/{name}/env"): "viewer",
    ("PUT", "/api/v1/apps/{name}/env"): "operator",
    ("GET", "/api/v1/apps/{name}/logs"): "viewer",
    # Outside the OpenAPI document: the document itself and its viewers describe a public API.
    ("GET", "/openapi.json"): "anonymous",
    ("GET", "/docs"): "anonymous",
    ("GET", "/docs/oauth2-redirect"): "anonymous",
    ("GET", "/redoc"): "anonymous",
    **roles_hosts.MINIMUM_ROLE,
    **roles_releases.MINIMUM_ROLE,
    **roles_registries.MINIMUM_ROLE,
    **roles_mirrors.MINIMUM_ROLE,
    **roles_callbacks.MINIMUM_ROLE,
    **roles_builds.MINIMUM_ROLE,
}
ADMIN_ONLY_PREFIXES = ("/api/v1/users", "/api/v1/tokens", "/api/v1/audit")

TARGET_PASSWORD = "target-password-1"
# Requests that would change something if they were let through, so a refusal is meaningful.
REQUESTS = {
    ("POST", "/api/v1/auth/token"): {"data": {"username": "target", "password": TARGET_PASSWORD}},
    ("POST", "/api/v1/users"): {
        "json": {"name": "newcomer", "password": "long-enough-1", "role": "admin"}
    },
    ("PATCH", "/api/v1/users/{name}"): {"json": {"role": "admin"}},
    ("POST", "/api/v1/tokens"): {"json": {"name": "ci", "user": "target"}},
    ("POST", "/api/v1/operations"): {"json": {"kind": "system.noop"}},
    ("POST", "/api/v1/operations/{operation_id}/move"): {"json": {"to": "front"}},
    ("POST", "/api/v1/catalog-sources"): {
        "json": {"name": "copy", "kind": "dir", "location": str(LIBRARY_DIR)}
    },
    ("PATCH", "/api/v1/catalog-sources/{name}"): {"json": {"allow_privileged": True}},
    ("POST", "/api/v1/apps"): {"json": {"app": "nginx", "name": "newapp"}},
    ("POST", "/api/v1/apps/{name}/upgrade"): {"json": {"version": "2"}},
    ("POST", "/api/v1/apps/{name}/adopt"): {"json": {}},
    ("PUT", "/api/v1/apps/{name}/env"): {"json": {"settings": {"W9_URL": "x"}}},
    **roles_hosts.REQUESTS,
    **roles_releases.REQUESTS,
    **roles_registries.REQUESTS,
    **roles_mirrors.REQUESTS,
    **roles_callbacks.REQUESTS,
    **roles_builds.REQUESTS,
}


def routes_of(app) -> set[tuple[str, str]]:
    """(method, path) of every route: the OpenAPI paths, and the routes left out of them."""
    routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    for route in iter_route_contexts(app.routes):
        for method in route.methods or ():
            if method != "HEAD":
                routes.add((method, route.path_format))
    return routes


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_table_covers_every_route(app):
    assert set(MINIMUM_ROLE) == routes_of(app)
    for (method, path), role in MINIMUM_ROLE.items():
        if path.startswith(ADMIN_ONLY_PREFIXES):
            assert role == "admin", (method, path)
        elif method != "GET":
            assert role in ("operator", "admin") or path == "/api/v1/auth/token", (method, path)
        else:
            assert role in ("anonymous", "viewer"), (method, path)


@pytest.fixture
def targets(settings, tokens) -> dict[str, str]:
    """Real things for the path parameters: a user with an API token, and a queued operation."""
    with session_scope(settings) as session:
        auth_service.create_user(session, name="target", password=TARGET_PASSWORD, role=Role.viewer)
        _, token = auth_service.create_api_token(session, user_name="target", name="ci-target")
        token_id = str(token.id)
    with session_scope(settings) as session:
        operation = jobs_service.submit(session, settings, kind="system.noop", actor="admin")
    return {
        "name": "target",
        "token_id": token_id,
        "operation_id": operation.id,
        "key": "nginx",
        "project": "target",
        "environment": "target",
        "package": "1.0.0",
        "deployment": "1",
        **roles_registries.PATH_VALUES,
        **roles_mirrors.PATH_VALUES,
        **roles_callbacks.PATH_VALUES,
        **roles_builds.PATH_VALUES,
    }


# Who may call what does not depend on the backend (tests/auth covers tokens on both): SQLite only.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("method", "path"), sorted(MINIMUM_ROLE), ids=[f"{m} {p}" for m, p in sorted(MINIMUM_ROLE)]
)
def test_each_role_may_call_exactly_what_the_table_says(
    cheap_hashes, settings, client, tokens, targets, method, path
):
    minimum = MINIMUM_ROLE[(method, path)]
    url = path.format(**targets)
    for role in ROLES:
        headers = {} if role == "anonymous" else bearer(tokens[role])
        before = state_of(settings)
        response = client.request(method, url, headers=headers, **REQUESTS.get((method, path), {}))
        where = f"{method} {url} as {role}"
        if ROLES.index(role) >= ROLES.index(minimum):
            assert response.status_code not in (401, 403, 500), (where, response.text)
            continue
        if role == "anonymous":
            assert_error(response, 401, "unauthenticated")
            assert response.headers["www-authenticate"] == "Bearer"
        else:
            error = assert_error(response, 403, "forbidden")
            assert error["details"] == {"required_role": minimum, "role": role}, where
        assert state_of(settings) == before, f"{where} was refused but changed something"

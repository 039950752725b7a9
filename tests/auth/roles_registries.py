"""Minimum roles, refusable request bodies and path values of the registry routes."""

REGISTRIES = "/api/v1/registries"

MINIMUM_ROLE: dict[tuple[str, str], str] = {
    ("GET", REGISTRIES): "viewer",
    ("POST", REGISTRIES): "admin",
    ("GET", f"{REGISTRIES}/{{name}}"): "viewer",
    ("PATCH", f"{REGISTRIES}/{{name}}"): "admin",
    ("DELETE", f"{REGISTRIES}/{{name}}"): "admin",
    ("POST", f"{REGISTRIES}/{{name}}/test"): "operator",
    ("GET", f"{REGISTRIES}/{{name}}/revisions"): "viewer",
}

# Valid bodies: let through, each would save something (an admin's POST tries a login at a
# closed port and is refused 502 at once; the PATCH names a registry that does not exist).
REQUESTS: dict[tuple[str, str], dict] = {
    ("POST", REGISTRIES): {
        "json": {
            "name": "new-registry",
            "url": "127.0.0.1:9",
            "username": "robot$roles",
            "password": "a-password-1",
        }
    },
    ("PATCH", f"{REGISTRIES}/{{name}}"): {"json": {"description": "changed"}},
}

# Values for path parameters these routes add (merged into test_roles' `targets`): none, they
# take `{name}` like the other targets.
PATH_VALUES: dict[str, str] = {}

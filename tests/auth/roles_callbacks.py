"""Minimum roles and refusable request bodies of the callback and runtime-settings routes."""

CALLBACKS = "/api/v1/callbacks"
HEADERS = "/api/v1/settings/callback-headers"
OUTBOUND = "/api/v1/settings/outbound-allow"

MINIMUM_ROLE: dict[tuple[str, str], str] = {
    ("GET", CALLBACKS): "viewer",
    ("POST", f"{CALLBACKS}/test"): "operator",
    ("GET", HEADERS): "viewer",
    ("PUT", HEADERS): "admin",
    ("GET", f"{HEADERS}/revisions"): "viewer",
    # The allow-list holds no secret (networks and host names), so viewers may read it.
    ("GET", OUTBOUND): "viewer",
    ("PUT", OUTBOUND): "admin",
    ("GET", f"{OUTBOUND}/revisions"): "viewer",
}

# Valid bodies: let through, each would save a new revision.
REQUESTS: dict[tuple[str, str], dict] = {
    ("PUT", HEADERS): {"json": {"X-BizType": "DROS", "Authorization": "Bearer role-test"}},
    ("PUT", OUTBOUND): {"json": {"entries": ["10.0.0.0/8"]}},
}

# Values for path parameters these routes add (merged into test_roles' `targets`).
PATH_VALUES: dict[str, str] = {}

"""Minimum roles, refusable request bodies and path values of the mirror-profile routes."""

PROFILES = "/api/v1/mirror-profiles"
PROFILE = f"{PROFILES}/{{type}}/{{file_name}}"

MINIMUM_ROLE: dict[tuple[str, str], str] = {
    ("GET", PROFILES): "viewer",
    ("POST", PROFILES): "admin",
    ("GET", PROFILE): "viewer",
    ("PUT", PROFILE): "admin",
    ("DELETE", PROFILE): "admin",
    ("GET", f"{PROFILE}/revisions"): "viewer",
}

_LIST = "deb http://127.0.0.1:9/debian/ bookworm main\n"

# Valid bodies: let through, each would save something.
REQUESTS: dict[tuple[str, str], dict] = {
    ("POST", PROFILES): {"json": {"type": "corp", "file_name": "debian-12.list", "content": _LIST}},
    ("PUT", PROFILE): {"json": {"content": _LIST, "description": "override"}},
}

# Values for path parameters these routes add (merged into test_roles' `targets`): a built-in
# profile, so every route has something to act on.
PATH_VALUES: dict[str, str] = {"type": "ali", "file_name": "ubuntu-18.04.list"}

"""Minimum roles (and refusable request bodies) of the host, host-group and credential routes."""

CREDENTIALS = "/api/v1/credentials"
HOSTS = "/api/v1/hosts"
GROUPS = "/api/v1/host-groups"

MINIMUM_ROLE: dict[tuple[str, str], str] = {
    ("GET", CREDENTIALS): "viewer",
    ("POST", CREDENTIALS): "admin",
    ("GET", f"{CREDENTIALS}/{{name}}"): "viewer",
    ("PATCH", f"{CREDENTIALS}/{{name}}"): "admin",
    ("DELETE", f"{CREDENTIALS}/{{name}}"): "admin",
    ("GET", f"{CREDENTIALS}/{{name}}/revisions"): "viewer",
    ("GET", HOSTS): "viewer",
    ("POST", HOSTS): "admin",
    ("GET", f"{HOSTS}/{{name}}"): "viewer",
    ("PATCH", f"{HOSTS}/{{name}}"): "admin",
    ("DELETE", f"{HOSTS}/{{name}}"): "admin",
    ("POST", f"{HOSTS}/{{name}}/test"): "operator",
    ("POST", f"{HOSTS}/{{name}}/forget-host-key"): "admin",
    ("GET", f"{HOSTS}/{{name}}/revisions"): "viewer",
    ("GET", GROUPS): "viewer",
    ("POST", GROUPS): "admin",
    ("GET", f"{GROUPS}/{{name}}"): "viewer",
    ("PATCH", f"{GROUPS}/{{name}}"): "admin",
    ("DELETE", f"{GROUPS}/{{name}}"): "admin",
    ("GET", f"{GROUPS}/{{name}}/revisions"): "viewer",
}

# Valid bodies: let through, each would save something (or change the row named by the path).
REQUESTS: dict[tuple[str, str], dict] = {
    ("POST", CREDENTIALS): {
        "json": {"name": "new-login", "kind": "password", "password": "a-password-1"}
    },
    ("PATCH", f"{CREDENTIALS}/{{name}}"): {"json": {"password": "another-password-2"}},
    ("POST", HOSTS): {
        "json": {
            "name": "new-host",
            "address": "127.0.0.1",
            "credential": "target",
            "labels": {"role": "web"},
            "verify": False,
        }
    },
    ("PATCH", f"{HOSTS}/{{name}}"): {"json": {"labels": {"role": "db"}, "verify": False}},
    ("POST", GROUPS): {"json": {"name": "new-group", "selector": {"role": "web"}}},
    ("PATCH", f"{GROUPS}/{{name}}"): {"json": {"selector": {"role": "db"}}},
}

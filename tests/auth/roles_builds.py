"""Minimum roles, refusable request bodies and path values of the builds and FastBuild routes."""

BUILDS = "/api/v1/builds"
FASTBUILD = "/api/fast-build"

MINIMUM_ROLE: dict[tuple[str, str], str] = {
    ("GET", BUILDS): "viewer",
    ("POST", BUILDS): "operator",
    ("GET", f"{BUILDS}/{{build_id}}"): "viewer",
    ("GET", f"{BUILDS}/{{build_id}}/dockerfile"): "viewer",
    ("POST", f"{BUILDS}/{{build_id}}/cancel"): "operator",
    ("GET", f"{FASTBUILD}/config/config-fastbuild"): "viewer",
    ("POST", f"{FASTBUILD}/config/config-fastbuild"): "admin",
    ("POST", f"{FASTBUILD}/config/update-docker-server"): "admin",
    ("POST", f"{FASTBUILD}/config/update-headers"): "admin",
    ("POST", f"{FASTBUILD}/config/test-callback"): "operator",
    ("POST", f"{FASTBUILD}/image/build-image"): "operator",
    ("GET", f"{FASTBUILD}/image/tasks"): "viewer",
    ("GET", f"{FASTBUILD}/image/tasks/{{task_id}}"): "viewer",
    ("POST", f"{FASTBUILD}/image/pull-image"): "operator",
    ("POST", f"{FASTBUILD}/image/check-image"): "operator",
}

_SPEC = {"task_name": "t", "base_image": "local/busybox:1", "target_image": "local/x:1"}

# Valid bodies: let through, each would save something (or change the row named by the path).
REQUESTS: dict[tuple[str, str], dict] = {
    ("POST", BUILDS): {"json": {**_SPEC, "push": False}},
    ("POST", f"{FASTBUILD}/config/update-headers"): {"json": {"X-BizType": "DROS"}},
    ("POST", f"{FASTBUILD}/config/update-docker-server"): {"data": {"host": "127.0.0.1"}},
    ("POST", f"{FASTBUILD}/image/build-image"): {"json": {**_SPEC, "push": False}},
    # A registry that refuses at once: pulling from Docker Hub would wait for a network not here.
    ("POST", f"{FASTBUILD}/image/pull-image"): {"params": {"image_name": "127.0.0.1:9/x/y:1"}},
    ("POST", f"{FASTBUILD}/image/check-image"): {"params": {"image_name": "local/busybox:1"}},
}

# Values for path parameters these routes add (merged into test_roles' `targets`).
PATH_VALUES: dict[str, str] = {"build_id": "1", "task_id": "1"}

"""Minimum roles (and refusable request bodies) of the release routes."""

PROJECTS = "/api/v1/projects"
PROJECT = f"{PROJECTS}/{{project}}"
ENV = f"{PROJECT}/environments/{{environment}}"
PACKAGE = f"{PROJECT}/packages/{{package}}"
DEPLOYMENT = f"{ENV}/deployments/{{deployment}}"

MINIMUM_ROLE: dict[tuple[str, str], str] = {
    ("GET", "/api/v1/release-profiles"): "viewer",
    ("GET", PROJECTS): "viewer",
    ("POST", PROJECTS): "admin",
    ("GET", PROJECT): "viewer",
    ("PATCH", PROJECT): "admin",
    ("DELETE", PROJECT): "admin",
    ("GET", f"{PROJECT}/environments"): "viewer",
    ("POST", f"{PROJECT}/environments"): "admin",
    ("GET", ENV): "viewer",
    ("PATCH", ENV): "admin",
    ("DELETE", ENV): "admin",
    ("GET", f"{PROJECT}/packages"): "viewer",
    ("POST", f"{PROJECT}/packages"): "operator",
    ("POST", f"{PROJECT}/packages/from-url"): "operator",
    ("GET", PACKAGE): "viewer",
    ("GET", f"{PACKAGE}/download"): "viewer",
    ("DELETE", PACKAGE): "operator",
    ("GET", f"{ENV}/deployments"): "viewer",
    ("POST", f"{ENV}/deployments"): "operator",
    ("GET", DEPLOYMENT): "viewer",
    ("POST", f"{DEPLOYMENT}/continue"): "operator",
    ("POST", f"{DEPLOYMENT}/cancel"): "operator",
    ("POST", f"{DEPLOYMENT}/resume"): "operator",
    ("POST", f"{ENV}/rollback"): "operator",
}

REQUESTS: dict[tuple[str, str], dict] = {
    ("POST", PROJECTS): {"json": {"name": "newproject", "kind": "wecube"}},
    ("PATCH", PROJECT): {"json": {"description": "changed"}},
    ("POST", f"{PROJECT}/environments"): {
        "json": {"name": "prod", "host_group": "web", "deploy_root": "/data/x"}
    },
    ("PATCH", ENV): {"json": {"keep_releases": 3}},
    ("POST", f"{PROJECT}/packages/from-url"): {
        "json": {"url": "http://127.0.0.1:9/demo_1.0.0_1.tar.gz"}
    },
    ("POST", f"{ENV}/deployments"): {"json": {"package": "1.0.0"}},
    ("POST", f"{ENV}/rollback"): {"json": {}},
}

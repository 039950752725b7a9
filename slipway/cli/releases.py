"""`slipway releases`: packages, deployments and rollback through the API.

slipway releases upload demo ./demo-app_1.0.0_20240101001.tar.gz
slipway releases deploy demo prod --package 1.0.0 --canary 1 --batch-size 25% --wait
slipway releases status demo prod 7
slipway releases rollback demo prod --wait
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from slipway.cli.client import check, client, request
from slipway.cli.common import EXIT_FAILED, EXIT_UNAVAILABLE, EXIT_USAGE, fail, settings
from slipway.cli.ops import FAILED_STATUSES, follow_operation
from slipway.cli.output import print_json, short_time, size, table
from slipway.cli.release_views import hosts_summary, print_plan, show_deployment

app = typer.Typer(
    help="Release packages to host groups: upload, deploy, status, rollback.",
    no_args_is_help=True,
)
projects_app = typer.Typer(help="Release projects: what is released, and its kind.")
environments_app = typer.Typer(help="A project's environments: where it is released to.")
app.add_typer(projects_app, name="projects")
app.add_typer(environments_app, name="environments")

JsonOption = Annotated[bool, typer.Option("--json", help="print the API's JSON")]
WaitOption = Annotated[
    bool, typer.Option("--wait", help="follow the operation's log; exit 1 if it fails")
]
HostOption = Annotated[
    list[str] | None, typer.Option("--host", help="only this host of the group, repeatable")
]
ProjectArg = Annotated[str, typer.Argument(help="the project's name")]
EnvironmentArg = Annotated[str, typer.Argument(help="the environment's name, e.g. prod")]
DeploymentArg = Annotated[str, typer.Argument(help="the deployment's id (a number)")]
# An upload is inspected before the answer comes: allow that time for a multi-GB package.
UPLOAD_READ_TIMEOUT = 3600.0


def _env(project: ProjectArg, environment: EnvironmentArg, suffix: str = "") -> str:
    return f"/projects/{project}/environments/{environment}{suffix}"


# --- projects and environments --------------------------------------------------------------------


@projects_app.command("list")
def projects_list(as_json: JsonOption = False) -> None:
    """List projects with their kind and environments."""
    page = request("GET", "/projects")
    if as_json:
        print_json(page)
        return
    rows = [
        [p["name"], p["kind"], ",".join(p["environments"]), p["description"]] for p in page["items"]
    ]
    table(["PROJECT", "KIND", "ENVIRONMENTS", "DESCRIPTION"], rows)


@projects_app.command("create")
def projects_create(
    name: Annotated[str, typer.Argument(help="the project's name (a DNS label)")],
    kind: Annotated[
        str, typer.Option(help="wecube (the package brings its scripts) or a profile: jar, war, …")
    ] = "wecube",
    description: Annotated[str, typer.Option()] = "",
    config_glob: Annotated[
        list[str] | None,
        typer.Option("--config-glob", help="config files to render, repeatable (default conf/**)"),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a project (admin)."""
    body: dict[str, Any] = {"name": name, "kind": kind, "description": description}
    if config_glob:
        body["config_globs"] = config_glob
    project = request("POST", "/projects", json=body)
    if as_json:
        print_json(project)
        return
    print(f"project {project['name']} created (kind {project['kind']})")


@projects_app.command("kinds")
def projects_kinds(as_json: JsonOption = False) -> None:
    """List project kinds: wecube and the deploy profiles."""
    page = request("GET", "/release-profiles")
    if as_json:
        print_json(page)
        return
    rows = [
        [k["name"], ",".join(k["scripts"]), k["source"], k["description"]] for k in page["items"]
    ]
    table(["KIND", "SCRIPTS", "SOURCE", "DESCRIPTION"], rows)


@environments_app.command("list")
def environments_list(project: ProjectArg, as_json: JsonOption = False) -> None:
    """List a project's environments."""
    page = request("GET", f"/projects/{project}/environments")
    if as_json:
        print_json(page)
        return
    rows = [
        [e["name"], e["host_group"], e["deploy_root"], e["layout"], len(e["hosts"])]
        for e in page["items"]
    ]
    table(["ENVIRONMENT", "HOST GROUP", "DEPLOY ROOT", "LAYOUT", "HOSTS DEPLOYED"], rows)


# --- packages -------------------------------------------------------------------------------------


def _send(method: str, path: str, **kwargs: Any) -> Any:
    """Like `request`, but waits as long as the API inspects a big package."""
    import httpx

    try:
        with client(timeout=httpx.Timeout(30.0, read=UPLOAD_READ_TIMEOUT)) as http:
            return check(http.request(method, path, **kwargs))
    except httpx.TransportError as error:
        fail(f"cannot reach slipway at {settings().url}: {error}", EXIT_UNAVAILABLE)


@app.command()
def upload(
    project: ProjectArg,
    file: Annotated[
        Path | None, typer.Argument(help="the package: name_X.Y.Z_build.tar.gz", dir_okay=False)
    ] = None,
    url: Annotated[str | None, typer.Option(help="let slipway fetch the package from here")] = None,
    sha256: Annotated[
        str | None, typer.Option(help="with --url: the file's expected SHA-256")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Upload a package file (streamed), or have slipway fetch one with --url."""
    if (file is None) == (url is None):
        fail("give a package FILE or --url, not both and not neither", EXIT_USAGE)
    if file is not None:
        if sha256 is not None:
            fail("--sha256 goes with --url; an uploaded file's SHA-256 is printed", EXIT_USAGE)
        try:
            handle = file.open("rb")
        except OSError as error:
            fail(f"cannot read {file}: {error.strerror}", EXIT_USAGE)
        with handle:  # httpx reads the file in chunks as it sends: never whole in memory
            package = _send(
                "POST",
                f"/projects/{project}/packages",
                files={"file": (file.name, handle, "application/gzip")},
            )
    else:
        body = {"url": url, **({"sha256": sha256} if sha256 else {})}
        package = _send("POST", f"/projects/{project}/packages/from-url", json=body)
    if as_json:
        print_json(package)
        return
    print(
        f"{package['kind']} package {package['name']} {package['version']} stored: "
        f"{package['filename']} ({size(package['size'])}, sha256 {package['sha256']})"
    )
    if package["variables"]:
        print(f"variables used: {', '.join(sorted(package['variables']))}")


@app.command()
def packages(
    project: ProjectArg,
    kind: Annotated[str | None, typer.Option(help="only app or db packages")] = None,
    as_json: JsonOption = False,
) -> None:
    """List a project's packages, newest version first."""
    if kind not in (None, "app", "db"):
        fail(f"--kind {kind!r} is not app or db", EXIT_USAGE)
    page = request("GET", f"/projects/{project}/packages", params={"kind": kind} if kind else {})
    if as_json:
        print_json(page)
        return
    rows = [
        [p["version"], p["kind"], p["name"], p["build"], size(p["size"]), p["uploaded_by"],
         short_time(p["created_at"]), p["filename"]]
        for p in page["items"]
    ]  # fmt: skip
    table(["VERSION", "KIND", "NAME", "BUILD", "SIZE", "BY", "UPLOADED", "FILE"], rows)


# --- deployments ----------------------------------------------------------------------------------


def _strategy(
    batch_size: str | None,
    canary: int | None,
    pause: str | None,
    max_failures: int | None,
    parallel: int | None,
    serial: bool,
) -> dict[str, Any]:
    """Only the options given: the API lays them over the environment's strategy."""
    strategy: dict[str, Any] = {}
    if batch_size is not None:
        strategy["batch_size"] = int(batch_size) if batch_size.isdigit() else batch_size
    if canary is not None:
        strategy["canary"] = canary
    if pause is not None:
        try:
            strategy["pause"] = "manual" if pause == "manual" else float(pause)
        except ValueError:
            fail(f"--pause {pause!r} is not a number of seconds or 'manual'", EXIT_USAGE)
    if max_failures is not None:
        strategy["max_failures"] = max_failures
    if parallel is not None:
        strategy["parallel"] = parallel
    if serial:
        strategy["serial"] = True
    return strategy


def _finish(
    answer: dict[str, Any], project: ProjectArg, environment: EnvironmentArg, wait: bool
) -> None:
    """Say what started; with --wait follow it, show the outcome, and exit 1 if it failed."""
    deployment, operation = answer["deployment"], answer["operation"]
    batches = " ".join(f"[{', '.join(batch)}]" for batch in deployment["batches"])
    target = deployment["version"] or deployment["db_version"] or "-"
    print(f"deployment {deployment['id']} ({deployment['kind']} {target}) {deployment['status']}"
          + (f"; batches {batches}" if batches else ""))  # fmt: skip
    if operation is None:
        return
    print(f"operation {operation['id']} {operation['kind']} {operation['status']}")
    if not wait:
        return
    status = follow_operation(operation["id"])
    view = request("GET", _env(project, environment, f"/deployments/{deployment['id']}"))
    hosts_summary(view)
    if status in FAILED_STATUSES or view["status"] != "succeeded":
        error = view.get("error") or {}
        message = error.get("message") or f"the operation {status}"
        fail(f"deployment {view['id']} {view['status']}: {message}", EXIT_FAILED)
    print(f"deployment {view['id']} succeeded")


@app.command()
def deploy(
    project: ProjectArg,
    environment: EnvironmentArg,
    package: Annotated[str | None, typer.Option(help="the app package version, e.g. 1.0.0")] = None,
    db_package: Annotated[
        str | None, typer.Option(help="the DB package version to go up to")
    ] = None,
    host: HostOption = None,
    batch_size: Annotated[
        str | None, typer.Option(help="hosts per batch: a number or a percent like 25%")
    ] = None,
    canary: Annotated[int | None, typer.Option(min=0, help="hosts in a first batch")] = None,
    pause: Annotated[
        str | None, typer.Option(help="seconds between batches, or 'manual' (see continue)")
    ] = None,
    max_failures: Annotated[
        int | None, typer.Option(min=0, help="failed hosts tolerated before later batches stop")
    ] = None,
    parallel: Annotated[int | None, typer.Option(min=1, help="hosts at once in a batch")] = None,
    serial: Annotated[bool, typer.Option("--serial", help="one host at a time")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show the plan after the checks; touch nothing")
    ] = False,
    wait: WaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Deploy a package (and/or a DB package) to an environment's hosts."""
    if package is None and db_package is None:
        fail("give --package VERSION, --db-package VERSION, or both", EXIT_USAGE)
    body: dict[str, Any] = {"dry_run": dry_run}
    body.update({k: v for k, v in {"package": package, "db_package": db_package}.items() if v})
    if host:
        body["hosts"] = host
    strategy = _strategy(batch_size, canary, pause, max_failures, parallel, serial)
    if strategy:
        body["strategy"] = strategy
    answer = request("POST", _env(project, environment, "/deployments"), json=body)
    if as_json and not wait:
        print_json(answer)
    elif dry_run:
        print_plan(answer)
    else:
        _finish(answer, project, environment, wait)


@app.command()
def status(
    project: ProjectArg,
    environment: EnvironmentArg,
    deployment_id: Annotated[str | None, typer.Argument(help="one deployment in detail")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="deployments to list")] = 5,
    as_json: JsonOption = False,
) -> None:
    """What each host runs and the last deployments; with an id, that deployment step by step."""
    if deployment_id is not None:
        view = request("GET", _env(project, environment, f"/deployments/{deployment_id}"))
        if as_json:
            print_json(view)
        else:
            show_deployment(view)
        return
    env = request("GET", _env(project, environment))
    group = request("GET", f"/host-groups/{env['host_group']}")
    recent = request("GET", _env(project, environment, "/deployments"), params={"limit": limit})
    if as_json:
        print_json({"environment": env, "host_group": group, "deployments": recent["items"]})
        return
    print(f"{project}/{environment}: group {env['host_group']}, {env['layout']} layout in "
          f"{env['deploy_root']}, keeps {env['keep_releases']} release(s)")  # fmt: skip
    releases = {row["host"]: row for row in env["hosts"]}
    members = group["members"]
    names = list(members) + [name for name in releases if name not in members]
    rows = []
    for name in names:
        row = releases.get(name) or {}
        note = "" if row else "never deployed"
        note = note if name in members else f"left group {group['name']}"
        rows.append(
            [name, row.get("current_version"), ",".join(row.get("kept_versions") or []),
             ",".join(row.get("good_versions") or []), row.get("deployment"), note]
        )  # fmt: skip
    headers = ["HOST", "RUNS", "KEPT", "WORKED", "BY DEPLOYMENT", "NOTE"]
    if not any(row[-1] for row in rows):
        headers, rows = headers[:-1], [row[:-1] for row in rows]
    table(headers, rows)
    print()
    rows = [
        [d["id"], d["kind"], d["version"], d["db_version"], d["status"],
         f"{d['progress']['percent']}%", d["actor"], short_time(d["created_at"]),
         (d["error"] or {}).get("message", "")[:60]]
        for d in recent["items"]
    ]  # fmt: skip
    table(["DEPLOYMENT", "KIND", "VERSION", "DB", "STATUS", "DONE", "BY", "CREATED", "ERROR"], rows)


@app.command("continue")
def continue_(
    project: ProjectArg, environment: EnvironmentArg, deployment_id: DeploymentArg
) -> None:
    """Let a deployment paused with --pause manual start its next batch."""
    view = request("POST", _env(project, environment, f"/deployments/{deployment_id}/continue"))
    print(f"deployment {view['id']}: batch {view['next_batch'] + 1} starts")


@app.command()
def cancel(project: ProjectArg, environment: EnvironmentArg, deployment_id: DeploymentArg) -> None:
    """Cancel a deployment: hosts stop between steps, each on a whole release."""
    view = request("POST", _env(project, environment, f"/deployments/{deployment_id}/cancel"))
    note = "" if view["status"] == "canceled" else " (hosts stop at their next step)"
    print(f"deployment {view['id']} {view['status']}{note}")


@app.command()
def resume(
    project: ProjectArg,
    environment: EnvironmentArg,
    deployment_id: DeploymentArg,
    wait: WaitOption = False,
) -> None:
    """Run a failed or canceled deployment again for the hosts it did not finish."""
    answer = request("POST", _env(project, environment, f"/deployments/{deployment_id}/resume"))
    _finish(answer, project, environment, wait)


@app.command()
def rollback(
    project: ProjectArg,
    environment: EnvironmentArg,
    to: Annotated[
        str | None, typer.Option(help="the version to go back to (default: the previous good one)")
    ] = None,
    db: Annotated[bool, typer.Option("--db", help="also run the DB rollback scripts")] = False,
    host: HostOption = None,
    wait: WaitOption = False,
) -> None:
    """Switch hosts back to a kept release that worked there."""
    body: dict[str, Any] = {"db": db, **({"to": to} if to else {})}
    if host:
        body["hosts"] = host
    answer = request("POST", _env(project, environment, "/rollback"), json=body)
    _finish(answer, project, environment, wait)

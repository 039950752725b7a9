"""`slipway builds`: submit a spec, watch it, read its Dockerfile, cancel (an API client)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from slipway.cli.client import request
from slipway.cli.common import EXIT_FAILED, EXIT_USAGE, fail
from slipway.cli.ops import FAILED_STATUSES, follow_operation

app = typer.Typer(
    help="Docker image builds from a JSON spec (FastBuild's or slipway's): submit, status, logs.",
    no_args_is_help=True,
)


def _row(build: dict[str, Any]) -> str:
    return (
        f"{build['id']:>6}  {build['status']:<9}  {build['task_name'][:30]:<30}  "
        f"{build['target_image']}  {build['digest'] or '-'}"
    )


def _read_spec(path: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}", EXIT_USAGE)
    try:
        body = json.loads(text)
    except ValueError as exc:
        fail(f"{path} is not valid JSON: {exc}", EXIT_USAGE)
    if not isinstance(body, dict):
        fail(f"{path} must hold a JSON object (a build spec)", EXIT_USAGE)
    return body


@app.command()
def submit(
    spec: Annotated[str, typer.Argument(help="the spec as a JSON file ('-' reads stdin)")],
    endpoint: Annotated[
        str | None, typer.Option(help="the Docker endpoint to build on (default: FastBuild's)")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="stream the build log; exit with its outcome")
    ] = False,
) -> None:
    """Submit a build; prints the build id (and with --follow, its log)."""
    params = {"endpoint": endpoint} if endpoint else None
    answer = request("POST", "/builds", json=_read_spec(spec), params=params)
    build, operation = answer["build"], answer["operation"]
    print(f"build {build['id']} ({build['task_name']}) queued as operation {operation['id']}")
    if follow and follow_operation(operation["id"]) in FAILED_STATUSES:
        raise typer.Exit(EXIT_FAILED)


@app.command("list")
def list_(
    status: Annotated[str | None, typer.Option(help="only this status")] = None,
    task_name: Annotated[str | None, typer.Option(help="only this task name")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List builds, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    if task_name:
        params["task_name"] = task_name
    page = request("GET", "/builds", params=params)
    if as_json:
        print(json.dumps(page, indent=2))
        return
    for build in page["items"]:
        print(_row(build))


@app.command()
def status(build_id: str) -> None:
    """Show one build as JSON; exits 1 when it failed or was canceled."""
    build = request("GET", f"/builds/{build_id}")
    print(json.dumps(build, indent=2))
    if build["status"] in FAILED_STATUSES:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def logs(
    build_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="follow until it ends")] = False,
) -> None:
    """Print a build's log (its operation's)."""
    build = request("GET", f"/builds/{build_id}")
    if not build["operation_id"]:
        fail(f"build {build_id} has no operation")
    if not follow:
        sys.stdout.write(request("GET", f"/operations/{build['operation_id']}/logs"))
        return
    if follow_operation(build["operation_id"]) in FAILED_STATUSES:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def dockerfile(build_id: str) -> None:
    """Print the Dockerfile the build uses, exactly."""
    sys.stdout.write(request("GET", f"/builds/{build_id}/dockerfile"))


@app.command()
def cancel(build_id: str) -> None:
    """Cancel a queued or running build."""
    operation = request("POST", f"/builds/{build_id}/cancel")["operation"]
    print(f"build {build_id}: operation {operation['id']} {operation['status']}")

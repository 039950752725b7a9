"""`slipway apps`: the app store through the API."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from slipway.cli.client import request
from slipway.cli.common import EXIT_FAILED, EXIT_USAGE, fail
from slipway.cli.ops import FAILED_STATUSES, follow_operation

app = typer.Typer(help="Apps from the catalog: install, list, start/stop, upgrade, uninstall.")

EndpointOption = Annotated[str | None, typer.Option(help="the app's Docker endpoint")]
WaitOption = Annotated[bool, typer.Option("--wait", help="follow the operation until it ends")]


def _params(endpoint: str | None) -> dict[str, str]:
    return {"endpoint": endpoint} if endpoint else {}


def _finish(operation: dict[str, Any], wait: bool) -> None:
    print(f"operation {operation['id']} {operation['kind']} {operation['status']}")
    if wait and follow_operation(operation["id"]) in FAILED_STATUSES:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def catalog(
    query: Annotated[str | None, typer.Argument(help="search words")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Search the catalog."""
    page = request("GET", "/catalog", params={"q": query} if query else {})
    if as_json:
        print(json.dumps(page, indent=2))
        return
    for item in page["items"]:
        print(f"{item['key']:<24} {item.get('default_version') or '-':<12} {item['trademark']}")


@app.command()
def install(
    key: Annotated[str, typer.Argument(help="catalog key, e.g. wordpress")],
    name: Annotated[str, typer.Argument(help="the app's name (a DNS label)")],
    setting: Annotated[
        list[str] | None, typer.Option("--setting", "-s", help="NAME=VALUE, repeatable")
    ] = None,
    version: Annotated[str | None, typer.Option()] = None,
    edition: Annotated[str | None, typer.Option()] = None,
    endpoint: EndpointOption = None,
    wait: WaitOption = False,
) -> None:
    """Install an app; generated passwords are printed once."""
    settings: dict[str, str] = {}
    for item in setting or []:
        if "=" not in item:
            fail(f"--setting {item!r} is not NAME=VALUE", EXIT_USAGE)
        name_, value = item.split("=", 1)
        settings[name_] = value
    body = {"app": key, "name": name, "settings": settings}
    body.update(
        {
            k: v
            for k, v in {"version": version, "edition": edition, "endpoint": endpoint}.items()
            if v
        }
    )
    answer = request("POST", "/apps", json=body)
    for secret_name, value in answer["generated_secrets"].items():
        print(f"{secret_name}={value}  (generated; shown once)")
    _finish(answer["operation"], wait)


@app.command("list")
def list_(
    endpoint: EndpointOption = None, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """List installed apps with their status."""
    page = request("GET", "/apps", params=_params(endpoint))
    if as_json:
        print(json.dumps(page, indent=2))
        return
    for item in page["items"]:
        print(
            f"{item['name']:<20} {item['endpoint']:<12} {item['status']:<12} "
            f"{item['app'] or '(adopted)':<16} {item['version'] or '-'}"
        )


@app.command()
def show(name: str, endpoint: EndpointOption = None) -> None:
    """Show one app as JSON."""
    print(json.dumps(request("GET", f"/apps/{name}", params=_params(endpoint)), indent=2))


def _lifecycle(verb: str) -> Any:
    def command(name: str, endpoint: EndpointOption = None, wait: WaitOption = False) -> None:
        answer = request("POST", f"/apps/{name}/{verb}", params=_params(endpoint))
        _finish(answer["operation"], wait)

    command.__doc__ = f"{verb.capitalize()} an app."
    return command


for _verb in ("start", "stop", "restart", "redeploy"):
    app.command(_verb)(_lifecycle(_verb))


@app.command()
def upgrade(
    name: str,
    version: Annotated[str, typer.Option(help="the version to move to")],
    endpoint: EndpointOption = None,
    wait: WaitOption = False,
) -> None:
    """Upgrade an app to another version (rolled back on failure)."""
    answer = request(
        "POST", f"/apps/{name}/upgrade", params=_params(endpoint), json={"version": version}
    )
    _finish(answer["operation"], wait)


@app.command()
def uninstall(
    name: str,
    purge: Annotated[bool, typer.Option("--purge", help="also remove its volumes")] = False,
    endpoint: EndpointOption = None,
    wait: WaitOption = False,
) -> None:
    """Uninstall an app (volumes are kept unless --purge)."""
    params = {**_params(endpoint), **({"purge": "true"} if purge else {})}
    answer = request("DELETE", f"/apps/{name}", params=params)
    _finish(answer["operation"], wait)


@app.command()
def logs(
    name: str,
    service: Annotated[str | None, typer.Option(help="one compose service")] = None,
    tail: Annotated[int, typer.Option(min=0)] = 200,
    endpoint: EndpointOption = None,
) -> None:
    """Print the app's container logs."""
    params = {**_params(endpoint), "tail": str(tail), **({"service": service} if service else {})}
    sys.stdout.write(request("GET", f"/apps/{name}/logs", params=params))

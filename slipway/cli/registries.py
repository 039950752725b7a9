"""`slipway registries`: container registries through the API.

slipway registries add harbor --url 10.101.12.128 --username 'robot$algorithm' --password-stdin
slipway registries test harbor
slipway registries update harbor --dns-alias harbor.example.com

The password is never an argument (it would show in `ps` and the shell history): it is read
from stdin with --password-stdin, or prompted for.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from slipway.cli.client import request
from slipway.cli.common import EXIT_USAGE, fail
from slipway.cli.output import print_json

app = typer.Typer(
    help="Container registries (Harbor, registry:2): logins checked on save.", no_args_is_help=True
)

JsonOption = Annotated[bool, typer.Option("--json", help="print the API's JSON")]
Name = Annotated[str, typer.Argument(help="the registry's name")]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="read the password (or robot token) from stdin")
]
InsecureOption = Annotated[
    bool | None,
    typer.Option(
        "--insecure/--secure",
        help="allow plain http and unverified TLS (Docker's insecure registry)",
    ),
]


def _password(from_stdin: bool) -> str:
    """The password from stdin's first line, or asked for without echo."""
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            fail("the password expected on stdin, got nothing", EXIT_USAGE)
        return line
    value = typer.prompt("password", hide_input=True, err=True)
    if not value:
        fail("the password is empty", EXIT_USAGE)
    return str(value)


def _line(registry: dict[str, Any]) -> str:
    state = "ok" if registry["last_error"] is None else f"FAIL {registry['last_error']['code']}"
    alias = registry["dns_alias"] or "-"
    return (
        f"{registry['name']:<20} {registry['url']:<32} {registry['username']:<24} "
        f"{alias:<24} {state}"
    )


@app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """List registries: name, url, username, DNS alias and the last login's outcome."""
    page = request("GET", "/registries")
    if as_json:
        print_json(page)
        return
    for registry in page["items"]:
        print(_line(registry))


@app.command()
def show(name: Name) -> None:
    """Show one registry as JSON (never its password)."""
    print_json(request("GET", f"/registries/{name}"))


@app.command()
def add(
    name: Name,
    url: Annotated[str, typer.Option(help="10.101.12.128, 127.0.0.1:5000 or https://host")],
    username: Annotated[str, typer.Option(help="e.g. a robot account: 'robot$project'")],
    password_stdin: PasswordStdin = False,
    dns_alias: Annotated[
        str | None, typer.Option(help="another host name images use for this registry")
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="allow plain http and unverified TLS")
    ] = False,
    description: Annotated[str, typer.Option()] = "",
    as_json: JsonOption = False,
) -> None:
    """Add a registry: slipway logs in first and saves nothing if that fails."""
    body: dict[str, Any] = {
        "name": name,
        "url": url,
        "username": username,
        "password": _password(password_stdin),
        "insecure": insecure,
        "description": description,
    }
    if dns_alias is not None:
        body["dns_alias"] = dns_alias
    registry = request("POST", "/registries", json=body)
    if as_json:
        print_json(registry)
        return
    print(
        f"registry {registry['name']} added: {registry['username']} logs in at "
        f"{registry['base_url']} ({registry['auth_scheme']} auth)"
    )


@app.command()
def update(
    name: Name,
    url: Annotated[str | None, typer.Option(help="a new address")] = None,
    username: Annotated[str | None, typer.Option(help="a new username")] = None,
    password: Annotated[bool, typer.Option("--password", help="prompt for a new password")] = False,
    password_stdin: PasswordStdin = False,
    dns_alias: Annotated[str | None, typer.Option(help="a new DNS alias; '' removes it")] = None,
    insecure: InsecureOption = None,
    description: Annotated[str | None, typer.Option()] = None,
    as_json: JsonOption = False,
) -> None:
    """Change a registry (a new revision); new login details are tried before they are saved."""
    body: dict[str, Any] = {}
    for key, value in (
        ("url", url),
        ("username", username),
        ("insecure", insecure),
        ("description", description),
    ):
        if value is not None:
            body[key] = value
    if dns_alias is not None:
        body["dns_alias"] = dns_alias or None
    if password or password_stdin:
        body["password"] = _password(password_stdin)
    if not body:
        fail("nothing to change: give at least one option (see --help)", EXIT_USAGE)
    registry = request("PATCH", f"/registries/{name}", json=body)
    if as_json:
        print_json(registry)
        return
    print(f"registry {registry['name']} updated (revision {registry['revision']})")


@app.command()
def remove(name: Name) -> None:
    """Delete a registry and its password."""
    request("DELETE", f"/registries/{name}")
    print(f"registry {name} removed")


@app.command()
def test(name: Name, as_json: JsonOption = False) -> None:
    """Log in now with the saved password."""
    result = request("POST", f"/registries/{name}/test")
    if as_json:
        print_json(result)
        return
    print(f"{result['name']}: ok; logged in at {result['base_url']} ({result['auth_scheme']} auth)")


@app.command()
def revisions(name: Name, as_json: JsonOption = False) -> None:
    """Every saved state of a registry, newest (the one in effect) first."""
    page = request("GET", f"/registries/{name}/revisions")
    if as_json:
        print_json(page)
        return
    for item in page["items"]:
        print(
            f"{item['revision']:>4} {item['created_at']:<32} {item['actor'] or '-':<16} "
            f"{','.join(item['changes'])}"
        )

"""`slipway hosts`: SSH hosts, host groups and credentials through the API.

slipway hosts credentials add ops-key --key-file ~/.ssh/id_ed25519
slipway hosts add web1 --address 10.0.0.5 --user deploy --credential ops-key --label role=web
slipway hosts test web1
slipway hosts groups add web --selector role=web
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from slipway.cli.client import request
from slipway.cli.common import EXIT_USAGE, fail
from slipway.cli.output import print_json

app = typer.Typer(help="SSH hosts, host groups and credentials.", no_args_is_help=True)
groups_app = typer.Typer(help="Host groups: ordered lists of hosts or label selectors.")
credentials_app = typer.Typer(help="Credentials: private keys and passwords, stored encrypted.")
app.add_typer(groups_app, name="groups")
app.add_typer(credentials_app, name="credentials")

JsonOption = Annotated[bool, typer.Option("--json", help="print the API's JSON")]
LabelOption = Annotated[
    list[str] | None, typer.Option("--label", "-l", help="KEY=VALUE, repeatable")
]
MAX_KEY_FILE = 16 << 10


def _pairs(items: list[str] | None, option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items or []:
        key, equals, value = item.partition("=")
        if not equals or not key:
            fail(f"{option} {item!r} is not KEY=VALUE", EXIT_USAGE)
        pairs[key] = value
    return pairs


def _labels_text(labels: dict[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in (labels or {}).items()) or "-"


def _stdin_line(what: str) -> str:
    """The first line of stdin (a secret is never an argument: it would show in `ps`)."""
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        fail(f"{what} expected on stdin, got nothing", EXIT_USAGE)
    return line


# --- hosts ----------------------------------------------------------------------------------------


def _host_line(host: dict[str, Any]) -> str:
    pin = host["host_key_fingerprint"] or "(not pinned)"
    where = f"{host['user']}@{host['address']}:{host['port']}"
    return f"{host['name']:<20} {where:<32} {host['credential']:<16} {pin:<52} " + _labels_text(
        host["labels"]
    )


@app.command("list")
def list_(label: LabelOption = None, as_json: JsonOption = False) -> None:
    """List hosts (those holding every --label, when given)."""
    page = request(
        "GET", "/hosts", params={"label": [f"{k}={v}" for k, v in _pairs(label, "--label").items()]}
    )
    if as_json:
        print_json(page)
        return
    for host in page["items"]:
        print(_host_line(host))


@app.command()
def add(
    name: Annotated[str, typer.Argument(help="the host's name (a DNS label)")],
    address: Annotated[str, typer.Option(help="host name or IP address")],
    credential: Annotated[str, typer.Option(help="the credential to log in with")],
    port: Annotated[int, typer.Option(min=1, max=65535)] = 22,
    user: Annotated[str, typer.Option(help="the login user")] = "root",
    label: LabelOption = None,
    deploy_root: Annotated[str | None, typer.Option(help="where releases go, e.g. /data")] = None,
    description: Annotated[str, typer.Option()] = "",
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="log in and pin the host key first")
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Add a host: slipway logs in first and pins its host key (unless --no-verify)."""
    body: dict[str, Any] = {
        "name": name,
        "address": address,
        "port": port,
        "user": user,
        "credential": credential,
        "labels": _pairs(label, "--label"),
        "description": description,
        "verify": verify,
    }
    if deploy_root is not None:
        body["deploy_root"] = deploy_root
    host = request("POST", "/hosts", json=body)
    if as_json:
        print_json(host)
        return
    pin = host["host_key_fingerprint"] or "not pinned yet (pinned on the first login)"
    print(f"host {host['name']} added; host key {pin}")


@app.command()
def show(name: Annotated[str, typer.Argument(help="name or id")]) -> None:
    """Show one host as JSON."""
    print_json(request("GET", f"/hosts/{name}"))


@app.command()
def test(
    name: Annotated[str, typer.Argument(help="name or id")], as_json: JsonOption = False
) -> None:
    """Log in now: the OS, free disk and the user's rights."""
    result = request("POST", f"/hosts/{name}/test")
    if as_json:
        print_json(result)
        return
    facts = result["facts"]
    rights = "root" if facts["is_root"] else ("sudo" if facts["sudo"] else "no sudo")
    free = facts.get("free_bytes")
    free_text = (
        f"{free / 2**30:.1f} GiB free at {facts.get('path') or '~'}"
        if free
        else "free disk unknown"
    )
    print(f"{result['name']}: ok; {facts['os']} ({facts['kernel']})")
    print(
        f"  user {facts['user']} uid {facts['uid']} ({rights}); groups {' '.join(facts['groups'])}"
    )
    print(f"  {free_text}")
    pinned = " (pinned now)" if result["pinned_now"] else ""
    print(f"  host key {result['host_key_fingerprint']}{pinned}")


@app.command("forget-key")
def forget_key(name: Annotated[str, typer.Argument(help="name or id")]) -> None:
    """Forget the pinned host key (after a reinstall); the next login pins the new one."""
    request("POST", f"/hosts/{name}/forget-host-key")
    print(f"host {name}: host key forgotten; `slipway hosts test {name}` pins the new one")


@app.command()
def remove(name: Annotated[str, typer.Argument(help="name or id")]) -> None:
    """Delete a host (refused while a group lists it)."""
    request("DELETE", f"/hosts/{name}")
    print(f"host {name} removed")


# --- groups ---------------------------------------------------------------------------------------


def _group_line(group: dict[str, Any]) -> str:
    kind = "selector " + _labels_text(group["selector"]) if group["selector"] else "hosts"
    return f"{group['name']:<20} {kind:<32} {' '.join(group['members']) or '-'}"


@groups_app.command("list")
def groups_list(as_json: JsonOption = False) -> None:
    """List host groups with their members now."""
    page = request("GET", "/host-groups")
    if as_json:
        print_json(page)
        return
    for group in page["items"]:
        print(_group_line(group))


@groups_app.command("add")
def groups_add(
    name: Annotated[str, typer.Argument(help="the group's name (a DNS label)")],
    host: Annotated[
        list[str] | None, typer.Option("--host", help="a host, repeatable; in deploy order")
    ] = None,
    selector: Annotated[
        list[str] | None, typer.Option("--selector", help="KEY=VALUE, repeatable")
    ] = None,
    description: Annotated[str, typer.Option()] = "",
    as_json: JsonOption = False,
) -> None:
    """Add a group: --host h0 --host h1 (in order) or --selector role=web."""
    body: dict[str, Any] = {"name": name, "description": description}
    if host:
        body["hosts"] = host
    if selector:
        body["selector"] = _pairs(selector, "--selector")
    group = request("POST", "/host-groups", json=body)
    if as_json:
        print_json(group)
        return
    print(f"group {group['name']} added: {' '.join(group['members']) or '(no hosts yet)'}")


@groups_app.command("show")
def groups_show(name: Annotated[str, typer.Argument(help="name or id")]) -> None:
    """Show one group as JSON."""
    print_json(request("GET", f"/host-groups/{name}"))


@groups_app.command("remove")
def groups_remove(name: Annotated[str, typer.Argument(help="name or id")]) -> None:
    """Delete a group (its hosts stay)."""
    request("DELETE", f"/host-groups/{name}")
    print(f"group {name} removed")


# --- credentials ----------------------------------------------------------------------------------


@credentials_app.command("list")
def credentials_list(as_json: JsonOption = False) -> None:
    """List credentials (never their secrets)."""
    page = request("GET", "/credentials")
    if as_json:
        print_json(page)
        return
    for item in page["items"]:
        print(f"{item['name']:<20} {item['kind']:<10} {item['fingerprint'] or '-'}")


@credentials_app.command("add")
def credentials_add(
    name: Annotated[str, typer.Argument(help="the credential's name (a DNS label)")],
    kind: Annotated[str | None, typer.Option(help="ssh_key or password")] = None,
    key_file: Annotated[
        Path | None, typer.Option("--key-file", help="the private key file (ssh_key)")
    ] = None,
    passphrase_stdin: Annotated[
        bool, typer.Option("--passphrase-stdin", help="read the key's passphrase from stdin")
    ] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from stdin (password)")
    ] = False,
    description: Annotated[str, typer.Option()] = "",
    as_json: JsonOption = False,
) -> None:
    """Add a private key (--key-file) or a password (--password-stdin); stored encrypted."""
    kind = kind or ("password" if password_stdin else "ssh_key")
    body: dict[str, Any] = {"name": name, "kind": kind, "description": description}
    if kind == "ssh_key":
        if key_file is None or password_stdin:
            fail("an ssh_key credential takes --key-file (and no --password-stdin)", EXIT_USAGE)
        body["private_key"] = _read_key_file(key_file)
        if passphrase_stdin:
            body["passphrase"] = _stdin_line("the passphrase")
    elif kind == "password":
        if not password_stdin or key_file is not None or passphrase_stdin:
            fail("a password credential takes --password-stdin (and no key options)", EXIT_USAGE)
        body["password"] = _stdin_line("the password")
    else:
        fail(f"--kind {kind!r} is not ssh_key or password", EXIT_USAGE)
    credential = request("POST", "/credentials", json=body)
    if as_json:
        print_json(credential)
        return
    print(f"credential {credential['name']} added ({credential['kind']})")
    if credential["public_key"]:
        print(f"  public key: {credential['public_key']}")


def _read_key_file(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_KEY_FILE + 1)
    except OSError as error:
        fail(f"cannot read --key-file {path}: {error.strerror}", EXIT_USAGE)
    if len(data) > MAX_KEY_FILE:
        fail(f"--key-file {path} is larger than a private key", EXIT_USAGE)
    return data.decode("utf-8", errors="replace")


@credentials_app.command("show")
def credentials_show(name: Annotated[str, typer.Argument(help="name or id")]) -> None:
    """Show one credential as JSON (never its secret)."""
    print_json(request("GET", f"/credentials/{name}"))


@credentials_app.command("remove")
def credentials_remove(name: Annotated[str, typer.Argument(help="name or id")]) -> None:
    """Delete a credential (refused while hosts use it)."""
    request("DELETE", f"/credentials/{name}")
    print(f"credential {name} removed")

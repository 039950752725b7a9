"""`slipway ops`: list, show, follow and cancel operations through the API."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer

from slipway.cli.client import check, client, request
from slipway.cli.common import EXIT_FAILED, EXIT_UNAVAILABLE, fail, settings

app = typer.Typer(help="Operations: list, show, follow logs, cancel (HTTP client of the API).")

FAILED_STATUSES = {"failed", "canceled"}


def _row(op: dict[str, Any]) -> str:
    return (
        f"{op['id']}  {op['status']:<9}  {op['kind']:<16}  {op['progress']['percent']:>3}%  "
        f"{op['subject'] or '-':<20}  {op['created_at']}"
    )


@app.command("list")
def list_(
    status: Annotated[str | None, typer.Option(help="only this status")] = None,
    kind: Annotated[str | None, typer.Option(help="only this kind")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List operations, newest first."""
    params = {
        "limit": limit,
        **({"status": status} if status else {}),
        **({"kind": kind} if kind else {}),
    }
    page = request("GET", "/operations", params=params)
    if as_json:
        print(json.dumps(page, indent=2))
        return
    for op in page["items"]:
        print(_row(op))


@app.command()
def show(operation_id: str) -> None:
    """Show one operation as JSON."""
    print(json.dumps(request("GET", f"/operations/{operation_id}"), indent=2))


@app.command()
def logs(
    operation_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="follow until it ends")] = False,
) -> None:
    """Print an operation's log; with --follow, stream it live and exit with its outcome."""
    if not follow:
        sys.stdout.write(request("GET", f"/operations/{operation_id}/logs"))
        return
    status = follow_operation(operation_id)
    if status in FAILED_STATUSES:
        raise typer.Exit(EXIT_FAILED)


def follow_operation(operation_id: str) -> str:
    """Stream SSE lines, reconnecting with Last-Event-ID; returns the final status."""
    import httpx

    last_id: str | None = None
    has_connected = False
    failures = 0
    # The API sends a keepalive every 15 s: a minute of silence means the connection is dead.
    timeout = httpx.Timeout(30.0, read=60.0)
    for _attempt in range(30):
        headers = {"Accept": "text/event-stream", **({"Last-Event-ID": last_id} if last_id else {})}
        try:
            with (
                client(timeout=timeout) as http,
                http.stream(
                    "GET",
                    f"/operations/{operation_id}/logs",
                    params={"follow": "true"},
                    headers=headers,
                ) as response,
            ):
                if response.status_code >= 400:
                    response.read()
                    check(response)
                has_connected, failures = True, 0
                event = None
                for line in response.iter_lines():
                    if line.startswith("id: "):
                        last_id = line[4:]
                    elif line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        data = json.loads(line[6:])
                        if event == "end":
                            return str(data["status"])
                        print(data["text"], flush=True)
        except httpx.TransportError as error:
            if not has_connected:
                fail(f"cannot reach slipway at {settings().url}: {error}", EXIT_UNAVAILABLE)
            # The API restarts or a proxy dropped us: come back after a pause, where we left off.
            time.sleep(min(0.25 * 2**failures, 5.0))
            failures += 1
    fail(f"lost the connection to the log of {operation_id}", EXIT_UNAVAILABLE)


@app.command()
def cancel(operation_id: str) -> None:
    """Cancel an operation (a running one stops at its next step)."""
    op = request("POST", f"/operations/{operation_id}/cancel")
    note = " (stopping at its next step)" if op["status"] == "running" else ""
    print(f"{op['id']} {op['status']}{note}")


@app.command()
def move(
    operation_id: str,
    before: Annotated[str | None, typer.Option(help="place before this waiting operation")] = None,
    after: Annotated[str | None, typer.Option(help="place after this waiting operation")] = None,
    to: Annotated[str | None, typer.Option(help="front or back")] = None,
) -> None:
    """Reorder a waiting operation."""
    body = {k: v for k, v in {"before": before, "after": after, "to": to}.items() if v}
    op = request("POST", f"/operations/{operation_id}/move", json=body)
    print(f"{op['id']} waiting at position {op['position']}")

"""The `slipway` command. Local commands act on the database and Redis; the others call the API."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from slipway import __version__
from slipway.cli import apps, builds, hosts, ops, registries, releases
from slipway.cli.common import (
    EXIT_FAILED,
    handle_errors,
    local_session,
    report_unexpected,
    settings,
)
from slipway.cli.local import db_app, secrets_app, tokens_app, users_app

app = typer.Typer(
    help="slipway: self-hosted application delivery.\n\nLocal commands (api, worker, db, users, "
    "tokens, secrets, check, version) act on this machine's database and Redis; the others (ops, "
    "…) call the API at SLIPWAY_URL with SLIPWAY_TOKEN.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(secrets_app, name="secrets")
app.add_typer(ops.app, name="ops")
app.add_typer(apps.app, name="apps")
app.add_typer(hosts.app, name="hosts")
app.add_typer(releases.app, name="releases")
app.add_typer(registries.app, name="registries")
app.add_typer(builds.app, name="builds")


@app.command()
@handle_errors
def api(
    host: Annotated[str | None, typer.Option(help="bind address (SLIPWAY_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (SLIPWAY_PORT)", min=1, max=65535)] = None,
    workers: Annotated[int, typer.Option(help="API processes", min=1)] = 1,
) -> None:
    """Serve the HTTP API and UI."""
    import uvicorn

    from slipway.core.logging import setup_logging

    config = settings()
    setup_logging(config, process="api")
    _refuse_wrong_key()
    uvicorn.run(
        "slipway.api.app:create_app",
        factory=True,
        host=host or config.host,
        port=port or config.port,
        workers=workers,
        log_config=None,
        access_log=False,
        proxy_headers=True,
    )


@app.command()
@handle_errors
def worker(
    queues: Annotated[
        str | None, typer.Option(help="comma-separated queues (SLIPWAY_QUEUES)")
    ] = None,
    burst: Annotated[bool, typer.Option("--burst", help="run what is queued, then exit")] = False,
    name: Annotated[str | None, typer.Option(help="worker name (default host.pid)")] = None,
) -> None:
    """Run operations from the queues."""
    from slipway.core.logging import setup_logging
    from slipway.jobs.kinds import load_kinds
    from slipway.jobs.worker import run_worker

    config = settings()
    setup_logging(config, process="worker")
    _refuse_wrong_key()
    load_kinds(config)
    chosen = [q.strip() for q in queues.split(",") if q.strip()] if queues else config.queues
    run_worker(config, queues=chosen, burst=burst, name=name)


def _refuse_wrong_key() -> None:
    from slipway.core.secrets import open_vault

    with local_session() as session:
        open_vault(session, settings())


@app.command()
@handle_errors
def version(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Print slipway's version (with --json, the whole manifest)."""
    if not as_json:
        print(__version__)
        return
    from slipway.system import service

    with local_session() as session:
        print(json.dumps(service.version(session, settings()), indent=2))


@app.command()
@handle_errors
def check() -> None:
    """Check the database, Redis, workers and data dir here and now (a system.check operation)."""
    from slipway.jobs import service
    from slipway.jobs.kinds import load_kinds
    from slipway.jobs.logs import read_lines
    from slipway.jobs.models import Trigger
    from slipway.jobs.runner import run_operation

    config = settings()
    load_kinds(config)
    with local_session() as session:
        operation = service.submit(
            session, config, kind="system.check", actor="cli", trigger=Trigger.cli, enqueue=False
        )
    run_operation(operation.id)
    with local_session() as session:
        for line in read_lines(session, operation.id):
            print(line.text)
        done = service.get_or_raise(session, operation.id)
        print(f"operation {done.id} {done.status}")
        if done.status != "succeeded":
            raise SystemExit(EXIT_FAILED)


def main() -> None:
    try:
        app(prog_name="slipway")
    except Exception as error:  # e.g. invalid settings, Redis down: one line, never a traceback
        report_unexpected(error)


if __name__ == "__main__":
    sys.exit(main())

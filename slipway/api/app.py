"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from anyio import to_thread
from fastapi import FastAPI
from starlette.types import Scope

from slipway import __version__
from slipway.api.errors import install_error_handlers
from slipway.api.middleware import RequestContextMiddleware, audit_values, route_template
from slipway.api.router import API_ROUTERS, ROOT_ROUTERS
from slipway.audit import service as audit_service
from slipway.auth.principals import listen_for_changes
from slipway.core import security
from slipway.core.config import Settings, get_settings
from slipway.core.db import session_scope
from slipway.core.secrets import open_vault
from slipway.jobs import maintenance
from slipway.jobs.kinds import load_kinds

log = logging.getLogger(__name__)

__all__ = ["create_app", "route_template"]


def _write_audit(scope: Scope, status_code: int) -> None:
    audit_service.record_now(scope["app"].state.settings, **audit_values(scope, status_code))


async def _maintenance_loop(settings: Settings) -> None:
    while True:
        await asyncio.sleep(settings.maintenance_interval)
        try:
            await to_thread.run_sync(maintenance.tick, settings)
        except Exception:
            log.exception("maintenance pass failed")


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel `tasks` and wait until each has ended. The cancel is repeated: Python 3.11's
    `asyncio.wait_for`, with which redis-py sends each command, drops a cancel that lands just
    as the command completes (CPython gh-86296), and a task that lost it would run on forever
    (one stop in eight hung when it came 1 ms after start, while the auth listener subscribed)."""
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s ended with an error", task.get_name(), exc_info=task.exception())


def create_app(settings: Settings | None = None, *, run_maintenance: bool = True) -> FastAPI:
    settings = settings or get_settings()
    load_kinds(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings = app.state.settings
        with session_scope(settings) as session:
            open_vault(session, settings)
        await to_thread.run_sync(security.warm_up)
        if run_maintenance:
            await to_thread.run_sync(maintenance.run_pass, settings)
        # Everything made at start-up lives as long as the process: out of the collector's sight,
        # a full collection takes microseconds instead of ~90 ms (a pause any request could hit).
        gc.freeze()
        tasks = [asyncio.create_task(listen_for_changes(settings), name="auth listener")]
        if run_maintenance:
            tasks.append(asyncio.create_task(_maintenance_loop(settings), name="maintenance"))
        yield
        await _stop(tasks)

    app = FastAPI(
        title="slipway",
        version=__version__,
        description="Self-hosted application delivery: apps, releases, builds and triggers.",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
    )
    # The one place the app's settings live: everything (dependencies, the audit writer, the
    # lifespan) reads them from here, at the time of use.
    app.state.settings = settings
    install_error_handlers(app)
    for router in API_ROUTERS:
        app.include_router(router, prefix="/api/v1")
    for router in ROOT_ROUTERS:
        app.include_router(router)
    app.add_middleware(RequestContextMiddleware, audit=_write_audit)
    return app

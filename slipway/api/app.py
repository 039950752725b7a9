"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from anyio import to_thread
from fastapi import FastAPI
from starlette.types import Scope

from slipway import __version__
from slipway.api.errors import install_error_handlers
from slipway.api.middleware import RequestContextMiddleware, audit_values, route_template
from slipway.api.router import API_ROUTERS, ROOT_ROUTERS
from slipway.audit import service as audit_service
from slipway.auth.service import listen_for_changes
from slipway.core import security
from slipway.core.config import Settings, get_settings
from slipway.core.db import session_scope
from slipway.core.secrets import open_vault
from slipway.jobs import maintenance
from slipway.jobs.kinds import load_kinds

log = logging.getLogger(__name__)

__all__ = ["create_app", "route_template"]


def _audit_writer(settings: Settings) -> Any:
    def write(scope: Scope, status_code: int) -> None:
        audit_service.record_now(settings, **audit_values(scope, status_code))

    return write


async def _maintenance_loop(settings: Settings) -> None:
    while True:
        await asyncio.sleep(settings.maintenance_interval)
        try:
            await to_thread.run_sync(maintenance.tick, settings)
        except Exception:
            log.exception("maintenance pass failed")


def create_app(settings: Settings | None = None, *, run_maintenance: bool = True) -> FastAPI:
    settings = settings or get_settings()
    load_kinds(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        with session_scope(settings) as session:
            open_vault(session, settings)
        await to_thread.run_sync(security.warm_up)
        tasks = [asyncio.create_task(listen_for_changes(settings))]
        if run_maintenance:
            tasks.append(asyncio.create_task(_maintenance_loop(settings)))
        yield
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(
        title="slipway",
        version=__version__,
        description="Self-hosted application delivery: apps, releases, builds and triggers.",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
    )
    app.state.settings = settings
    install_error_handlers(app)
    for router in API_ROUTERS:
        app.include_router(router, prefix="/api/v1")
    for router in ROOT_ROUTERS:
        app.include_router(router)
    app.add_middleware(RequestContextMiddleware, audit=_audit_writer(settings))
    return app

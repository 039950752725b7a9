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
from slipway.api.middleware import RequestContextMiddleware
from slipway.api.router import api_router, root_router
from slipway.audit import service as audit_service
from slipway.core import security
from slipway.core.config import Settings, get_settings
from slipway.core.db import session_factory, session_scope
from slipway.core.secrets import open_vault
from slipway.jobs import maintenance
from slipway.jobs.kinds import load_kinds

log = logging.getLogger(__name__)


def _audit_writer(settings: Settings) -> Any:
    def write(scope: Scope, status_code: int) -> None:
        state = scope.get("state", {})
        client = scope.get("client")
        with session_factory(settings)() as session:
            audit_service.record(
                session,
                actor=state.get("actor"),
                action=f"{scope['method']} {route_template(scope)}",
                target=scope["path"],
                source_ip=client[0] if client else None,
                status_code=status_code,
                request_id=state.get("request_id"),
            )
            session.commit()

    return write


def route_template(scope: Scope) -> str:
    """The matched route's full path template (`/api/v1/users/{name}`), else the raw path."""
    # Since FastAPI 0.137 routers are included lazily and scope["route"] is the route as declared
    # in its own router, without the include prefixes; the effective context has the full path.
    effective = scope.get("fastapi", {}).get("effective_route_context")
    for candidate in (effective, scope.get("route")):
        template = getattr(candidate, "path_format", None)
        if template:
            return str(template)
    return str(scope["path"])


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
        task = asyncio.create_task(_maintenance_loop(settings)) if run_maintenance else None
        yield
        if task is not None:
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
    app.include_router(api_router, prefix="/api/v1")
    app.include_router(root_router)
    app.add_middleware(RequestContextMiddleware, audit=_audit_writer(settings))
    return app

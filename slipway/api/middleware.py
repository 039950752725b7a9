"""Request ids, one access-log line per request, the audit row of every mutating request, and the
last-resort 500 in the one error shape. Plain ASGI, so streaming responses pass through
untouched.

The audit row of a mutating request is stored before its answer leaves: a process that dies
after answering has lost no row. A route may instead store the row in its own transaction
(`api.deps.audit_row`), which saves a transaction; the middleware then writes none.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slipway.api.errors import error_body, shaped_for
from slipway.api.sessions import close_sessions
from slipway.audit.service import AuditFields

log = logging.getLogger("slipway.request")

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
_AUDITED = "audited"


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


def audit_values(scope: Scope, status_code: int) -> AuditFields:
    """The audit row of the request in `scope`, answered with `status_code`."""
    state = scope.get("state", {})
    client = scope.get("client")
    return {
        "actor": state.get("actor"),
        "action": f"{scope['method']} {route_template(scope)}",
        "target": scope["path"],
        "source_ip": client[0] if client else None,
        "status_code": status_code,
        "request_id": state.get("request_id"),
    }


def mark_audited(scope: Scope, status_code: int) -> None:
    """The request's audit row, as answered with `status_code`, is stored already."""
    scope.setdefault("state", {})[_AUDITED] = status_code


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, audit: Any) -> None:
        self.app = app
        # Called as audit(scope, status_code) in a thread, before each mutating request's answer
        # starts.
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = (
            dict(scope.get("headers") or []).get(b"x-request-id", b"").decode(errors="ignore")
        )
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = {"code": 500, "sent": False}
        is_mutating = scope["method"] in MUTATING
        audit = {"done": False}

        async def write_audit(code: int) -> None:
            # The endpoint is done: its sessions are closed first (on SQLite one still in a write
            # transaction holds the lock the audit row waits for).
            await close_sessions(scope)
            if not is_mutating or audit["done"]:
                return
            audit["done"] = True
            if scope["state"].get(_AUDITED) == code:
                return
            try:
                await anyio.to_thread.run_sync(self.audit, scope, code)
            except Exception:
                log.exception("could not write the audit row of request %s", request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                await write_audit(message["status"])
                status["sent"] = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception(
                "unhandled error in %s %s (request %s)", scope["method"], scope["path"], request_id
            )
            if not status["sent"]:
                error = error_body(
                    "internal",
                    f"an unexpected error occurred; quote request id {request_id} when "
                    "reporting it",
                    None,
                    request_id,
                )
                body = json.dumps(shaped_for(scope["path"], 500, error)).encode()
                status["code"] = 500
                await write_audit(500)
                await send(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"x-request-id", request_id.encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
        finally:
            await close_sessions(scope, is_done=True)
            duration_ms = (time.perf_counter() - started) * 1000
            user = scope["state"].get("actor") or "-"
            log.info(
                "%s %s %s %d %.1fms user=%s request_id=%s",
                _client_ip(scope),
                scope["method"],
                scope["path"],
                status["code"],
                duration_ms,
                user,
                request_id,
            )
            # A request that ended without answering (the client went away first) is recorded
            # too.
            await write_audit(status["code"])


def _client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "-"

"""Request ids, one access-log line per request, the audit row of every mutating request, and the
last-resort 500 in the one error shape. Plain ASGI, so streaming responses pass through
untouched."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slipway.api.errors import error_body

log = logging.getLogger("slipway.request")

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, audit: Any) -> None:
        self.app = app
        # Called as audit(scope, status_code) after each mutating request.
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

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
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
                body = json.dumps(
                    error_body(
                        "internal",
                        f"an unexpected error occurred; quote request id {request_id} when "
                        "reporting it",
                        None,
                        request_id,
                    )
                ).encode()
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
                status["code"] = 500
        finally:
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
            if scope["method"] in MUTATING:
                try:
                    await anyio.to_thread.run_sync(self.audit, scope, status["code"])
                except Exception:
                    log.exception("could not write the audit row of request %s", request_id)


def _client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "-"

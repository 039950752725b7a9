"""The one error handler: every failure leaves the API as {"error": {code, message, details,
request_id}}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from slipway.core.errors import InputError, RateLimitedError, SlipwayError

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def error_body(
    code: str, message: str, details: Any = None, request_id: str | None = None
) -> dict[str, Any]:
    return {
        "error": {"code": code, "message": message, "details": details, "request_id": request_id}
    }


# FastBuild's compatibility routes answer in its own shape; everything else in the one above.
FASTBUILD_PREFIX = "/api/fast-build/"


def shaped_for(path: str, status: int, body: dict[str, Any]) -> dict[str, Any]:
    """`body` as the route at `path` answers errors: FastBuild's routes wrap it in
    `{code, message, data}` (`code` the HTTP status, slipway's error in `data.error`)."""
    if not path.startswith(FASTBUILD_PREFIX):
        return body
    return {"code": status, "message": body["error"]["message"], "data": body}


def error_response(
    request: Request, status: int, code: str, message: str, details: Any = None, **headers: str
) -> JSONResponse:
    body = error_body(code, message, details, request_id_of(request))
    return JSONResponse(
        shaped_for(request.url.path, status, body), status_code=status, headers=headers or None
    )


def _field_name(error: dict[str, Any]) -> str:
    location = tuple(error.get("loc", ()))
    if error.get("type") == "json_invalid":
        # Its location is ("body", <character offset>): the body as a whole is at fault.
        return "body"
    parts = [str(p) for p in location if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or str(location[-1] if location else "request")


async def _slipway_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SlipwayError)
    headers = {}
    if isinstance(exc, RateLimitedError):
        headers["Retry-After"] = str(exc.retry_after)
    if exc.status_code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    details = exc.details
    if isinstance(exc, InputError) and isinstance(details, dict) and "errors" not in details:
        if "field" in details:
            # The same list a validation error has, so a client reads every 422 one way.
            problem = {"field": details["field"], "problem": exc.message, "type": exc.code}
            details = {**details, "errors": [problem]}
    return error_response(request, exc.status_code, exc.code, exc.message, details, **headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors():
        problems.append(
            {
                "field": _field_name(error),
                "problem": error.get("msg", "invalid"),
                "type": error.get("type"),
            }
        )
    if problems and problems[0]["type"] == "json_invalid":
        message = "the request body is not valid JSON; send a JSON object"
    else:
        message = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:5])
        message = f"invalid request: {message}"
    details = {"field": problems[0]["field"] if problems else None, "errors": problems}
    return error_response(request, 422, "invalid_input", message, details)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    if exc.status_code == 404 and exc.detail == "Not Found":
        message = f"no route {request.method} {request.url.path}; see /docs for the API"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return error_response(request, exc.status_code, code, message, **dict(exc.headers or {}))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SlipwayError, _slipway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)

"""The HTTP client behind `slipway ops|apps|…`: SLIPWAY_URL and SLIPWAY_TOKEN."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slipway.cli.common import (
    EXIT_AUTH,
    EXIT_CONFLICT,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    fail,
    settings,
)

if TYPE_CHECKING:
    import httpx

_EXIT_BY_STATUS = {401: EXIT_AUTH, 403: EXIT_AUTH, 404: EXIT_NOT_FOUND, 409: EXIT_CONFLICT}


def client(timeout: float | httpx.Timeout | None = 30.0) -> httpx.Client:
    import httpx  # here, not at the top: the local commands do not need it

    config = settings()
    headers = {"User-Agent": "slipway-cli"}
    if config.token is not None:
        headers["Authorization"] = f"Bearer {config.token.get_secret_value()}"
    return httpx.Client(
        base_url=config.url.rstrip("/") + "/api/v1", headers=headers, timeout=timeout
    )


def check(response: httpx.Response) -> Any:
    """The JSON body of a successful response; else the API's error on one line, and exit."""
    if response.status_code < 400:
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text
    try:
        error = response.json()["error"]
        message = f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        message = f"HTTP {response.status_code}"
    if response.status_code == 401 and settings().token is None:
        message += " (set SLIPWAY_TOKEN)"
    code = _EXIT_BY_STATUS.get(response.status_code)
    if code is None:
        code = (
            EXIT_USAGE
            if response.status_code in (400, 413, 422)
            else (EXIT_UNAVAILABLE if response.status_code >= 500 else EXIT_FAILED)
        )
    fail(message, code)


def request(method: str, path: str, **kwargs: Any) -> Any:
    import httpx

    try:
        with client() as http:
            return check(http.request(method, path, **kwargs))
    except httpx.TransportError as error:
        fail(f"cannot reach slipway at {settings().url}: {error}", EXIT_UNAVAILABLE)

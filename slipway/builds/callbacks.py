"""Callbacks: POST a build's result to the requester's URL with the configured headers.

FastBuild hard-coded its callback headers and logged little, which made every new deployment an
argument about what was sent. Here the headers are a runtime setting (builds/callback_headers.py:
encrypted, with revisions; FastBuild's `{"Content-Type": "application/json"}` until one is saved),
each delivery is a `build.callback` operation that retries with backoff, and every attempt is
recorded — URL, headers with secrets masked, body, status, the start of the answer, duration — so
`GET /api/v1/callbacks` shows what happened and `POST /api/v1/callbacks/test` sends the latest
one again. The URL passes the outbound-address policy at every attempt.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.builds.callback_headers import get_headers, is_secret_header, mask_headers

# fastbuild_routes.py saves and shows the headers through this module.
from slipway.builds.callback_models import CallbackAttempt, CallbackStatus
from slipway.core import outbound
from slipway.core.config import Settings
from slipway.core.errors import ConflictError, InputError, OperationError
from slipway.core.outbound_allow import AllowList, allow_list
from slipway.jobs import service as jobs
from slipway.jobs.context import OperationContext
from slipway.jobs.kinds import operation_kind
from slipway.jobs.models import Operation, Trigger

KIND = "build.callback"
DEFAULT_BACKOFF = (1.0, 2.0, 4.0, 8.0)
REQUEST_TIMEOUT = 10.0
EXCERPT_BYTES = 2048
MAX_BODY_BYTES = 1 << 20


# --- asking for a callback --------------------------------------------------------------------


def check_callback_url(url: str, *, field: str = "callback_url") -> str:
    """The URL if it is an http(s) URL without credentials; the policy is checked at sending."""
    if outbound.parse_url(url, field).userinfo:
        raise InputError(
            f"{field} must not hold a user name or password: put credentials in the callback "
            "headers (PUT /api/v1/settings/callback-headers), which are stored encrypted",
            field=field,
            code="invalid_url",
        )
    return url


def request_callback(
    session: Session,
    settings: Settings,
    *,
    url: str,
    payload: Any,
    build_id: str | None = None,
    actor: str | None,
    trigger: Trigger | str = Trigger.system,
    backoff: Sequence[float] = DEFAULT_BACKOFF,
    timeout: float = REQUEST_TIMEOUT,
    is_test: bool = False,
) -> Operation:
    """Submit a `build.callback` operation that POSTs `payload` (JSON) to `url`.

    It tries once, then once more after each delay of `backoff` (seconds) while the receiver
    fails or answers other than 2xx. Commits the session (as `jobs.submit` does).
    """
    url = check_callback_url(url)
    try:
        body = json.dumps(payload)
    except (TypeError, ValueError):
        raise InputError("the callback body must be JSON", field="payload") from None
    if len(body) > MAX_BODY_BYTES:
        raise InputError(
            f"the callback body is over {MAX_BODY_BYTES} bytes", field="payload", code="too_large"
        )
    delays = [float(delay) for delay in backoff]
    if any(delay < 0 for delay in delays):
        raise InputError("backoff delays must not be negative", field="backoff")
    return jobs.submit(
        session,
        settings,
        kind=KIND,
        subject=build_id or httpx.URL(url).host,
        params={
            "url": url,
            "payload": json.loads(body),
            "build_id": build_id,
            "backoff": delays,
            "timeout": timeout,
            "is_test": is_test,
        },
        actor=actor,
        trigger=trigger,
        # Every attempt may take `timeout`, plus the waits between them, plus slack.
        timeout=int(sum(delays) + (len(delays) + 1) * (timeout + 5)) + 30,
    )


def latest_attempt(session: Session) -> CallbackAttempt | None:
    return session.scalar(select(CallbackAttempt).order_by(CallbackAttempt.id.desc()).limit(1))


def resend_latest(
    session: Session, settings: Settings, *, actor: str | None, trigger: Trigger | str
) -> Operation:
    """Send the latest callback again (its URL and body, today's headers) as a new operation."""
    latest = latest_attempt(session)
    if latest is None:
        raise ConflictError(
            "no callback has been sent yet, so there is none to send again; a build submitted "
            "with a callback_url sends one when it ends",
            code="no_callback_yet",
        )
    return request_callback(
        session,
        settings,
        url=latest.url,
        payload=latest.body,
        build_id=latest.build_id,
        actor=actor,
        trigger=trigger,
        is_test=True,
    )


def list_attempts(
    session: Session,
    *,
    limit: int = 50,
    before: int | None = None,
    build_id: str | None = None,
    status: CallbackStatus | None = None,
    operation_id: str | None = None,
) -> list[CallbackAttempt]:
    """Attempts newest first; a page of `limit` older than the attempt id `before`."""
    query = select(CallbackAttempt).order_by(CallbackAttempt.id.desc()).limit(limit)
    if before is not None:
        query = query.where(CallbackAttempt.id < before)
    if build_id is not None:
        query = query.where(CallbackAttempt.build_id == build_id)
    if status is not None:
        query = query.where(CallbackAttempt.status == status.value)
    if operation_id is not None:
        query = query.where(CallbackAttempt.operation_id == operation_id)
    return list(session.scalars(query))


# --- delivering (on a worker) -----------------------------------------------------------------


@dataclass
class Outcome:
    status: CallbackStatus
    status_code: int | None = None
    excerpt: str | None = None
    error: dict[str, str] | None = None
    duration_ms: int = 0

    def summary(self) -> str:
        if self.status_code is not None:
            return f"HTTP {self.status_code}"
        return self.error["message"] if self.error else "no answer"


def _read_excerpt(response: httpx.Response) -> str:
    """The first EXCERPT_BYTES of the answer; the rest is never read."""
    taken = b""
    for chunk in response.iter_bytes():
        taken += chunk
        if len(taken) >= EXCERPT_BYTES:
            break
    return taken[:EXCERPT_BYTES].decode("utf-8", errors="replace")


def _attempt(
    url: str,
    payload: Any,
    headers: Mapping[str, str],
    allow: AllowList,
    timeout: float,
) -> Outcome:
    started = time.monotonic()
    try:
        # Not following redirects: after a 301/302 the POST would become a body-less GET that
        # "succeeds" without delivering anything. A 3xx is recorded; fix the URL.
        with outbound.stream(
            "POST",
            url,
            allow=allow,
            field="callback_url",
            headers=headers,
            json=payload,
            timeout=timeout,
            follow_redirects=False,
        ) as response:
            excerpt = _read_excerpt(response)
            ok = 200 <= response.status_code < 300
            outcome = Outcome(
                CallbackStatus.delivered if ok else CallbackStatus.failed,
                status_code=response.status_code,
                excerpt=excerpt,
            )
    except InputError as exc:
        # A name that does not resolve may resolve later; a refused address will not change.
        status = (
            CallbackStatus.failed if exc.code == "outbound_unresolved" else CallbackStatus.refused
        )
        outcome = Outcome(status, error={"code": exc.code, "message": exc.message})
    except httpx.HTTPError as exc:
        code = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection_failed"
        text = f"{type(exc).__name__}: {str(exc)[:300] or 'no answer'}"
        outcome = Outcome(CallbackStatus.failed, error={"code": code, "message": text})
    outcome.duration_ms = int((time.monotonic() - started) * 1000)
    return outcome


def _record(ctx: OperationContext, number: int, outcome: Outcome, masked: dict[str, str]) -> None:
    params = ctx.params
    mask = ctx.masker.mask  # an echoing receiver must not put a secret header into history
    error = outcome.error
    with ctx.session() as session:
        session.add(
            CallbackAttempt(
                build_id=params.get("build_id"),
                operation_id=ctx.operation_id,
                url=params["url"],
                headers=masked,
                body=params["payload"],
                attempt=number,
                is_test=bool(params.get("is_test")),
                status=outcome.status.value,
                status_code=outcome.status_code,
                response_excerpt=mask(outcome.excerpt) if outcome.excerpt is not None else None,
                error={**error, "message": mask(error["message"])} if error else None,
                duration_ms=outcome.duration_ms,
            )
        )
        session.commit()


@operation_kind(KIND, timeout=300)
def deliver(ctx: OperationContext) -> dict[str, Any]:
    """POST the payload, retrying on failure; every attempt is recorded and logged."""
    url: str = ctx.params["url"]
    delays = [float(delay) for delay in ctx.params.get("backoff", DEFAULT_BACKOFF)]
    timeout = float(ctx.params.get("timeout", REQUEST_TIMEOUT))
    with ctx.session() as session:
        headers = get_headers(session, ctx.settings)
        allow = allow_list(session, ctx.settings)
    for name, value in headers.items():
        if is_secret_header(name):
            ctx.add_secret(value)
    masked = mask_headers(headers)
    total = len(delays) + 1
    ctx.log(f"POST {url} with headers {', '.join(masked) or 'none'}; up to {total} attempts")
    outcome = Outcome(CallbackStatus.failed)
    for number in range(1, total + 1):
        ctx.check()
        outcome = _attempt(url, ctx.params["payload"], headers, allow, timeout)
        _record(ctx, number, outcome, masked)
        ctx.log(
            f"attempt {number}/{total}: {outcome.status.value}, {outcome.summary()} "
            f"in {outcome.duration_ms} ms"
        )
        result = {"url": url, "attempts": number, "status_code": outcome.status_code}
        if outcome.status == CallbackStatus.delivered:
            return result
        if outcome.status == CallbackStatus.refused:
            assert outcome.error is not None
            raise OperationError(
                outcome.error["message"], code=outcome.error["code"], result=result
            )
        if number < total:
            ctx.log(f"trying again in {delays[number - 1]:g} s")
            # Stored before the wait: followers see why nothing happens, and a cancel's own log
            # line (numbered from what is stored) cannot take the number of a buffered one.
            ctx.logs.flush()
            ctx.sleep(delays[number - 1])
    raise OperationError(
        f"the callback to {url} failed after {total} attempts; the last got {outcome.summary()}. "
        "Check the receiver, then send it again with POST /api/v1/callbacks/test",
        code="callback_failed",
        details={"status_code": outcome.status_code, "attempts": total},
        result={"url": url, "attempts": total, "status_code": outcome.status_code},
    )

"""/api/v1/callbacks and /api/v1/settings/callback-headers: viewers read, operators send a test,
admins change the headers.

Nothing here returns a secret: header values that look secret are masked in the setting, its
revisions and every recorded attempt.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response, status

from slipway.api.deps import Admin, Operator, SessionDep, SettingsDep, Viewer
from slipway.api.pagination import decode_cursor, next_cursor
from slipway.builds import callback_headers, callbacks
from slipway.builds.callback_models import CallbackStatus
from slipway.builds.callback_schemas import (
    CallbackAttemptList,
    CallbackAttemptRead,
    CallbackHeadersRead,
    CallbackHeadersRevisionList,
    CallbackHeadersRevisionRead,
)
from slipway.jobs.models import Trigger
from slipway.jobs.routes import accepted
from slipway.jobs.schemas import OperationEnvelope, OperationRead

router = APIRouter(tags=["callbacks"])

Limit = Annotated[int, Query(ge=1, le=500)]
HEADERS_PATH = "/settings/callback-headers"


@router.get("/callbacks", response_model=CallbackAttemptList)
def list_callbacks(
    _: Viewer,
    session: SessionDep,
    limit: Limit = 50,
    cursor: str | None = None,
    build_id: Annotated[str | None, Query(max_length=36)] = None,
    status: CallbackStatus | None = None,
) -> CallbackAttemptList:
    """Every callback attempt, newest first: URL, masked headers, body, answer, duration."""
    items = callbacks.list_attempts(
        session,
        limit=limit + 1,
        before=decode_cursor(cursor, int),
        build_id=build_id,
        status=status,
    )
    return CallbackAttemptList(
        items=[CallbackAttemptRead.of(item) for item in items[:limit]],
        next_cursor=next_cursor(items, limit, "id"),
    )


@router.post(
    "/callbacks/test", response_model=OperationEnvelope, status_code=status.HTTP_202_ACCEPTED
)
def test_callback(
    principal: Operator,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
) -> OperationEnvelope:
    """Send the latest callback again (its URL and body, the current headers); 409 when none
    was ever sent."""
    operation = callbacks.resend_latest(
        session, settings, actor=principal.name, trigger=Trigger.api
    )
    return accepted(response, request, OperationRead.of(operation))


@router.get(HEADERS_PATH, response_model=CallbackHeadersRead)
def get_callback_headers(_: Viewer, session: SessionDep) -> CallbackHeadersRead:
    """The headers sent with every callback, secret-looking values masked."""
    return CallbackHeadersRead(**callback_headers.headers_view(session))


@router.put(HEADERS_PATH, response_model=CallbackHeadersRead)
def put_callback_headers(
    principal: Admin,
    session: SessionDep,
    settings: SettingsDep,
    headers: Annotated[
        dict[str, Any],
        Body(
            examples=[
                {"X-BizType": "DROS", "X-Login-UserId": "1", "Content-Type": "application/json"}
            ]
        ),
    ],
) -> CallbackHeadersRead:
    """Replace the headers (a JSON object of name → value; stored encrypted, a new revision).
    A value given as ******** keeps that header's current value."""
    callback_headers.put_headers(session, settings, headers, actor=principal.name)
    session.commit()
    return CallbackHeadersRead(**callback_headers.headers_view(session))


@router.get(f"{HEADERS_PATH}/revisions", response_model=CallbackHeadersRevisionList)
def list_callback_header_revisions(
    _: Viewer, session: SessionDep, limit: Limit = 100, cursor: str | None = None
) -> CallbackHeadersRevisionList:
    """Every saved state of the headers (secret-looking values masked), newest first."""
    items = callback_headers.header_revisions(
        session, limit=limit + 1, before=decode_cursor(cursor, int)
    )
    return CallbackHeadersRevisionList(
        items=[CallbackHeadersRevisionRead.of(item) for item in items[:limit]],
        next_cursor=next_cursor(items, limit, "revision"),
    )

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import PlainTextResponse, StreamingResponse
from starlette.datastructures import URLPath

from slipway.api.deps import Operator, SessionDep, SettingsDep, Viewer, audit_row, audited
from slipway.api.pagination import decode_cursor, encode_cursor, invalid_cursor
from slipway.api.sessions import read_in_thread
from slipway.core.errors import InputError
from slipway.jobs import service
from slipway.jobs.follow import follow
from slipway.jobs.intake import intake
from slipway.jobs.kinds import get_kind
from slipway.jobs.logs import read_lines
from slipway.jobs.models import OperationStatus, Trigger
from slipway.jobs.schemas import (
    OperationCreate,
    OperationEnvelope,
    OperationList,
    OperationMove,
    OperationRead,
)

router = APIRouter(prefix="/operations", tags=["operations"])


def accepted(response: Response, request: Request, operation: OperationRead) -> OperationEnvelope:
    """The 202 answer of every long action: the operation, and where to watch it."""
    response.status_code = status.HTTP_202_ACCEPTED
    response.headers["Location"] = operation_url(request, operation.id)
    return OperationEnvelope(operation=operation)


_ID_SLOT = "00000000-0000-0000-0000-000000000000"
# The path of an operation per router: `request.url_for` searches every route of the app for the
# name on each call, and the path differs only in the id.
_operation_paths: dict[int, str] = {}


def operation_url(request: Request, operation_id: str) -> str:
    """What `request.url_for("get_operation", operation_id=...)` gives, without the search."""
    router = request.scope.get("router") or request.scope["app"]
    path = _operation_paths.get(id(router))
    if path is None:
        path = str(router.url_path_for("get_operation", operation_id=_ID_SLOT))
        _operation_paths[id(router)] = path
    url_path = URLPath(path.replace(_ID_SLOT, operation_id), protocol="http")
    return str(url_path.make_absolute_url(request.base_url))


@router.get("", response_model=OperationList)
async def list_operations(
    _: Viewer,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
    kind: str | None = None,
    status: OperationStatus | None = None,
    subject: str | None = None,
    actor: str | None = None,
) -> OperationList:
    raw = decode_cursor(cursor, list)
    parsed = None
    if raw is not None:
        try:
            parsed = (datetime.fromisoformat(raw[0]), str(raw[1]))
        except (TypeError, ValueError, IndexError):
            raise invalid_cursor() from None
    filters = service.OperationFilter(kind=kind, status=status, subject=subject, actor=actor)

    def read() -> OperationList:
        items, next_cursor = service.list_(session, filters=filters, limit=limit, cursor=parsed)
        return OperationList(
            items=[OperationRead.of(item) for item in items],
            next_cursor=encode_cursor([next_cursor[0].isoformat(), next_cursor[1]])
            if next_cursor
            else None,
        )

    return await read_in_thread(session, read)


@router.post("", response_model=OperationEnvelope, status_code=status.HTTP_202_ACCEPTED)
async def create_operation(
    principal: Operator,
    settings: SettingsDep,
    body: OperationCreate,
    request: Request,
    response: Response,
) -> OperationEnvelope:
    """Start an operation of a kind that may be started directly (system.check, system.noop)."""
    spec = get_kind(body.kind)
    if not spec.is_public:
        raise InputError(
            f"operations of kind {body.kind!r} are started through their own endpoint",
            field="kind",
            code="kind_not_startable",
        )
    # Stored by the intake thread, with whatever other POSTs arrived at the same time
    # (jobs/intake.py); the audit row commits with the operation.
    operation = await intake.submit(
        settings,
        kind=body.kind,
        subject=body.subject,
        params=body.params,
        actor=principal.name,
        trigger=Trigger.api,
        scheduled_for=body.scheduled_for,
        also_insert=[audit_row(request, status.HTTP_202_ACCEPTED)],
    )
    audited(request, status.HTTP_202_ACCEPTED)
    return accepted(response, request, OperationRead.of(operation))


@router.get("/{operation_id}", response_model=OperationRead, name="get_operation")
async def get_operation(_: Viewer, session: SessionDep, operation_id: str) -> OperationRead:
    return await read_in_thread(
        session, lambda: OperationRead.of(service.get_or_raise(session, operation_id))
    )


@router.get(
    "/{operation_id}/logs",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {}, "application/x-ndjson": {}, "text/event-stream": {}}}
    },
)
def get_logs(
    _: Viewer,
    session: SessionDep,
    settings: SettingsDep,
    operation_id: str,
    follow_: Annotated[bool, Query(alias="follow")] = False,
    after: Annotated[int, Query(ge=0, description="only lines after this sequence number")] = 0,
    accept: Annotated[str | None, Header()] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> Response:
    """The operation's log: plain text, JSON lines (Accept: application/x-ndjson), or with
    `follow=true` a Server-Sent Events stream that replays, then follows, resuming at
    Last-Event-ID."""
    service.get_or_raise(session, operation_id)
    if follow_:
        start = after
        if last_event_id:
            if not last_event_id.isdigit():
                raise InputError(
                    "Last-Event-ID must be a line sequence number", field="Last-Event-ID"
                )
            start = int(last_event_id)
        session.close()
        return StreamingResponse(
            follow(settings, operation_id, start),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    lines = read_lines(session, operation_id, after_seq=after, limit=1_000_000)
    if accept and "application/x-ndjson" in accept:
        body = "".join(json.dumps(line.to_dict()) + "\n" for line in lines)
        return Response(body, media_type="application/x-ndjson")
    return PlainTextResponse("".join(line.text + "\n" for line in lines))


@router.post("/{operation_id}/cancel", response_model=OperationRead)
def cancel_operation(
    principal: Operator, session: SessionDep, settings: SettingsDep, operation_id: str
) -> OperationRead:
    """Cancel: a scheduled, waiting or queued operation ends at once; a running one stops at its
    next step (its child processes are killed) and ends `canceled`."""
    return OperationRead.of(service.cancel(session, settings, operation_id, actor=principal.name))


@router.post("/{operation_id}/move", response_model=OperationRead)
def move_operation(
    _: Operator, session: SessionDep, settings: SettingsDep, operation_id: str, body: OperationMove
) -> OperationRead:
    """Reorder a waiting operation among the others waiting for the same locks."""
    operation = service.reorder(
        session, settings, operation_id, before=body.before, after=body.after, to=body.to
    )
    return OperationRead.of(operation)

"""FastAPI dependencies shared by every router.

The ones every request goes through are `async def` and do no blocking work on the event loop:
a plain `def` dependency costs a hop to the thread pool and back (FastAPI runs it there), and a
request used to make five such hops before its endpoint ran. Only what blocks (a database read
when the principal is not remembered) is sent to the thread pool. The request's session
(`SessionDep`) is closed by the request middleware (`api.sessions`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Table
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from slipway.api.middleware import audit_values, mark_audited
from slipway.api.sessions import get_session
from slipway.audit import service as audit_service
from slipway.auth import principals
from slipway.auth.models import Role
from slipway.auth.principals import Principal
from slipway.core.config import Settings
from slipway.core.db import session_factory
from slipway.core.errors import AuthError, PermissionDeniedError


async def app_settings(request: Request) -> Settings:
    """The settings the app was created with (kept on app.state: a dependency override would
    make FastAPI rebuild every sub-dependency on every request)."""
    return request.app.state.settings  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(app_settings)]
SessionDep = Annotated[Session, Depends(get_session)]

_bearer = HTTPBearer(auto_error=False, description="a token from POST /api/v1/auth/token")


def _authenticate(settings: Settings, token: str) -> Principal:
    with session_factory(settings)() as session:
        return principals.authenticate(session, token)


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AuthError(
            "this call needs a bearer token: log in with POST /api/v1/auth/token or use an API "
            "token, and send it as `Authorization: Bearer <token>`",
            code="unauthenticated",
        )
    token = credentials.credentials
    principal = principals.remembered_principal(token)
    if principal is None:
        principal = await run_in_threadpool(_authenticate, request.app.state.settings, token)
    request.state.actor = principal.name
    return principal


def require(role: Role) -> Callable[..., object]:
    """A dependency that lets through callers with `role` or a higher one."""

    async def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.role.allows(role):
            raise PermissionDeniedError(
                f"this needs the {role} role; {principal.name!r} is {principal.role}",
                details={"required_role": role.value, "role": principal.role.value},
            )
        return principal

    check.required_role = role  # type: ignore[attr-defined]
    return check


Viewer = Annotated[Principal, Depends(require(Role.viewer))]
Operator = Annotated[Principal, Depends(require(Role.operator))]
Admin = Annotated[Principal, Depends(require(Role.admin))]


def source_ip(request: Request) -> str:
    return request.client.host if request.client else "-"


def audit_row(request: Request, status_code: int) -> tuple[Table, dict[str, Any]]:
    """This request's audit row, as answered with `status_code`, for a hot route to store in its
    own transaction (e.g. `jobs.service.submit(also_insert=[...])`): one commit instead of two,
    and never a change without its row. Call `audited` once that transaction has committed; the
    middleware then writes no row of its own, unless the request ends with another status after
    all (then it adds one with the real status)."""
    return audit_service.row(**audit_values(request.scope, status_code))


def audited(request: Request, status_code: int) -> None:
    """The row from `audit_row` was committed."""
    mark_audited(request.scope, status_code)

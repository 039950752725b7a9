"""FastAPI dependencies shared by every router."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from slipway.auth import service as auth_service
from slipway.auth.models import Role
from slipway.auth.service import Principal
from slipway.core.config import Settings
from slipway.core.db import session_factory
from slipway.core.errors import AuthError, PermissionDeniedError


def app_settings(request: Request) -> Settings:
    """The settings the app was created with (kept on app.state: a dependency override would
    make FastAPI rebuild every sub-dependency on every request)."""
    return request.app.state.settings  # type: ignore[no-any-return]


def get_session(settings: Annotated[Settings, Depends(app_settings)]) -> Iterator[Session]:
    session = session_factory(settings)()
    try:
        yield session
    finally:
        session.close()


SettingsDep = Annotated[Settings, Depends(app_settings)]
SessionDep = Annotated[Session, Depends(get_session)]

_bearer = HTTPBearer(auto_error=False, description="a token from POST /api/v1/auth/token")


def current_principal(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AuthError(
            "this call needs a bearer token: log in with POST /api/v1/auth/token or use an API "
            "token, and send it as `Authorization: Bearer <token>`",
            code="unauthenticated",
        )
    principal = auth_service.authenticate(session, credentials.credentials)
    request.state.actor = principal.name
    return principal


def require(role: Role) -> Callable[..., Principal]:
    """A dependency that lets through callers with `role` or a higher one."""

    def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
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

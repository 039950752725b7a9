from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, status

from slipway.api.deps import Admin, SessionDep, SettingsDep, Viewer, source_ip
from slipway.auth import service
from slipway.auth.models import ApiToken
from slipway.auth.schemas import (
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenList,
    ApiTokenRead,
    TokenResponse,
    UserCreate,
    UserList,
    UserRead,
    UserUpdate,
)
from slipway.core.db import utcnow

router = APIRouter(tags=["auth"])


@router.post("/auth/token", response_model=TokenResponse)
def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
) -> TokenResponse:
    """Log in with the OAuth2 password form; returns a bearer token that expires."""
    request.state.actor = username
    token, row = service.login(
        session, settings, name=username, password=password, source_ip=source_ip(request)
    )
    session.commit()
    expires_in = int((row.expires_at - utcnow()).total_seconds()) if row.expires_at else None
    return TokenResponse(access_token=token, expires_at=row.expires_at, expires_in=expires_in)


@router.get("/me", response_model=UserRead)
def me(principal: Viewer, session: SessionDep) -> UserRead:
    return UserRead.model_validate(service.get_user_or_raise(session, principal.name))


@router.get("/users", response_model=UserList)
def list_users(_: Admin, session: SessionDep) -> UserList:
    return UserList(items=[UserRead.model_validate(u) for u in service.list_users(session)])


@router.post("/users", response_model=UserRead, status_code=status.HTTP_201_CREATED)
def create_user(_: Admin, session: SessionDep, body: UserCreate) -> UserRead:
    user = service.create_user(session, name=body.name, password=body.password, role=body.role)
    session.commit()
    return UserRead.model_validate(user)


@router.get("/users/{name}", response_model=UserRead)
def get_user(_: Admin, session: SessionDep, name: str) -> UserRead:
    return UserRead.model_validate(service.get_user_or_raise(session, name))


@router.patch("/users/{name}", response_model=UserRead)
def update_user(_: Admin, session: SessionDep, name: str, body: UserUpdate) -> UserRead:
    user = service.update_user(
        session, name=name, role=body.role, password=body.password, is_active=body.is_active
    )
    session.commit()
    return UserRead.model_validate(user)


@router.delete("/users/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_user(principal: Admin, session: SessionDep, name: str) -> None:
    service.delete_user(session, name, acting_user=principal.name)
    session.commit()


def _token_read(row: ApiToken, owner: str) -> ApiTokenRead:
    return ApiTokenRead(
        id=row.id,
        name=row.name,
        user=owner,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


@router.get("/tokens", response_model=ApiTokenList)
def list_tokens(_: Admin, session: SessionDep, user: str | None = None) -> ApiTokenList:
    rows = service.list_api_tokens(session, user_name=user)
    return ApiTokenList(items=[_token_read(row, owner) for row, owner in rows])


@router.post("/tokens", response_model=ApiTokenCreated, status_code=status.HTTP_201_CREATED)
def create_token(principal: Admin, session: SessionDep, body: ApiTokenCreate) -> ApiTokenCreated:
    """Create a long-lived API token for CI; the token is in this response only."""
    owner = body.user or principal.name
    token, row = service.create_api_token(
        session, user_name=owner, name=body.name, expires_in_days=body.expires_in_days
    )
    session.commit()
    return ApiTokenCreated(**_token_read(row, owner).model_dump(), token=token)


@router.delete("/tokens/{token_id}", response_model=ApiTokenRead)
def revoke_token(_: Admin, session: SessionDep, token_id: int) -> ApiTokenRead:
    row, owner = service.revoke_api_token(session, token_id)
    session.commit()
    return _token_read(row, owner)

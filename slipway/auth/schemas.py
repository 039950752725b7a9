from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from slipway.auth.models import Role


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime | None
    expires_in: int | None = Field(description="seconds until the token expires")


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    role: Role
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    role: Role


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    password: str | None = Field(None, min_length=1, max_length=1024)
    is_active: bool | None = None


class UserList(BaseModel):
    items: list[UserRead]
    next_cursor: str | None = None


class ApiTokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    user: str | None = Field(None, description="owner; defaults to the caller", max_length=64)
    expires_in_days: int | None = Field(None, ge=1, le=3650)


class ApiTokenRead(BaseModel):
    id: int
    name: str
    user: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiTokenCreated(ApiTokenRead):
    token: str = Field(description="shown once; store it now")


class ApiTokenList(BaseModel):
    items: list[ApiTokenRead]
    next_cursor: str | None = None

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from slipway.apps.service import AppView
from slipway.jobs.schemas import OperationRead


class AppInstall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    app: str = Field(min_length=1, max_length=128, description="catalog key")
    name: str = Field(min_length=1, max_length=63, description="DNS label, unique per endpoint")
    edition: str | None = Field(None, max_length=64)
    version: str | None = Field(None, max_length=64)
    endpoint: str | None = Field(None, max_length=63, description="default: local")
    settings: dict[str, str | int | float | bool] = Field(default_factory=dict)


class AppUpgrade(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1, max_length=64)


class AppAdopt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint: str | None = Field(None, max_length=63)


class AppEnv(BaseModel):
    model_config = ConfigDict(extra="forbid")

    settings: dict[str, str | int | float | bool]


class AppEnvRead(BaseModel):
    settings: dict[str, str]
    is_redeploy_pending: bool


class ContainerRead(BaseModel):
    name: str
    service: str
    state: str
    health: str | None
    exit_code: int
    image: str
    ports: list[dict[str, Any]]


class AppRead(BaseModel):
    name: str
    endpoint: str
    app: str | None = Field(description="catalog key; null for an adopted app")
    source: str | None
    edition: str | None
    version: str | None
    status: str
    allowed_actions: list[str]
    install_state: str
    is_redeploy_pending: bool
    containers: list[ContainerRead]
    operation: OperationRead | None = Field(description="the operation in progress, if any")
    last_operation_id: str | None
    engine_error: str | None
    created_at: datetime

    @classmethod
    def of(cls, view: AppView) -> AppRead:
        app = view.app
        return cls(
            name=app.name,
            endpoint=app.endpoint,
            app=app.catalog_key,
            source=app.source,
            edition=app.edition,
            version=app.version,
            status=view.status.value,
            allowed_actions=view.allowed_actions,
            install_state=app.install_state,
            is_redeploy_pending=app.is_redeploy_pending,
            containers=[ContainerRead(**c.to_dict()) for c in view.containers],
            operation=OperationRead.of(view.operation) if view.operation else None,
            last_operation_id=app.last_operation_id,
            engine_error=view.engine_error,
            created_at=app.created_at,
        )


class AppList(BaseModel):
    items: list[AppRead]
    next_cursor: str | None = None


class AppInstalled(BaseModel):
    operation: OperationRead
    app: AppRead
    generated_secrets: dict[str, str] = Field(
        description="passwords slipway generated; shown in this response only"
    )

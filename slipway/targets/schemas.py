"""API models of Docker endpoints. The client key is accepted, never returned."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from slipway.targets.models import DockerEndpoint, DockerEndpointRevision
from slipway.targets.tls import MAX_UPLOAD_BYTES

PEM_FIELD = Field(None, max_length=MAX_UPLOAD_BYTES, description="PEM text")


class DockerEndpointCreate(BaseModel):
    """A new endpoint, as JSON; the same fields arrive as multipart/form-data with files."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=63, description="a DNS label, unique")
    url: str = Field(max_length=255, description="unix:///path/to/docker.sock or tcp://host:port")
    labels: dict[str, str] = Field(default_factory=dict)
    description: str = Field("", max_length=2048)
    ca: str | None = PEM_FIELD
    cert: str | None = PEM_FIELD
    key: str | None = PEM_FIELD


class DockerEndpointUpdate(BaseModel):
    """Changes to an endpoint; what is left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, max_length=255)
    labels: dict[str, str] | None = None
    description: str | None = Field(None, max_length=2048)
    ca: str | None = PEM_FIELD
    cert: str | None = PEM_FIELD
    key: str | None = PEM_FIELD
    remove_tls: bool = Field(False, description="drop the TLS material (for a plain engine)")


class EngineInfo(BaseModel):
    version: str
    api_version: str
    os: str
    arch: str


class CheckError(BaseModel):
    code: str
    message: str


class DockerEndpointRead(BaseModel):
    name: str
    url: str
    is_builtin: bool
    description: str
    labels: dict[str, str]
    has_tls: bool
    tls_expires_at: datetime | None = Field(description="when the client certificate expires")
    tls_ca_fingerprint: str | None = Field(description="SHA-256 of the CA certificate")
    tls_cert_fingerprint: str | None = Field(description="SHA-256 of the client certificate")
    revision: int
    created_at: datetime
    updated_at: datetime
    last_checked_at: datetime | None
    last_error: CheckError | None = Field(description="why the last test failed, if it did")
    engine: EngineInfo | None = Field(description="the engine as it last answered")

    @classmethod
    def of(cls, endpoint: DockerEndpoint) -> DockerEndpointRead:
        return cls(
            name=endpoint.name,
            url=endpoint.url,
            is_builtin=endpoint.is_builtin,
            description=endpoint.description,
            labels=endpoint.labels,
            has_tls=endpoint.has_tls,
            tls_expires_at=endpoint.tls_expires_at,
            tls_ca_fingerprint=endpoint.ca_fingerprint,
            tls_cert_fingerprint=endpoint.cert_fingerprint,
            revision=endpoint.revision,
            created_at=endpoint.created_at,
            updated_at=endpoint.updated_at,
            last_checked_at=endpoint.last_checked_at,
            last_error=_model_or_none(CheckError, endpoint.last_error),
            engine=_model_or_none(EngineInfo, endpoint.engine),
        )


def _model_or_none(model: Any, value: dict[str, Any] | None) -> Any:
    return model.model_validate(value) if value else None


class DockerEndpointList(BaseModel):
    items: list[DockerEndpointRead]
    next_cursor: str | None = None


class DockerEndpointRevisionRead(BaseModel):
    revision: int
    url: str
    has_tls: bool
    tls_expires_at: datetime | None
    tls_ca_fingerprint: str | None
    tls_cert_fingerprint: str | None
    labels: dict[str, str]
    description: str
    changes: list[str] = Field(description='what this revision changed, or ["created"]')
    actor: str | None
    created_at: datetime

    @classmethod
    def of(cls, revision: DockerEndpointRevision) -> DockerEndpointRevisionRead:
        return cls(
            revision=revision.revision,
            url=revision.url,
            has_tls=revision.has_tls,
            tls_expires_at=revision.tls_expires_at,
            tls_ca_fingerprint=revision.ca_fingerprint,
            tls_cert_fingerprint=revision.cert_fingerprint,
            labels=revision.labels,
            description=revision.description,
            changes=revision.changes,
            actor=revision.actor,
            created_at=revision.created_at,
        )


class DockerEndpointRevisionList(BaseModel):
    items: list[DockerEndpointRevisionRead]
    next_cursor: str | None = None


class DockerEndpointTestResult(BaseModel):
    name: str
    ok: bool = True
    checked_at: datetime
    engine: EngineInfo
